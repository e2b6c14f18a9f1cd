"""Export the gold error set (JSONL or CSV) with a datasheet beside it; same database -> same bytes."""
from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annotation.core.agreement import RatingTable, agreement_report
from annotation.core.output_files import csv_text, write_file
from annotation.errors import ErrorMapError
from annotation.models import AdjudicationDecision, Annotator, Label, Prediction
from annotation.selectors import LabelFilter, default_version, label_values, select_labels
from annotation.services.runs import stage_run
from taxonomy.models import TaxonomyVersion

FORMATS = ("jsonl", "csv")
CSV_COLUMNS = ("dataset", "example_id", "model", "input", "output", "reference", "gold_categories",
               "annotator_labels", "judge_labels", "n_annotators", "item_agreement", "taxonomy_version",
               "provenance")
NOTE_COLUMNS = ("annotator_notes", "proposed_categories")  # with --with-notes


@dataclass(frozen=True)
class GoldExportReport:
    """Where the export went and what it holds."""

    path: str
    datasheet: str
    items: int
    sha256: str


def datasheet_path(path: Path) -> Path:
    """gold.jsonl -> gold.jsonl.datasheet.md, beside the data file (a CSV beside it keeps its own)."""
    return path.with_name(f"{path.name}.datasheet.md")


def _sets_by_prediction(label_filter: LabelFilter, version: TaxonomyVersion, source: str,
                        prediction_ids: set[int]) -> dict[int, dict[str, list[str]]]:
    f = LabelFilter(datasets=label_filter.datasets, models=label_filter.models, sources=(source,))
    out: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    names = dict(Annotator.objects.values_list("pk", "name"))
    # Read through the mapping: on a derived version, the earlier version's labels count as mapped.
    for prediction_id, annotator_id, path in label_values(f, version, "prediction_id", "annotator_id",
                                                          "category__path"):
        if prediction_id in prediction_ids:
            out[prediction_id][names[annotator_id]].add(path)
    return {p: {a: sorted(c) for a, c in sorted(by.items())} for p, by in out.items()}


def _notes_by_prediction(label_filter: LabelFilter, version: TaxonomyVersion, prediction_ids: set[int]
                         ) -> tuple[dict[int, dict[str, str]], dict[int, dict[str, list[str]]]]:
    """Human annotators' notes (distinct ones joined by ' | ') and proposed new categories, per item."""
    f = LabelFilter(datasets=label_filter.datasets, models=label_filter.models, sources=(Label.Source.HUMAN,))
    notes: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    proposals: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    rows = select_labels(f, version).filter(prediction_id__in=prediction_ids).exclude(
        note="", proposed_category="").values_list("prediction_id", "annotator__name", "note", "proposed_category")
    for prediction_id, annotator, note, proposed in rows:
        if note.strip():
            notes[prediction_id][annotator].add(note.strip())
        if proposed.strip():
            proposals[prediction_id][annotator].add(proposed.strip())
    return ({p: {a: " | ".join(sorted(n)) for a, n in sorted(by.items())} for p, by in notes.items()},
            {p: {a: sorted(c) for a, c in sorted(by.items())} for p, by in proposals.items()})


def _item_agreement(humans: dict[str, list[str]]) -> float | None:
    """Share of annotator pairs on the item that gave identical categories (None if < 2 annotators)."""
    values = [tuple(v) for v in humans.values()]
    pairs = [(a, b) for i, a in enumerate(values) for b in values[i + 1:]]
    return round(sum(a == b for a, b in pairs) / len(pairs), 6) if pairs else None


