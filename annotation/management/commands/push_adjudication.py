"""manage.py push_adjudication — send the open adjudication queue to a Label Studio adjudication project."""
from typing import Any

from django.core.management.base import CommandParser

from annotation.services.labelstudio.adjudication import push_adjudication
from server.commands import ErrorMapCommand


class Command(ErrorMapCommand):
    help = (
        "Create or update the Label Studio adjudication project of a taxonomy version and import every open "
        "queue item not yet in it (each showing the item, every annotator's and the judge's labels). Resolved "
        "items are not pushed; pushing twice duplicates nothing. Decisions come back by webhook or "
        "`sync_labelstudio`."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--taxonomy", required=True, help="NAME (latest version) or NAME@N")
        parser.add_argument("--work-set", default=None, help="only the queue items in this work set")
        parser.add_argument("--adjudicator", action="append", default=[], metavar="EMAIL",
                            help="a Label Studio user (by email) to register as an adjudicator (repeatable)")
        parser.add_argument("--batch-size", type=int, default=None, help="tasks per import request")
        parser.add_argument("--webhook-url", default=None, metavar="URL",
                            help="where Label Studio reaches this platform (default: ERRORMAP_PUBLIC_URL, else where "
                                 "the app serves); moves an existing webhook")

    def run(self, *args: Any, taxonomy: str, work_set: str | None, adjudicator: list[str],
            batch_size: int | None, webhook_url: str | None, **options: Any) -> None:
        r = push_adjudication(taxonomy=taxonomy, work_set=work_set, adjudicators=adjudicator, batch_size=batch_size,
                              webhook_url=webhook_url)
        what = "created" if r.created_project else "config updated" if r.config_updated else "up to date"
        self.stdout.write(
            f"adjudication project {r.labelstudio_project_id} ({r.taxonomy_version}) {what}: {r.open_items} open "
            f"items, {r.tasks_imported} imported now, {r.tasks_recovered} recovered from an earlier push, "
            f"{r.tasks_refreshed} refreshed (labels changed since their push)"
        )
        if r.adjudicators:
            self.stdout.write(f"adjudicators: {', '.join(r.adjudicators)}")
        if r.webhook_warning:
            self.stderr.write(self.style.WARNING(f"warning: {r.webhook_warning}"))
        elif r.webhook_url:
            self.stdout.write(f"webhook: {r.webhook_url}")
        self.stdout.write(self.style.SUCCESS(f"adjudicate at {r.url}"))
