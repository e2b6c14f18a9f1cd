"""Which database a benchmark runs on: a SQLite file (the default) or a PostgreSQL URL (`--database-url`)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

POSTGRES_SCHEMES = ("postgres", "postgresql", "pgsql")


def add_database_url_argument(parser: argparse.ArgumentParser) -> None:
    """`--database-url`: run on this database instead of SQLite (default: $BENCH_DATABASE_URL, else SQLite)."""
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_DATABASE_URL"),
        help="run on this database, e.g. postgres://USER@HOST:PORT/NAME (kept between runs; created when "
             "missing); default $BENCH_DATABASE_URL, else a SQLite file")


def is_postgres(url: str | None) -> bool:
    return bool(url) and urlsplit(url).scheme in POSTGRES_SCHEMES


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def vendor_name(url: str) -> str:
    return "PostgreSQL" if is_postgres(url) else "SQLite"


def with_database_name(url: str, name: str) -> str:
    """The same PostgreSQL server and user, another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _admin_connection(url: str):  # type: ignore[no-untyped-def]
    """An autocommit connection to the server's `postgres` database (CREATE DATABASE cannot run in a transaction)."""
    import psycopg

    conninfo = with_database_name(url, "postgres").replace("pgsql://", "postgresql://", 1)
    password = os.environ.get("DATABASE_PASSWORD")
    return psycopg.connect(conninfo, autocommit=True, **({"password": password} if password else {}))


def ensure_postgres_database(url: str) -> None:
    """Create the URL's database when it does not exist yet."""
    name = urlsplit(url).path.lstrip("/")
    with _admin_connection(url) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')


def recreate_postgres_database(url: str, *, template: str | None = None) -> None:
    """Drop the URL's database and create it again, empty or as a copy of `template` (a database name)."""
    name = urlsplit(url).path.lstrip("/")
    with _admin_connection(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))


def drop_postgres_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    with _admin_connection(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def setup_django(database_url: str) -> None:
    """Point Django at this database (created and migrated when new) before anything imports models."""
    if is_postgres(database_url):
        ensure_postgres_database(database_url)
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "server.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def analyze_postgres() -> None:
    """Refresh the planner's statistics after a bulk load (autovacuum may not have run yet)."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
