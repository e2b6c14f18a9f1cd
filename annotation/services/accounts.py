"""Logins for the dashboard and API tokens."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token


def ensure_user(*, username: str, password: str, superuser: bool = False) -> tuple[bool, str]:
    """Create or reset a user with this password; returns (created, API token)."""
    user, created = get_user_model().objects.get_or_create(username=username)
    user.set_password(password)
    user.is_staff = user.is_superuser = bool(superuser) or user.is_superuser
    user.save()
    token, _ = Token.objects.get_or_create(user=user)
    return created, token.key
