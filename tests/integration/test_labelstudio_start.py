"""Starting Label Studio with scripts/labelstudio: secrets that no argument parser misreads, and secrets
kept off the command line (which `ps` shows to every user of the machine)."""
from __future__ import annotations

import string
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest_labelstudio import SCRIPT

pytestmark = pytest.mark.labelstudio


def test_generated_secrets_never_start_with_a_dash_and_hold_only_letters_and_digits():
    # The old generator (token_urlsafe) began with '-' 1 time in 64: 5,000 draws would show it ~78 times.
    out = subprocess.run([str(SCRIPT), "secrets", "5000", "20"], capture_output=True, text=True, check=True)
    secrets = out.stdout.split()
    assert len(secrets) == 5000 and len(set(secrets)) == 5000
    allowed = set(string.ascii_letters + string.digits)
    assert all(len(s) == 20 and set(s) <= allowed for s in secrets)
    assert not any(s.startswith("-") for s in secrets)


def _process_tree(pid: int) -> list[int]:
    """pid and every descendant, from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def test_the_started_label_studio_holds_no_secret_on_its_command_line(labelstudio_server):
    pid = int((labelstudio_server.data_dir.parent / "labelstudio.pid").read_text())
    cmdlines = [
        Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode() for p in _process_tree(pid)
    ]
    assert any("label-studio" in c and " start" in c for c in cmdlines), cmdlines  # the right process
    for cmdline in cmdlines:
        assert labelstudio_server.password not in cmdline and labelstudio_server.api_key not in cmdline
        assert "--password" not in cmdline and "--user-token" not in cmdline
    # And it still took the admin and token from the environment: the API accepts the token.
    from label_studio_sdk import LabelStudio

    me = LabelStudio(base_url=labelstudio_server.url, api_key=labelstudio_server.api_key).users.whoami()
    assert me.email == labelstudio_server.username
