pytest_plugins = ["sitl.pytest_plugin"]
