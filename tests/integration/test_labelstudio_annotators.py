"""manage.py labelstudio_annotators against a real Label Studio: the people it adds can sign in and work."""
from __future__ import annotations

import io
import re
import uuid

import httpx
import pytest
from django.core.management import CommandError, call_command
from label_studio_sdk import LabelStudio

from annotation.models import LabelStudioTask
from annotation.services.labelstudio.push import push_labelstudio
from annotation.services.labelstudio.sync import sync_labelstudio
from tests.integration.test_labelstudio import (
    human_labels,
    make_taxonomy,
    make_work_set,
    taxonomy_result,
)

pytestmark = [pytest.mark.labelstudio, pytest.mark.django_db(transaction=True)]


def sign_in(url: str, email: str, password: str) -> bool:
    """Log in through Label Studio's own login form, as a person would."""
    with httpx.Client(base_url=url, follow_redirects=False) as web:
        page = web.get("/user/login/")
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        answer = web.post("/user/login/", data={"csrfmiddlewaretoken": csrf, "email": email, "password": password},
                          headers={"Referer": f"{url}/user/login/"})
        return answer.status_code == 302 and "/user/login" not in answer.headers.get("location", "")


def test_added_annotators_sign_in_and_their_annotations_arrive(labelstudio, settings):
    # Label Studio lives for the whole test session (the README test adds dana@ and eve@ too): new people.
    tag = uuid.uuid4().hex[:8]
    dana, eve = f"dana-{tag}@example.org", f"eve-{tag}@example.org"
    settings.LABEL_STUDIO_DATA_DIR = str(labelstudio.data_dir)
    settings.ERRORMAP_PUBLIC_URL = "http://127.0.0.1:9"
    out = io.StringIO()
    call_command("labelstudio_annotators", "add", dana, eve, stdout=out)
    text = out.getvalue()
    blocks = dict(re.findall(r"^(\S+@example\.org) \(Label Studio user \d+, created\).*?\n  password: (\w+)", text,
                             flags=re.MULTILINE))
    tokens = dict(zip(re.findall(r"^(\S+@example\.org) ", text, flags=re.MULTILINE),
                      re.findall(r"API token: (\w+)", text)))
    assert set(blocks) == set(tokens) == {dana, eve}
    assert all(not p.startswith("-") and len(p) == 20 for p in blocks.values())
    # The password works on Label Studio's login page; a wrong one does not.
    assert sign_in(labelstudio.url, dana, blocks[dana])
    assert not sign_in(labelstudio.url, dana, "wrong-password")

    # The token works, and the annotation made with it reaches the platform as dana's.
    make_taxonomy("errors-people")
    _, (p0,) = make_work_set("ws-people", 1)
    push_labelstudio(work_set="ws-people", taxonomy="errors-people")
    dana_client = LabelStudio(base_url=labelstudio.url, api_key=tokens[dana])
    assert dana_client.users.whoami().email == dana
    task_id = LabelStudioTask.objects.get(prediction=p0).labelstudio_id
    made = dana_client.annotations.create(id=task_id, result=taxonomy_result("Fluency / Grammar"))
    sync_labelstudio(work_set="ws-people")
    assert [(l[0], l[3], l[6]) for l in human_labels()] == [(p0.pk, "Fluency / Grammar", f"ls:{made.id}")]
    from annotation.models import Annotator

    assert Annotator.objects.get(labelstudio_user_id=made.completed_by).name == dana

    # Adding again keeps the user (no new password); list shows them; a bad address is refused.
    again = io.StringIO()
    call_command("labelstudio_annotators", "add", dana, stdout=again)
    assert "exists" in again.getvalue() and "password:" not in again.getvalue()
    assert sign_in(labelstudio.url, dana, blocks[dana])
    listed = io.StringIO()
    call_command("labelstudio_annotators", "list", stdout=listed)
    assert dana in listed.getvalue() and eve in listed.getvalue()
    with pytest.raises(CommandError, match="not an email address"):
        call_command("labelstudio_annotators", "add", "not-an-address")
