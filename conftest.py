"""gradsuite's own tests. The plugin (options, profiles, report header) comes from the installed
package's ``pytest11`` entry point; a checkout used without installing (PYTHONPATH=.) loads it
here instead."""

from importlib import metadata

if not any(ep.name == "gradsuite" for ep in metadata.entry_points(group="pytest11")):
    pytest_plugins = ["suite.plugin"]
