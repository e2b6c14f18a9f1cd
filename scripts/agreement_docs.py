"""Regenerate docs/agreement.md: agreement, judge audit and adjudication on the WMT23 MQM ratings.

Runs the real commands against a throw-away SQLite database (nothing touches var/errormap.sqlite3):
ingest the MQM items, import the MQM ratings as human labels, add judge labels, then print the outputs.
Usage: .venv/bin/python scripts/agreement_docs.py [--judge-labels FILE.csv]
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MQM = ROOT / "data" / "wmt23-mqm-ende" / "sxs_mqm_generalMT2023_ende.3ratingsPerSegment.tsv.tar.gz"
DOC = ROOT / "docs" / "agreement.md"
OFFLINE_JUDGE = "judge:offline"


def baseline_judge_rows() -> list[dict]:
    """A transparent stand-in judge that sees only source and translation (no human label):
    identical text -> Non-translation!, much shorter -> Omission, much longer -> Addition, else Not an error.
    Its confidence grows with how extreme the length ratio is."""
    from annotation.models import Prediction

    rows = []
    for p in Prediction.objects.filter(example__dataset__name="wmt23-mqm-ende").select_related("example", "model"):
        source, target = p.example.input_text.strip(), p.output_text.strip()
        ratio = len(target) / max(len(source), 1)
        if target == source:
            category, confidence = "Non-translation!", 0.95
        elif ratio < 0.8:
            category, confidence = "Accuracy / Omission (Translation)", min(0.95, 0.5 + (0.8 - ratio))
        elif ratio > 1.6:
            category, confidence = "Accuracy / Addition", min(0.95, 0.5 + (ratio - 1.6) / 2)
        else:
            category, confidence = "Not an error", 0.55
        rows.append({"dataset": "wmt23-mqm-ende", "example_id": p.example.example_id, "model": p.model.name,
                     "annotator": "length-ratio-baseline", "category": category, "source": "judge",
                     "confidence": f"{confidence:.3f}"})
    return rows


def call(*args: str) -> str:
    from django.core.management import call_command

    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def excerpt(report: dict, keys: list[str]) -> str:
    return json.dumps({k: report[k] for k in keys if k in report}, indent=2, ensure_ascii=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--judge-labels", type=Path, help="CSV of judge labels to audit instead of the baseline")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="agreement-docs-"))
    os.environ["DATABASE_URL"] = f"sqlite:///{work / 'db.sqlite3'}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "server.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    call("migrate", "--verbosity", "0")
    call("ingest_results", str(MQM))
    imported = call("import_labels", str(MQM)).strip().splitlines()[0].replace(f"{ROOT}/", "")
    judge_file = args.judge_labels
    if judge_file is None:
        judge_file = work / "judge.csv"
        rows = baseline_judge_rows()
        with judge_file.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    call("import_labels", str(judge_file), "--source", "judge", "--taxonomy", "wmt23-mqm")
    # The platform's own offline judge, on every MQM failure, labelling into the raters' taxonomy.
    call("sample_failures", "--dataset", "wmt23-mqm-ende", "--ratio", "1", "--name", "mqm-failures")
    call("analyze", "--work-set", "mqm-failures", "--judge", "offline")
    call("prelabel", "--taxonomy", "wmt23-mqm@1", "--work-set", "mqm-failures", "--judge", "offline")

    agreement_text = call("agreement")
    agreement = json.loads(call("agreement", "--json"))
    depth1 = json.loads(call("agreement", "--json", "--depth", "1"))
    kalpha = json.loads(call("agreement", "--json", "--ci-method", "kalpha"))
    gpt4 = json.loads(call("agreement", "--json", "--model", "GPT4-5shot_with_refA"))
    audit_text = call("judge_audit")
    audit = json.loads(call("judge_audit", "--json"))
    unanimous = json.loads(call("adjudicate", "--json"))
    two_thirds = json.loads(call("adjudicate", "--json", "--rule", "two-thirds"))
    queue = json.loads(call("adjudicate", "--json", "--list"))
    export = call("export_gold", str(work / "mqm-gold.jsonl")).strip()
    audit_after_gold = json.loads(call("judge_audit", "--json"))

    baseline_name = next(name for name in audit["judges"] if name != OFFLINE_JUDGE)
    judge = audit["judges"][baseline_name]
    judge_gold = audit_after_gold["judges"][baseline_name]["vs_gold"]
    offline = audit["judges"][OFFLINE_JUDGE]
    offline_majority = offline["vs_human_majority"]
    offline_gold = audit_after_gold["judges"][OFFLINE_JUDGE]["vs_gold"]
    majority = judge["vs_human_majority"]
    top_categories = sorted(majority["per_category"].items(), key=lambda kv: -kv[1]["support"])[:6]
    doc = f"""# Agreement and judge reliability on real data (WMT23 MQM, English→German)

