"""Deployment: production settings pass `check --deploy`, docker/.env.example's placeholders are refused,
DEBUG is off unless asked for, var/ is private, and gunicorn serves the static files with DEBUG off.

Each runs real processes (`manage.py`, scripts/web) with the environment a deployment gives them."""
from __future__ import annotations

import os
import secrets
import socket
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def clean_env(var: Path, **extra: str) -> dict[str, str]:
    """The environment of a fresh deployment: nothing of this suite's settings, a database in `var`."""
    keep = ("PATH", "HOME", "LANG", "TMPDIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(ERRORMAP_VAR_DIR=str(var), DATABASE_URL=f"sqlite:///{var / 'errormap.sqlite3'}",
               LABEL_STUDIO_ENV_FILE=str(var / "none.env"))
    env.update(extra)
    return env


def manage(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def production_env(var: Path) -> dict[str, str]:
    return clean_env(
        var, SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="errormap.example.org",
        ERRORMAP_HTTPS="true", LABEL_STUDIO_API_KEY=secrets.token_hex(20),
        LABEL_STUDIO_WEBHOOK_SECRET=secrets.token_urlsafe(24), LABEL_STUDIO_PASSWORD=secrets.token_urlsafe(16),
    )


def test_check_deploy_is_clean_for_production_settings(tmp_path):
    done = manage(["check", "--deploy", "--fail-level", "WARNING"], production_env(tmp_path / "var"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout


def test_debug_is_off_unless_asked_for(tmp_path):
    show = ["shell", "-c", "from django.conf import settings; print(settings.DEBUG)"]
    assert manage(show, clean_env(tmp_path / "var")).stdout.split()[-1] == "False"
    assert manage(show, clean_env(tmp_path / "var", DEBUG="true")).stdout.split()[-1] == "True"


def env_example() -> dict[str, str]:
    lines = (ROOT / "docker" / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_the_env_example_placeholders_are_refused_at_start(tmp_path):
    example = env_example()
    env = clean_env(tmp_path / "var", DEBUG="false", ALLOWED_HOSTS="localhost",
                    DATABASE_PASSWORD=example["POSTGRES_PASSWORD"], **example)
    done = manage(["check", "--deploy", "--fail-level", "ERROR"], env)
    assert done.returncode != 0
    refused = {line.split(" is still")[0].split(") ", 1)[-1] for line in done.stderr.splitlines()
               if "errormap.E001" in line}
    assert refused == {"SECRET_KEY", "the database password", "LABEL_STUDIO_API_KEY",
                       "LABEL_STUDIO_WEBHOOK_SECRET", "LABEL_STUDIO_PASSWORD", "POSTGRES_PASSWORD"}, done.stderr


def test_a_database_password_with_any_characters_reaches_the_driver_unchanged(tmp_path):
    password = "p@ss:w/rd#?%20'\"\\ $HOME"
    env = clean_env(tmp_path / "var", DATABASE_URL="postgres://errormap@db.example:5432/errormap",
                    DATABASE_PASSWORD=password)
    shown = manage(["shell", "-c", ("from django.conf import settings; d = settings.DATABASES['default'];"
                                    " print(repr((d['USER'], d['PASSWORD'], d['HOST'], d['NAME'])))")], env)
    assert shown.stdout.strip().splitlines()[-1] == repr(("errormap", password, "db.example", "errormap")), (
        shown.stdout + shown.stderr)


def test_var_files_holding_data_and_secrets_are_private(tmp_path):
    var = tmp_path / "var"
    done = manage(["migrate", "-v0"], clean_env(var))
    assert done.returncode == 0, done.stderr

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    assert mode(var) == 0o700  # made private; an existing folder keeps at most a traverse bit for others
    assert mode(var / "errormap.sqlite3") == 0o600
    assert mode(var / "secret_key") == 0o600


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str) -> tuple[int, str, str]:
    """(status, content type, body) without following redirects."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=30) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read().decode(errors="replace")


def test_gunicorn_serves_static_files_with_debug_off(tmp_path):
    var, port = tmp_path / "var", free_port()
    env = clean_env(var, DEBUG="false", ERRORMAP_WEB_PORT=str(port), ERRORMAP_WEB_WORKERS="1")
    assert manage(["migrate", "-v0"], env).returncode == 0
    started = subprocess.run(["scripts/web", "start"], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=300, check=False)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        base = f"http://127.0.0.1:{port}"
        status, kind, css = fetch(f"{base}/static/admin/css/base.css")
        assert (status, kind.split(";")[0]) == (200, "text/css") and "body" in css
        status, kind, _ = fetch(f"{base}/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css")
        assert (status, kind.split(";")[0]) == (200, "text/css")
        status, _, page = fetch(f"{base}/admin/login/")
        assert status == 200 and "/static/admin/css/base.css" in page
        # DEBUG off: a 404 says nothing of the URLconf.
        status, _, page = fetch(f"{base}/no-such-page/")
        assert status == 404 and "URLconf" not in page and "api/docs" not in page
        assert "gunicorn" in (var / "web.log").read_text().lower()
    finally:
        subprocess.run(["scripts/web", "stop"], cwd=ROOT, env=env, capture_output=True, timeout=120, check=False)
