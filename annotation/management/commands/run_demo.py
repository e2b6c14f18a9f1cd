"""manage.py run_demo — the main job on the embedded defaults (bundled data, SQLite, offline judge)."""
from annotation.management.base import ErrorMapCommand
from annotation.management.commands.summary import render_summary
from annotation.services.demo import run_demo


class Command(ErrorMapCommand):
    help = "Run the demo pipeline on the bundled real data and print failures per dataset and model."

    def add_arguments(self, parser):
        parser.add_argument("--ratio", type=float, default=0.1)
        parser.add_argument("--seed", type=int, default=0)

    def run(self, *args, ratio, seed, **options):
        report = run_demo(say=self.stdout.write, ratio=ratio, seed=seed)
        self.stdout.write("")
        self.stdout.write(render_summary(report.summary))
