"""Fixtures every package's tests can use (the demo cloud, for one)."""

pytest_plugins = ["tests.support.democloud"]
