"""A real Label Studio for the tests: started once per session from a copy of a cached, initialised
data folder (first boot ~30 s, later starts ~5 s), on a free loopback port, and stopped at the end."""
from __future__ import annotations

import ast
import hashlib
import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
from label_studio_sdk import LabelStudio

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "labelstudio"
VENV = Path(os.environ.get("LABEL_STUDIO_VENV", ROOT / ".labelstudio" / "venv"))
# Keyed by the start script: a data folder first booted by another version of it (how the admin and the
# token are handed over) is not reused.
CACHE = ROOT / "var" / f"labelstudio-test-cache-{hashlib.sha256(SCRIPT.read_bytes()).hexdigest()[:8]}"


@dataclass(frozen=True)
class LabelStudioServer:
    url: str
    api_key: str
    username: str
    password: str
    webhook_secret: str
    data_dir: Path
    env: dict

    def user_token(self, email: str) -> str:
        """The legacy API token of a user, read with Label Studio's own `user` command."""
        out = subprocess.run(
            [str(VENV / "bin" / "label-studio"), "user", "--username", email],
            env=self.env, capture_output=True, text=True, timeout=120, check=True,
        ).stdout
        info = ast.literal_eval(out.split("=> User info:", 1)[1].strip().splitlines()[0])
        return info["token"]

    def create_users(self, names: Iterable[str]) -> dict[str, tuple[int, LabelStudio]]:
        """Label Studio users NAME@example.org: name -> (user id, a client with the user's own token)."""
        admin = LabelStudio(base_url=self.url, api_key=self.api_key)
        users = {}
        for name in names:
            email = f"{name}@example.org"
            user = admin.users.create(email=email, username=name, first_name=name.title())
            # Users made through the API join the organization but have no active one (an invited user
            # gets it at sign-up); webhooks are looked up by the annotator's active organization.
            admin.users.update(id=user.id, active_organization=admin.users.whoami().active_organization)
            users[name] = (user.id, LabelStudio(base_url=self.url, api_key=self.user_token(email)))
        return users


def _free_port(start: int | None = None) -> int:
    # A random start: sessions running side by side (other checkouts) rarely try the same port first.
    start = start if start is not None else 8091 + random.randrange(0, 400)
    for port in range(start, start + 50):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port for Label Studio between {start} and {start + 49}")


def _script_env(data_dir: Path, env_file: Path, port: int) -> dict:
    # Label Studio keeps its own database in data_dir, whichever database the suite runs on.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("LABEL_STUDIO_") and k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
    env.update(
        LABEL_STUDIO_DATA_DIR=str(data_dir),
        LABEL_STUDIO_ENV_FILE=str(env_file),
        LABEL_STUDIO_PORT=str(port),
        LABEL_STUDIO_VENV=str(VENV),
    )
    return env


def _run_script(verb: str, env: dict) -> None:
    result = subprocess.run(
        [str(SCRIPT), verb], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"scripts/labelstudio {verb} failed:\n{result.stdout}\n{result.stderr}")


def _read_env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.startswith("#")}


def _ensure_cache() -> None:
    """Boot once on an empty data folder so admin, token and legacy-token switch are in its database."""
    if (CACHE / "ready").exists():
        return
    shutil.rmtree(CACHE, ignore_errors=True)
    (CACHE / "run").mkdir(parents=True)
    env = _script_env(CACHE / "run" / "data", CACHE / "labelstudio.env", _free_port())
    _run_script("start", env)
    _run_script("stop", env)
    (CACHE / "ready").write_text("initialised by tests/integration/conftest_labelstudio.py\n")


@pytest.fixture(scope="session")
def labelstudio_server(tmp_path_factory) -> LabelStudioServer:
    """A fresh Label Studio (its own copy of the data folder) for this test session."""
    if not (VENV / "bin" / "label-studio").exists():
        pytest.fail(
            f"Label Studio is not installed at {VENV}: run `scripts/labelstudio install` first",
            pytrace=False,
        )
    _ensure_cache()
    run_dir = tmp_path_factory.mktemp("labelstudio")
    shutil.copytree(CACHE / "run" / "data", run_dir / "data")
    env_file = run_dir / "labelstudio.env"
    shutil.copy(CACHE / "labelstudio.env", env_file)
    port = _free_port()
    env = _script_env(run_dir / "data", env_file, port)
    _run_script("start", env)
    values = _read_env_file(env_file)
    server = LabelStudioServer(
        url=f"http://127.0.0.1:{port}",
        api_key=values["LABEL_STUDIO_API_KEY"],
        username=values["LABEL_STUDIO_USERNAME"],
        password=values["LABEL_STUDIO_PASSWORD"],
        webhook_secret=values["LABEL_STUDIO_WEBHOOK_SECRET"],
        data_dir=run_dir / "data",
        # What Label Studio's own CLI needs to open the same database (for `label-studio user`).
        env={
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "LABEL_STUDIO_BASE_DATA_DIR": str(run_dir / "data"),
            "LATEST_VERSION_CHECK": "false",
            "COLLECT_ANALYTICS": "false",
        },
    )
    yield server
    _run_script("stop", env)


@pytest.fixture
def labelstudio(labelstudio_server, settings) -> LabelStudioServer:
    """Point the platform's settings at the test Label Studio for one test."""
    settings.LABEL_STUDIO_URL = labelstudio_server.url
    settings.LABEL_STUDIO_API_KEY = labelstudio_server.api_key
    settings.LABEL_STUDIO_WEBHOOK_SECRET = labelstudio_server.webhook_secret
    settings.LABEL_STUDIO_USERNAME = labelstudio_server.username
    settings.LABEL_STUDIO_PASSWORD = labelstudio_server.password
    return labelstudio_server


@pytest.fixture(scope="session")
def labelstudio_users(labelstudio_server):
    """Two annotators who exist in Label Studio, each with their own API token."""
    return labelstudio_server.create_users(("alice", "bob"))


def settle(check, timeout: float = 30.0) -> None:
    """Wait until `check()` holds (or the timeout passes): a webhook delivery is handled in the platform's
    own request, which may still be reading from Label Studio when Label Studio's 1 s wait gives up and
    the annotating call returns. The caller asserts afterwards, so a failure shows its diff."""
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.2)
