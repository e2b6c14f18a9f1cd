"""The arguments refine_judge and judge_learning_curve share: which taxonomy, which judge, how many folds."""
from django.core.management.base import CommandParser

from annotation.core.crossfit import DEFAULT_FOLDS
from server.commands import ErrorMapCommand
from taxonomy.services.refinement import JUDGES


class GoldJudgeCommand(ErrorMapCommand):
    """A command that runs a judge learning from gold, cross-fitted over K folds."""

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--taxonomy", required=True, help="NAME[@VERSION] (default: the latest version)")
        parser.add_argument("--judge", default="offline", choices=JUDGES)
        parser.add_argument("--model", help="OpenAI model name (default: ERRORMAP_JUDGE_MODEL)")
        parser.add_argument("--folds", type=int, default=DEFAULT_FOLDS, help="held-out folds (default 5)")
        parser.add_argument("--reps", type=int, default=1000, help="bootstrap resamples (default 1000)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")
