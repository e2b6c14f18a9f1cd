"""manage.py push_labelstudio — send a work set to Label Studio for people to verify."""
from typing import Any

from django.core.management.base import CommandParser

from annotation.services.labelstudio.push import PushReport, push_labelstudio
from annotation.services.planning import plan_annotation, save_plan
from server.commands import ErrorMapCommand


class Command(ErrorMapCommand):
    help = (
        "Create or update the Label Studio project of a work set under a taxonomy version and import its "
        "missing tasks (resumable; pushing twice duplicates nothing)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--work-set", required=True)
        parser.add_argument("--taxonomy", required=True, help="NAME (latest version) or NAME@N")
        parser.add_argument(
            "--mode", choices=["blind", "assisted", "mixed"], default="blind",
            help="blind: annotators see no judge output, nor the model or its score (for judge audits); "
            "assisted: judge labels as predictions; mixed: a seeded random share of tasks assisted and the "
            "rest blind, in one project (measures anchoring: see anchoring_report)",
        )
        parser.add_argument(
            "--assisted-share", type=float, default=None,
            help="mixed mode: the share of tasks that show the judge's pre-label (default 0.5)",
        )
        parser.add_argument(
            "--seed", type=int, default=None,
            help="mixed mode: seed of the draw (default 0); the draw is stored and kept on re-push",
        )
        parser.add_argument("--overlap", type=int, default=1, help="annotators per task (default 1)")
        parser.add_argument("--batch-size", type=int, default=None, help="tasks per import request")
        parser.add_argument("--plan", type=int, default=None, metavar="N",
                            help="push only the next N items chosen by plan_annotation (as work sets named after "
                                 "the plan, one per overlap the plan gives; --overlap is then the plan's)")
        parser.add_argument(
            "--webhook-url", default=None, metavar="URL",
            help="where Label Studio reaches this platform (default: ERRORMAP_PUBLIC_URL, else where the app "
            "serves: scripts/web's URL or 127.0.0.1:ERRORMAP_WEB_PORT); moves an existing webhook",
        )

    def run(self, *args: Any, work_set: str, taxonomy: str, mode: str, overlap: int,
            batch_size: int | None, assisted_share: float | None, seed: int | None, plan: int | None,
            webhook_url: str | None, **options: Any) -> None:
        options = {"taxonomy": taxonomy, "mode": mode, "batch_size": batch_size, "assisted_share": assisted_share,
                   "seed": seed, "webhook_url": webhook_url}
        if plan is not None:
            planned = save_plan(plan_annotation(work_set=work_set, budget=plan, taxonomy=taxonomy))
            for name, plan_overlap in planned:
                self.stdout.write(f"planned work set {name} (overlap {plan_overlap})")
                self.write_push(push_labelstudio(work_set=name, overlap=plan_overlap, **options))
            return
        self.write_push(push_labelstudio(work_set=work_set, overlap=overlap, **options))

    def write_push(self, report: PushReport) -> None:
        what = "created" if report.created_project else "updated" if report.config_updated else "up to date"
        self.stdout.write(
            f"project {report.labelstudio_project_id} {what}: {report.tasks_total} tasks in the work set, "
            f"{report.tasks_imported} imported now ({report.predictions_imported} with judge predictions), "
            f"{report.tasks_recovered} recovered from an earlier push, {report.tasks_refreshed} brought "
            f"up to date ({report.predictions_refreshed} judge predictions written)"
        )
        if report.tasks_assisted is not None:
            self.stdout.write(
                f"mixed: {report.tasks_assisted} of {report.tasks_total} tasks show the judge's pre-label, "
                f"{report.tasks_total - report.tasks_assisted} are blind (the draw is stored per task)"
            )
        if report.webhook_warning:
            self.stderr.write(self.style.WARNING(f"warning: {report.webhook_warning}"))
        elif report.webhook_url:
            self.stdout.write(f"webhook: {report.webhook_url} (sync_labelstudio reports failing deliveries)")
        self.stdout.write(self.style.SUCCESS(f"annotate at {report.url}"))