def gold_records(*, label_filter: LabelFilter, with_notes: bool = False
                 ) -> tuple[TaxonomyVersion, list[dict[str, Any]]]:
    """Every gold item with its texts, labels from every source, agreement and provenance, sorted;
    with_notes adds each annotator's notes and proposed new categories."""
    gold_filter = LabelFilter(datasets=label_filter.datasets, models=label_filter.models,
                              sources=(Label.Source.GOLD,), taxonomy=label_filter.taxonomy)
    version = default_version(gold_filter).version
    gold = _sets_by_prediction(label_filter, version, Label.Source.GOLD,
                               {row[0] for row in label_values(gold_filter, version, "prediction_id")})
    ids = set(gold)
    humans = _sets_by_prediction(label_filter, version, Label.Source.HUMAN, ids)
    judges = _sets_by_prediction(label_filter, version, Label.Source.JUDGE, ids)
    decisions = {d.prediction_id: d for d in AdjudicationDecision.objects.filter(
        prediction_id__in=ids, taxonomy_version=version, superseded=False).select_related("decided_by")}
    predictions = Prediction.objects.filter(pk__in=ids).select_related("example__dataset", "model")
    notes, proposals = _notes_by_prediction(label_filter, version, ids) if with_notes else ({}, {})
    records = []
    for p in predictions:
        gold_categories = sorted({c for cats in gold[p.pk].values() for c in cats})
        decision = decisions.get(p.pk)
        if decision is not None and decision.categories != gold_categories:
            decision = None  # provenance describes the labels printed, never a decision they contradict
        gold_by = ", ".join(gold[p.pk])  # who wrote the gold rows, when no decision was recorded
        records.append({
            "dataset": p.example.dataset.name,
            "example_id": p.example.example_id,
            "model": p.model.name,
            "input": p.example.input_text,
            "output": p.output_text,
            "reference": p.example.reference,
            "gold_categories": gold_categories,
            "annotator_labels": humans.get(p.pk, {}),
            "judge_labels": judges.get(p.pk, {}),
            "n_annotators": len(humans.get(p.pk, {})),
            "item_agreement": _item_agreement(humans.get(p.pk, {})),
            "taxonomy_version": str(version),
            "provenance": {
                "decided_by": decision.decided_by.name if decision else gold_by,
                "method": decision.method if decision else "gold label without a recorded decision",
                "rule": decision.rule if decision else "",
                "reason": decision.reason if decision else "",
                "decided_at": decision.created_at.isoformat() if decision else None,
            },
        })
        if with_notes:  # untrusted text, exported as data
            records[-1]["annotator_notes"] = notes.get(p.pk, {})
            records[-1]["proposed_categories"] = proposals.get(p.pk, {})
    records.sort(key=lambda r: (r["dataset"], r["example_id"], r["model"]))
    return version, records


def _jsonl(records: list[dict[str, Any]]) -> bytes:
    lines = [json.dumps(r, ensure_ascii=False, sort_keys=True, separators=(",", ":")) for r in records]
    return ("\n".join(lines) + ("\n" if lines else "")).encode("utf-8")


def _csv(records: list[dict[str, Any]], columns: tuple[str, ...] = CSV_COLUMNS) -> bytes:
    rows = (
        [json.dumps(r[c], ensure_ascii=False, sort_keys=True) if isinstance(r[c], (dict, list))
         else ("" if r[c] is None else r[c])
         for c in columns]
        for r in records
    )
    return csv_text(columns, rows).encode("utf-8")