_Generated by `.venv/bin/python scripts/agreement_docs.py`; every figure below is printed by the commands
shown, run on a fresh database holding only this data._

The data: WMT23 English→German translations by 10 systems, every (system, segment) item rated by exactly
3 of 10 professional raters with MQM error categories (Google's wmt-mqm-human-evaluation, Apache-2.0, in
`data/wmt23-mqm-ende/`). Each rater is an annotator; the categories a rater gives one item form one value
(a set: raters often mark several errors; MQM's `No-error` is imported as the verdict
`Not an error`). Attention-check rows
(`HOTW-test`) are left out. Import: `{imported}`.

## `manage.py agreement`

```
{agreement_text.strip()}
```

How to read it:
- **level `masi`**: because values are sets, Krippendorff's alpha uses the MASI distance (Passonneau 2006:
  1 − Jaccard × M with M = 1, 2/3, 1/3, 0). Fleiss' kappa, Gwet's AC1, Brennan-Prediger and percent
  agreement count two sets as agreeing only when identical, so they are stricter than MASI alpha.
- **ci95**: {agreement['ci_method']}. The Krippendorff/Hayes bootstrap (`--ci-method kalpha`) gives
  {kalpha['ci95']} here: it redraws pairs from the coincidence matrix with chance disagreement held fixed
  and is usually narrower than resampling items (Gwet 2015; Hughes 2022 argue it understates uncertainty),
  so reports default to items.
- **per_category** is alpha of "this category" vs "any other" (binary, per rating). Among the frequent
  categories raters agree most on `Fluency / Punctuation` ({agreement['per_category']['Fluency / Punctuation']})
  and `Not an error` ({agreement['per_category']['Not an error']}), least on `Fluency / Grammar`
  ({agreement['per_category']['Fluency / Grammar']}); values near 0 for rare categories (locale conventions,
  terminology) rest on a handful of ratings.
- **per_depth** cuts every category path to its ancestor at depth d: at depth 1 `Accuracy / Mistranslation`
  and `Accuracy / Omission (Translation)` agree, and alpha rises from {agreement['per_depth'].get('2')} to
  {agreement['per_depth']['1']} (`--depth 1` computes everything at that depth: Fleiss' kappa
  {depth1['fleiss_kappa']}, percent agreement {depth1['percent_agreement']}).
- **per_annotator**: each rater's agreement with the others and alpha without them; a rater whose removal
  raises alpha (positive `alpha_without` − `krippendorff_alpha`) agrees least with the rest.
- Filters narrow the items: `--model GPT4-5shot_with_refA` gives alpha {gpt4['krippendorff_alpha']}
  (95% CI {gpt4['ci95']}) on its {gpt4['n_items']} items.

Headline figures and the per-category / per-depth parts of `agreement --json`:

```json
{excerpt(agreement, ['level', 'krippendorff_alpha', 'ci95', 'confidence_intervals', 'fleiss_kappa', 'gwet_ac1',
                     'brennan_prediger', 'percent_agreement', 'n_items', 'n_annotators', 'n_ratings',
                     'per_depth', 'per_category', 'undefined'])}
```

Per annotator:

```json
{excerpt(agreement, ['per_annotator'])}
```

**Against gold, and where annotators disagree.** Once items have gold labels (`adjudicate`,
`import_labels --source gold`), `per_annotator_vs_gold` gives each annotator's `n_items`, exact-match
`accuracy` and Cohen's `cohen_kappa` (each distinct category set one label) against the gold set, on
the items both have (an annotator whose agreement settled an item by the auto rule agrees with its gold
by construction, so read it beside the adjudicated items). `disagreements` counts the items two or more
annotators labelled with different sets and lists the first 1,000 by id, each with its key
(`DATASET|EXAMPLE_ID|MODEL`, what `adjudicate --resolve` takes) and every annotator's categories, for
linking to the item. Both are in `agreement --json`, the API and the agreement page's report.

## `manage.py judge_audit`

MQM has no LLM judge. To show the audit on real human labels, the script adds a transparent stand-in,
`length-ratio-baseline`: it sees only the source and the translation (never a human label) and says
`Non-translation!` when they are identical, `Accuracy / Omission (Translation)` when the translation is
much shorter, `Accuracy / Addition` when much longer, else `Not an error`. It is a floor a real judge must
beat, not a judge; rerun with `--judge-labels FILE.csv` (columns dataset, example_id, model, annotator,
category, source=judge, confidence) to audit a real one.

**Auditing a person.** `judge_audit --judge NAME` takes a human annotator's name as well as a judge's:
the person is compared with gold, and with the majority of the *other* annotators on each item (their
own labels never count towards the reference); `alpha_humans` is then the others' alpha and
`alpha_with_judge` the alpha with the person added back. Their entry says `"kind": "human"`.

