"""Fixtures shared by the whole suite; fixtures that start services live in their own plugin modules."""

pytest_plugins = ["tests.integration.conftest_labelstudio"]