def _datasheet(records: list[dict[str, Any]], version: TaxonomyVersion, data_name: str, fmt: str,
               digest: str) -> str:
    """A datasheet (Gebru et al. style, short): what it is, counts, agreement, how it was made."""
    methods = Counter(r["provenance"]["method"] for r in records)
    rules = Counter(r["provenance"]["rule"] for r in records if r["provenance"]["rule"])
    categories = Counter(c for r in records for c in r["gold_categories"])
    by_dataset = Counter(r["dataset"] for r in records)
    by_model = Counter(r["model"] for r in records)
    annotators = sorted({a for r in records for a in r["annotator_labels"]})
    table = RatingTable(
        [(r["dataset"], r["example_id"], r["model"]) for r in records], annotators,
        [[frozenset(r["annotator_labels"][a]) if a in r["annotator_labels"] else None for a in annotators]
         for r in records])
    agreement = agreement_report(table, reps=1000, seed=0) if records and annotators else None
    judged = [r for r in records if r["judge_labels"]]
    judge_hits = sum(any(sorted(v) == r["gold_categories"] for v in r["judge_labels"].values())
                     for r in judged)

    def fmt_value(value: float | None) -> str:
        return "undefined" if value is None else f"{value:.3f}"

    lines = [
        f"# Datasheet: gold error set `{data_name}`",
        "",
        "## What it is",
        (f"Failures of evaluated models, each with the error category (or categories) that explains it under "
        f"taxonomy version `{version}`, settled by agreement of human annotators or by an adjudicator."),
        f"Format: {fmt}; one record per item (dataset, example_id, model). SHA-256 of the data file: `{digest}`.",
        "",
        "## Counts",
        f"- items: {len(records)}",
        "- datasets: " + ", ".join(f"{k} ({v})" for k, v in sorted(by_dataset.items())),
        "- models: " + ", ".join(f"{k} ({v})" for k, v in sorted(by_model.items())),
        f"- human annotators: {len(annotators)}",
        "- gold categories:",
        *[f"  - {name}: {n}" for name, n in sorted(categories.items(), key=lambda kv: (-kv[1], kv[0]))],
        "",
        "## Agreement among the human annotators on these items",
    ]
    if agreement is None:
        lines.append("- no human labels on these items")
    else:
        ci = agreement["ci95"]
        lines += [
            f"- Krippendorff's alpha ({agreement['level']}): {fmt_value(agreement['krippendorff_alpha'])}"
            + (f", 95% CI [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""),
            f"- confidence interval: {agreement['ci_method']} (1000 resamples, seed 0)",
            (f"- Fleiss' kappa {fmt_value(agreement['fleiss_kappa'])}, Gwet's AC1 "
            f"{fmt_value(agreement['gwet_ac1'])}, percent agreement {fmt_value(agreement['percent_agreement'])}"),
            ("- note: gold items are selected (agreement or adjudication), so this is not the agreement of the "
            "whole labelled pool; see `manage.py agreement` for that."),
        ]
    if judged:
        lines.append(f"- judge labels present on {len(judged)} items; a judge's set equals gold on {judge_hits}")
    lines += [
        "",
        "## How it was made",
        *[f"- {n} items by {method}" for method, n in sorted(methods.items())],
        *[f"- auto rule used: {rule} ({n} items)" for rule, n in sorted(rules.items())],
        ("- auto rule: items whose annotators agree under the configured rule became gold automatically; "
        "the rest went to an adjudication queue where a named adjudicator chose the gold categories and gave a "
        "reason (`provenance` in every record; every decision is kept in the database)."),
        "",
        "## Fields",
        ("- `input`, `output`, `reference`: the benchmark input, the model's output, the reference answer "
        "(untrusted text: escape before display, never execute)"),
        "- `gold_categories`: category paths (' / ' between levels)",
        "- `annotator_labels`, `judge_labels`: each annotator's / judge's categories on the item",
        "- `item_agreement`: share of annotator pairs on the item with identical categories",
        *([("- `annotator_notes`, `proposed_categories` (`--with-notes`): each human annotator's notes "
             "(distinct notes joined by ' | ') and the new categories they proposed (untrusted text)")]
          if records and "annotator_notes" in records[0] else []),
        ("- `provenance`: decided_by, method (auto_rule, adjudicator, or import: gold read from a file by "
        "`import_labels --source gold`), rule, reason, decided_at; it always describes the gold categories "
        "printed"),
        "",
        (f"Reproduce: `python manage.py export_gold {data_name} --format {fmt}` on the same database gives the "
        "same bytes."),
        "",
    ]
    return "\n".join(lines)


def export_gold(*, path: Path, fmt: str = "jsonl", label_filter: LabelFilter | None = None,
                with_notes: bool = False) -> GoldExportReport:
    """Write the gold set to `path` and its datasheet beside it (with_notes: annotators' notes and
    proposed categories too)."""
    if fmt not in FORMATS:
        raise ErrorMapError(f"unknown format {fmt!r} (jsonl or csv)")
    label_filter = label_filter or LabelFilter()
    config = {**label_filter.as_config(), "path": str(path), "format": fmt, "with_notes": with_notes}
    with stage_run("export_gold", config) as run:
        version, records = gold_records(label_filter=label_filter, with_notes=with_notes)
        if not records:
            raise ErrorMapError("no gold labels to export (run adjudicate first)")
        data = _jsonl(records) if fmt == "jsonl" else _csv(
            records, CSV_COLUMNS + (NOTE_COLUMNS if with_notes else ()))
        digest = hashlib.sha256(data).hexdigest()
        write_file(path, data)
        sheet = datasheet_path(path)
        write_file(sheet, _datasheet(records, version, path.name, fmt, digest))
        run.counts = {"items": len(records)}
    return GoldExportReport(path=str(path), datasheet=str(sheet), items=len(records), sha256=digest)
