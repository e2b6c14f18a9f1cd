"""manage.py create_demo_user: a login for the web UI and an API token (idempotent)."""
import os

from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from annotation.management.base import ErrorMapCommand


class Command(ErrorMapCommand):
    help = "Create (or reset) a user for the dashboard and print its API token."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("ERRORMAP_DEMO_USER", "demo"))
        parser.add_argument("--password", default=os.environ.get("ERRORMAP_DEMO_PASSWORD", "demo-password"))
        parser.add_argument("--superuser", action="store_true", help="also allow the admin site")

    def run(self, *args, username, password, superuser, **options):
        user, created = get_user_model().objects.get_or_create(username=username)
        user.set_password(password)
        user.is_staff = user.is_superuser = bool(superuser) or user.is_superuser
        user.save()
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(f"{'created' if created else 'updated'} user {username!r} (password {password!r})")
        self.stdout.write(f"API token: {token.key}")
