"""docker/postgres-init.sh run against a real PostgreSQL: a password with quotes, backslashes and SQL in
it becomes exactly the Label Studio role's password (checked against the SCRAM verifier PostgreSQL
stores), and nothing in it runs as SQL. Needs PostgreSQL; scripts/test runs it in its PostgreSQL pass."""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import subprocess
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "it's \"quoted\" \\ ; DROP ROLE postgres; -- $HOME `id`"

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]


def scram_matches(verifier: str, password: str) -> bool:
    """Does PostgreSQL's SCRAM-SHA-256 verifier (RFC 5802/7677) belong to this password?"""
    method, rest = verifier.split("$", 1)
    iterations_salt, keys = rest.split("$")
    iterations, salt = iterations_salt.split(":")
    stored_key, _server_key = keys.split(":")
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return method == "SCRAM-SHA-256" and base64.b64encode(hashlib.sha256(client_key).digest()).decode() == stored_key


def run_sql(sql: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall() if cursor.description else []


def drop_labelstudio() -> None:
    run_sql("DROP DATABASE IF EXISTS labelstudio")
    run_sql("DROP ROLE IF EXISTS labelstudio")


def test_postgres_init_quotes_any_password(tmp_path):
    if connection.vendor != "postgresql":
        pytest.fail("this test needs PostgreSQL (DATABASE_URL=postgres://...)")
    db = connection.settings_dict
    drop_labelstudio()
    try:
        env = {**os.environ, "POSTGRES_USER": db["USER"], "POSTGRES_DB": db["NAME"], "POSTGRES_PASSWORD": PASSWORD,
               "PGHOST": db["HOST"] or "127.0.0.1", "PGPORT": str(db["PORT"] or 5432),
               "PGPASSWORD": db["PASSWORD"] or ""}
        done = subprocess.run(["sh", str(ROOT / "docker" / "postgres-init.sh")], env=env, capture_output=True,
                              text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        ((verifier,),) = run_sql("SELECT rolpassword FROM pg_authid WHERE rolname = 'labelstudio'")
        assert scram_matches(verifier, PASSWORD)
        assert not scram_matches(verifier, PASSWORD + "x")
        assert run_sql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'labelstudio'") == [
            ("labelstudio",)]
        assert run_sql("SELECT 1 FROM pg_roles WHERE rolname = 'postgres'") == [(1,)]
    finally:
        drop_labelstudio()
