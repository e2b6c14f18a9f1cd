"""Label Studio accounts for annotators: created through the API in the platform's organisation, with
sign-in details (a password and an API token) when the Label Studio is the local one that
scripts/labelstudio runs (its own command line reads and sets them; the API offers neither)."""

from __future__ import annotations

import ast
import os
import secrets
import string
import subprocess
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from label_studio_sdk import LabelStudio

from annotation.errors import ErrorMapError
from annotation.services.labelstudio.client import (
    client_url,
    labelstudio_client,
    labelstudio_errors,
)

PASSWORD_ALPHABET = (
    string.ascii_letters + string.digits
)  # nothing a shell or a parser reads specially


@dataclass(frozen=True)
class AnnotatorAccount:
    """A Label Studio user as an annotator sees it: how to sign in."""

    email: str
    user_id: int
    created: bool  # made by this call (else it existed)
    login_url: str
    password: str = ""  # set by this call for a new user; "" otherwise
    token: str = ""  # the user's API token, when the local Label Studio's command line can read it


def generate_password(length: int = 20) -> str:
    """A random password of letters and digits."""
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))


def _local_labelstudio() -> tuple[Path, dict[str, str]] | None:
    """(label-studio executable, environment) of the local Label Studio, when its data folder is here."""
    executable = Path(settings.LABEL_STUDIO_VENV) / "bin" / "label-studio"
    data_dir = Path(settings.LABEL_STUDIO_DATA_DIR)
    if not executable.exists() or not (data_dir / "label_studio.sqlite3").exists():
        return None
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LATEST_VERSION_CHECK": "false",
        "COLLECT_ANALYTICS": "false",
    }
    return executable, env


def _run_local(command: list[str], env: dict[str, str], stdin: str = "") -> str:
    result = subprocess.run(
        command,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        start_new_session=True,  # no terminal: getpass reads the password from stdin, not a tty
    )
    if result.returncode != 0:
        raise ErrorMapError(
            f"{' '.join(command[1:3])} failed: {(result.stderr or result.stdout)[-500:]}"
        )
    return result.stdout


def _local_token(local: tuple[Path, dict[str, str]], email: str) -> str:
    executable, env = local
    out = _run_local([str(executable), "user", "--username", email], env)
    if "=> User info:" not in out:
        return ""
    info = ast.literal_eval(out.split("=> User info:", 1)[1].strip().splitlines()[0])
    return str(info.get("token") or "")


def _local_set_password(local: tuple[Path, dict[str, str]], email: str, password: str) -> None:
    # The password goes by stdin (Label Studio asks for it when not given): never on a command line.
    executable, env = local
    _run_local([str(executable), "reset_password", "--username", email], env, stdin=password + "\n")


def add_labelstudio_annotators(
    *, emails: list[str], client: LabelStudio | None = None
) -> list[AnnotatorAccount]:
    """Create a Label Studio user per email (an existing one is kept as is) in the organisation of the
    platform's token, active there (users made through the API have no active organisation, and
    webhooks are looked up by it), and say how each signs in."""
    emails = list(dict.fromkeys(e.strip() for e in emails if e and e.strip()))
    bad = [e for e in emails if "@" not in e or any(c.isspace() for c in e) or len(e) > 254]
    if bad:
        raise ErrorMapError(f"not an email address: {', '.join(bad)}")
    if not emails:
        raise ErrorMapError("give at least one email address")
    client = client or labelstudio_client()
    url = client_url(client)
    local = _local_labelstudio()
    accounts = []
    with labelstudio_errors(url):
        organization = client.users.whoami().active_organization
        existing = {(u.email or "").lower(): u for u in client.users.list()}
        for email in emails:
            user = existing.get(email.lower())
            created = user is None
            if created:
                username = email.split("@", 1)[0][:30] or email
                user = client.users.create(email=email, username=username)
                client.users.update(id=user.id, active_organization=organization)
            assert user is not None  # found in the listing or just created
            password = ""
            if created and local is not None:
                password = generate_password()
                _local_set_password(local, email, password)
            token = _local_token(local, email) if local is not None else ""
            accounts.append(
                AnnotatorAccount(
                    email=email,
                    user_id=user.id,
                    created=created,
                    login_url=f"{url}/user/login/",
                    password=password,
                    token=token,
                )
            )
    return accounts


def list_labelstudio_annotators(*, client: LabelStudio | None = None) -> list[AnnotatorAccount]:
    """Every Label Studio user the platform's token sees (no secrets)."""
    client = client or labelstudio_client()
    url = client_url(client)
    with labelstudio_errors(url):
        users = sorted(client.users.list(), key=lambda u: u.id)
    return [
        AnnotatorAccount(
            email=u.email or "", user_id=u.id, created=False, login_url=f"{url}/user/login/"
        )
        for u in users
    ]
