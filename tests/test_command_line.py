"""Bad command-line input to ``python -m suite`` gets a one-line error that names the fix, and a
non-zero exit. (The pytest plugin's options: tests/test_plugin_options.py.)"""
