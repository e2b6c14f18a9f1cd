"""manage.py sync_labelstudio — reconcile Label Studio annotations with the platform's human labels."""
from typing import Any

from django.core.management.base import CommandParser

from annotation.services.labelstudio.sync import sync_labelstudio
from server.commands import ErrorMapCommand


class Command(ErrorMapCommand):
    help = (
        "Pull every annotation of the pushed Label Studio projects: new and changed ones become human labels, "
        "deleted ones are removed, unchanged ones are left alone (catches missed or reordered webhooks)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--work-set", default=None, help="only this work set's projects")
        parser.add_argument("--project", type=int, default=None, help="only this Label Studio project id")

    def run(self, *args: Any, work_set: str | None, project: int | None, **options: Any) -> None:
        r = sync_labelstudio(work_set=work_set, project_id=project)
        self.stdout.write(
            f"{r.projects} project(s), {r.annotations_seen} annotations: {r.annotations_changed} new or changed, "
            f"{r.annotations_deleted} deleted"
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"labels: {r.labels_created} created, {r.labels_updated} updated, {r.labels_deleted} deleted"
            )
        )
        if r.decisions_made or r.decisions_withdrawn or r.decisions_refused:
            self.stdout.write(
                f"adjudication decisions: {r.decisions_made} made, {r.decisions_withdrawn} withdrawn, "
                f"{r.decisions_refused} annotations refused (no category, no reason or unknown category)"
            )
        for problem in r.webhook_problems:
            self.stderr.write(self.style.WARNING(f"warning: {problem}"))
