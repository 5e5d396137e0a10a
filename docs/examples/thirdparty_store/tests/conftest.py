"""The conformance suite's pytest plugin is opt-in: load it here, in the top conftest."""

pytest_plugins = ["conformance.pytest_plugin"]
