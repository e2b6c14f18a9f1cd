"""Deployment checks (`manage.py check --deploy`): the compose stack runs them before anything starts."""
from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core import checks

# docker/.env.example's placeholders: "change-me…" values and an all-zero token.
PLACEHOLDER_MARK = "change-me"


def is_placeholder(value: str) -> bool:
    """True for a value copied from docker/.env.example and never replaced."""
    return PLACEHOLDER_MARK in value.lower() or (len(value) >= 8 and set(value) == {"0"})


@checks.register(checks.Tags.security, deploy=True)
def secrets_are_not_placeholders(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Refuse to deploy with a secret still as docker/.env.example wrote it."""
    values = {
        "SECRET_KEY": settings.SECRET_KEY,
        "the database password": settings.DATABASES["default"].get("PASSWORD") or "",
        "LABEL_STUDIO_API_KEY": settings.LABEL_STUDIO_API_KEY,
        "LABEL_STUDIO_WEBHOOK_SECRET": settings.LABEL_STUDIO_WEBHOOK_SECRET,
        "LABEL_STUDIO_PASSWORD": settings.LABEL_STUDIO_PASSWORD,
        # Not used by the app, but set for PostgreSQL and Label Studio from the same file.
        "POSTGRES_PASSWORD": os.environ.get("POSTGRES_PASSWORD", ""),
    }
    return [
        checks.Error(
            f"{name} is still the placeholder from docker/.env.example",
            hint="set a real secret in docker/.env (python3 -c 'import secrets; print(secrets.token_hex(20))')",
            id="errormap.E001",
        )
        for name, value in values.items()
        if value and is_placeholder(value)
    ]
