"""manage.py analyze — stage 1 of ErrorMap: the judge analyses each unique failure (resumable)."""
from typing import Any

from django.core.management.base import CommandParser

from annotation.services.judging import JUDGES, analyze_failures
from server.commands import ErrorMapCommand


class Command(ErrorMapCommand):
    help = (
        "Analyse each failure of a work set (default: the most recent; without any, all failures) "
        "with the judge: required criteria, error title, error summary. Re-running continues where "
        "a stopped run left off and never asks the judge twice."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--work-set", dest="work_set", help="work set name (default: the most recent)")
        parser.add_argument("--judge", choices=JUDGES, help="judge backend (default: ERRORMAP_JUDGE, offline)")
        parser.add_argument("--model", help="model name for the openai judge (default: ERRORMAP_JUDGE_MODEL)")
        parser.add_argument("--limit", type=int, help="analyse at most N more unique failures in this run")
        parser.add_argument(
            "--k-correct", dest="k_correct", type=int, default=1,
            help="show the judge up to K correct outputs of other models on the same example (default 1)",
        )
        parser.add_argument(
            "--retry-failed", action="store_true",
            help="also re-analyse failures whose analysis failed on an invalid answer",
        )

    def run(self, *args: Any, work_set: str | None, judge: str | None, model: str | None, limit: int | None,
            k_correct: int, retry_failed: bool, **options: Any) -> None:
        report = analyze_failures(
            work_set=work_set, judge=judge, model=model, limit=limit, k_correct=k_correct,
            retry_failed=retry_failed,
        )
        judge_name = report.judge + (f":{report.model}" if report.model else "")
        u = report.usage
        self.stdout.write(
            f"judge {judge_name}, prompt {report.prompt_version}: {report.failures} failures, "
            f"{report.unique} unique, {report.already_done} already analysed"
        )
        self.stdout.write(
            f"requests {u['requests']}, cache hits {u['cache_hits']}, retries {u['http_retries']} (http) "
            f"+ {u['invalid_retries']} (invalid answers), tokens {u['prompt_tokens']} in / "
            f"{u['completion_tokens']} out" + (f", cost ${report.cost_usd:.4f}" if report.cost_usd is not None else "")
        )
        style = self.style.SUCCESS if report.failed == 0 else self.style.WARNING
        self.stdout.write(
            style(f"run #{report.run_id}: {report.analysed} analysed, {report.failed} failed (reasons kept)")
        )
