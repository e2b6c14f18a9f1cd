"""manage.py refine_judge — a candidate judge prompt from gold, accepted only if it beats the current one."""
from typing import Any

from server.commands import format_statistic as fmt
from taxonomy.management.gold_judge_command import GoldJudgeCommand
from taxonomy.services.refinement import refine_judge


class Command(GoldJudgeCommand):
    help = ("Build a candidate judge prompt from gold (OpenAI: few-shot examples per category, the judge's "
            "misses first, and decision rules where it disagreed with gold; offline: gold neighbours vote and "
            "the commonest gold category replaces Other), compare it with the current one on held-out folds, "
            "and accept it only when its Cohen's kappa with gold is higher and the paired bootstrap 95% "
            "interval of the difference excludes 0. The report is stored; an accepted prompt becomes the "
            "judge's default for the taxonomy (prelabel uses it).")

    def run(self, *args: Any, **o: Any) -> None:
        report = refine_judge(taxonomy=o["taxonomy"], judge=o["judge"], model=o["model"], folds=o["folds"],
                              reps=o["reps"])
        self.write_report(report, as_json=o["json"], summary=summary_text)


def summary_text(r: dict[str, Any]) -> str:
    """Both prompts' figures, the difference and the decision."""
    def line(name: str) -> str:
        part = r[name]
        ci = part["ci95"] or [None, None]
        return (f"  {name:9} {part['prompt_version']}: kappa {fmt(part['kappa'])} [{fmt(ci[0])}, {fmt(ci[1])}],"
                f" accuracy {fmt(part['accuracy'])}, macro F1 {fmt(part['macro_f1'])}")
    ci = r["difference"]["ci95"] or [None, None]
    verdict = ("ACCEPTED: it is now the judge's default for this taxonomy" if r["accepted"]
               else "rejected: the interval of the difference does not exclude 0 (or the candidate is not better)")
    return "\n".join([(f"{r['taxonomy']}, judge {r['judge']}, {r['folds']} held-out folds over {r['n_items']} "
                       "gold items"),
                      line("current"), line("candidate"),
                      f"  difference in kappa {fmt(r['difference']['kappa'])} [{fmt(ci[0])}, {fmt(ci[1])}]: {verdict}"])
