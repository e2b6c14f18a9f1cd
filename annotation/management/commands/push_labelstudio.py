"""manage.py push_labelstudio — send a work set to Label Studio for people to verify."""
from annotation.management.base import ErrorMapCommand
from annotation.services.labelstudio.push import push_labelstudio


class Command(ErrorMapCommand):
    help = (
        "Create or update the Label Studio project of a work set under a taxonomy version and import its "
        "missing tasks (resumable; pushing twice duplicates nothing)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--work-set", required=True)
        parser.add_argument("--taxonomy", required=True, help="NAME (latest version) or NAME@N")
        parser.add_argument(
            "--mode", choices=["blind", "assisted"], default="blind",
            help="blind: annotators see no judge output (for judge audits); assisted: judge labels as predictions",
        )
        parser.add_argument("--overlap", type=int, default=1, help="annotators per task (default 1)")
        parser.add_argument("--batch-size", type=int, default=None, help="tasks per import request")

    def run(self, *args, work_set, taxonomy, mode, overlap, batch_size, **options):
        report = push_labelstudio(
            work_set=work_set, taxonomy=taxonomy, mode=mode, overlap=overlap, batch_size=batch_size
        )
        what = "created" if report.created_project else "updated" if report.config_updated else "up to date"
        self.stdout.write(
            f"project {report.labelstudio_project_id} {what}: {report.tasks_total} tasks in the work set, "
            f"{report.tasks_imported} imported now ({report.predictions_imported} with judge predictions), "
            f"{report.tasks_recovered} recovered from an earlier push, {report.tasks_refreshed} brought "
            f"up to date ({report.predictions_refreshed} judge predictions written)"
        )
        self.stdout.write(self.style.SUCCESS(f"annotate at {report.url}"))
