"""manage.py run_demo — the main job on the embedded defaults (bundled data, SQLite, offline judge)."""
from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser

from annotation.services.labelstudio.client import public_url
from server.commands import ErrorMapCommand, render_summary
from taxonomy.services.demo import DEMO_PASSWORD, DEMO_USER, run_demo


class Command(ErrorMapCommand):
    help = "Run the demo pipeline on the bundled real data and print where to look and annotate."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--ratio", type=float, default=0.1)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--overlap", type=int, default=2, help="annotators per Label Studio task")
        parser.add_argument(
            "--no-labelstudio", dest="labelstudio", action="store_false",
            help="skip the push to Label Studio (when it is not running)",
        )
        parser.add_argument("--dashboard-url", default=None, help="default: where the app serves")

    def run(self, *args: Any, ratio: float, seed: int, overlap: int, labelstudio: bool, dashboard_url: str | None,
            **options: Any) -> None:
        dashboard_url = dashboard_url or public_url()[0] + "/"
        report = run_demo(say=self.stdout.write, ratio=ratio, seed=seed, labelstudio=labelstudio, overlap=overlap)
        self.stdout.write("")
        self.stdout.write(render_summary(report.summary))
        self.stdout.write("")
        if report.labelstudio_url:
            self.stdout.write(f"Annotate in Label Studio: {report.labelstudio_url}")
            self.stdout.write(
                f"  log in as {settings.LABEL_STUDIO_USERNAME} / {settings.LABEL_STUDIO_PASSWORD}; "
                f"labels come back by webhook to {public_url()[0]} while the app serves there; "
                "`manage.py sync_labelstudio` reconciles and reports failing deliveries"
            )
        if report.user_created:  # the fixed demo password, shown once: a demo login, never a real one
            self.stdout.write(f"Dashboard: {dashboard_url}  (log in as {DEMO_USER} / {DEMO_PASSWORD})")
            self.stdout.write("  demo only: this password is in the README; never use it on a reachable server")
        else:
            self.stdout.write(f"Dashboard: {dashboard_url}  (log in as {DEMO_USER} with the demo password)")
        self.stdout.write(f"  API token: {report.api_token}  (API docs at {dashboard_url}api/docs/)")
