"""Root conftest: the lab's fixtures and the kernel-test rules apply to the
whole suite (see lab/pytest_plugin.py)."""
pytest_plugins = ["lab.pytest_plugin"]
