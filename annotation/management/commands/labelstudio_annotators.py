"""manage.py labelstudio_annotators — Label Studio accounts for annotators: add them, list them."""
from typing import Any

from django.core.management.base import CommandParser

from annotation.services.labelstudio.annotators import (
    add_labelstudio_annotators,
    list_labelstudio_annotators,
)
from server.commands import ErrorMapCommand


class Command(ErrorMapCommand):
    help = (
        "add EMAIL [EMAIL ...]: create Label Studio users in the platform's organisation and print how each "
        "signs in (a password and an API token, on the local Label Studio of scripts/labelstudio; an existing "
        "user is kept and gets no new password). list: the Label Studio users."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["add", "list"])
        parser.add_argument("emails", nargs="*", metavar="EMAIL")

    def run(self, *args: Any, action: str, emails: list[str], **options: Any) -> None:
        if action == "list":
            for account in list_labelstudio_annotators():
                self.stdout.write(f"{account.user_id}\t{account.email}")
            return
        for account in add_labelstudio_annotators(emails=emails):
            what = "created" if account.created else "exists"
            self.stdout.write(f"{account.email} (Label Studio user {account.user_id}, {what}): sign in at "
                              f"{account.login_url}")
            if account.password:
                self.stdout.write(f"  password: {account.password}")
            elif account.created:
                self.stdout.write("  password: not set here (not the local Label Studio): set one in Label Studio")
            if account.token:
                self.stdout.write(f"  API token: {account.token}")
        self.stdout.write("Give each person their own line; the password is shown only now.")
