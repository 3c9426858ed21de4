"""Loads gradsuite's pytest plugin (options, profiles, report header) for every test here."""

pytest_plugins = ["suite.plugin"]
