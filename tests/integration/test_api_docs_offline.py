"""The browsable API docs load their JavaScript from this server, never from a CDN."""
import re

import pytest
from django.contrib.auth.models import User

pytestmark = pytest.mark.django_db


def test_swagger_page_references_only_local_assets(client):
    client.force_login(User.objects.create_user("docs", password="x-docs-password"))
    page = client.get("/api/docs/").content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert any("swagger-ui" in s for s in sources)
    assert not [s for s in sources if s.startswith(("http://", "https://", "//"))]