```
{audit_text.strip()}
```

- The humans' mode is `{audit['human_annotation_mode']}`: these labels were imported, not collected blind or
  assisted in a Label Studio project of this platform (for those, the report says `blind` or `assisted`).
- Against the human majority (categories chosen by at least 2 of the 3 raters;
  {majority['n_items_without_human_majority']} items have no majority and are left out): accuracy
  {majority['accuracy']} (exact set match), Cohen's kappa {majority['cohen_kappa']}.
- Adding the baseline as a fourth annotator {judge['judge_effect_on_alpha']} alpha
  ({judge['alpha_humans']} → {judge['alpha_with_judge']}).
- Against gold (after `adjudicate --rule two-thirds`): {judge_gold.get('n_items')} items, accuracy
  {judge_gold.get('accuracy')}.

### The platform's offline judge on the same items

The script also runs the real pipeline on every MQM failure (`sample_failures --ratio 1`, `analyze
--judge offline`, `prelabel --taxonomy wmt23-mqm@1 --judge offline`): the offline judge's rules are
written for reasoning and answer formats, not translation, and its nearest-category matching only sees
MQM's category names (they have no descriptions), so this is an honest measure of how little it
transfers: {offline_majority.get('n_items')} failures compared with the human majority, accuracy
{offline_majority.get('accuracy')}, Cohen's kappa {offline_majority.get('cohen_kappa')}; as one more
annotator it {offline['judge_effect_on_alpha']} alpha ({offline['alpha_humans']} →
{offline['alpha_with_judge']}); against gold {offline_gold.get('n_items')} items, accuracy
{offline_gold.get('accuracy')}. An LLM judge (`--judge openai`) is what this audit is for.

Per-category precision / recall / F1 against the majority (largest categories) and calibration:

```json
{json.dumps({'per_category': dict(top_categories), 'calibration': majority['calibration']},
           indent=2, ensure_ascii=False)}
```

## Adjudication and the gold set

`manage.py adjudicate` (rule: {unanimous['rule']}) makes {unanimous['auto_gold']} of {unanimous['items']} items
gold and queues {unanimous['queued']}. With `--rule two-thirds` ({two_thirds['rule']}):
{two_thirds['auto_gold']} gold, {two_thirds['queued']} queued. MQM raters seldom give identical category
sets, so most items need an adjudicator: `manage.py adjudicate --list` shows each queued item with every
rater's and the judge's labels, e.g.

```json
{json.dumps(queue[0], indent=2, ensure_ascii=False)}
```

and `manage.py adjudicate --resolve ID --category PATH --by NAME --reason TEXT` records the decision, who
made it and why (every decision is kept; a newer one supersedes the older).

**Rules.** `unanimous` (default): gold when every annotator (at least 2) gives the same categories.
`two-thirds`: gold when at least 2/3 of the annotators (at least 2) give the same categories; with 2
annotators (the demo's overlap) that means both, so unanimous pairs settle. Each decision's reason
says which criterion settled it (`2 of 2 annotators agree (unanimous)`, `2 of 3 annotators agree
(>= 2/3)`) and the report counts `auto_gold_unanimous` and `auto_gold_by_share`. An item the rule
cannot settle says how to go on in its `why` (too few annotators: more labels via `push_labelstudio
--overlap N` and `sync_labelstudio`; disagreement or a proposed category: `adjudicate --resolve` or
the Label Studio adjudication project), and the report's `next_step` sums it up.
`manage.py export_gold mqm-gold.jsonl`: {export.split(' -> ')[0]}, with a datasheet beside the file
(`mqm-gold.jsonl.datasheet.md`); the same database always gives the same bytes.

## For the API and the Label Studio adjudication project

The commands are thin; the same functions serve views and tasks:
- `annotation.selectors.agreement.compute_agreement(label_filter=LabelFilter(...), depth=None, reps=1000,
  seed=0, ci_method="units")` → an `AgreementReport` (frozen; `.to_dict()` is the `agreement --json` object);
- `annotation.selectors.judge_audit.audit_judge(label_filter=..., judges=(...))` → a `JudgeAuditReport`
  (`.to_dict()` is the `judge_audit --json` object);
- `annotation.services.adjudication.adjudication_queue(taxonomy=None)` → open items, each with every
  annotator's and the judge's labels; `resolve_item(item=ID or "DATASET|EXAMPLE_ID|MODEL",
  categories=[...], by=NAME, reason=TEXT)` → an `AdjudicationDecision` (gold labels rewritten, queue item
  resolved); `decision_history(item=...)`; `adjudicate_labels(label_filter=..., rule=RULES["two-thirds"])`.
"""
    DOC.write_text(doc)
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
