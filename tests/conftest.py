"""Fixtures shared by the whole suite; fixtures that start services live in their own plugin modules."""
import pytest

pytest_plugins = ["tests.integration.conftest_labelstudio"]


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory) -> None:
    """On SQLite the test database is a file, as in use: a shared in-memory database locks whole tables
    and ignores the busy timeout, so a live server's request (a webhook) beside the test's own writes
    failed with "database table is locked" where the real database waits."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        database.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("database") / "test.sqlite3")


@pytest.fixture(autouse=True)
def _empty_cache():
    """Each test starts with an empty cache: cached results are keyed by row counts and last ids, and a
    rolled-back test's ids are handed out again to the next one."""
    from django.core.cache import cache

    cache.clear()
