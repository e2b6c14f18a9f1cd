"""manage.py summary — failures per dataset and model, as a table or JSON."""
import json as json_module

from annotation.management.base import ErrorMapCommand
from annotation.selectors import failure_summary


class Command(ErrorMapCommand):
    help = "Print predictions, failures and the failure threshold per dataset and model."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true")

    def run(self, *args, json: bool, **options):
        rows = failure_summary()
        if json:
            self.stdout.write(json_module.dumps(rows, indent=2))
            return
        self.stdout.write(render_summary(rows))


def render_summary(rows: list[dict]) -> str:
    """A fixed-width table; names are printed as data, never interpreted."""
    header = f"{'dataset':30} {'model':28} {'predictions':>11} {'failures':>8} {'share':>6} {'threshold':>9}"
    lines = [header, "-" * len(header)]
    for r in rows:
        threshold = "-" if r["threshold"] is None else f"{r['threshold']:.3g}"
        lines.append(
            f"{r['dataset'][:30]:30} {r['model'][:28]:28} {r['predictions']:11d} {r['failures']:8d} "
            f"{r['failure_share']:6.1%} {threshold:>9}"
        )
    total_p = sum(r["predictions"] for r in rows)
    total_f = sum(r["failures"] for r in rows)
    lines.append(f"{'total':59} {total_p:11d} {total_f:8d} {(total_f / total_p if total_p else 0):6.1%}")
    return "\n".join(lines)
