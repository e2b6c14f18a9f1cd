"""manage.py create_demo_user: a login for the web UI and an API token (idempotent)."""
import os
from typing import Any

from django.core.management.base import CommandParser

from annotation.services.accounts import ensure_user
from server.commands import ErrorMapCommand


class Command(ErrorMapCommand):
    help = "Create (or reset) a user for the dashboard and print its API token."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default=os.environ.get("ERRORMAP_DEMO_USER", "demo"))
        parser.add_argument("--password", default=os.environ.get("ERRORMAP_DEMO_PASSWORD", "demo-password"))
        parser.add_argument("--superuser", action="store_true", help="also allow the admin site")

    def run(self, *args: Any, username: str, password: str, superuser: bool, **options: Any) -> None:
        created, token = ensure_user(username=username, password=password, superuser=superuser)
        if created:  # shown once; a demo login, never a real one
            self.stdout.write(f"created user {username!r} (password {password!r}; demo only, change it for real use)")
        else:
            self.stdout.write(f"updated user {username!r} (password reset to the one given)")
        self.stdout.write(f"API token: {token}")
