"""Benchmark data, failures and work sets, judge analyses, Label Studio links and the one label table."""
from __future__ import annotations

from django.db import models

from annotation.core.label_sources import LabelSource


class Dataset(models.Model):
    name = models.CharField(max_length=200, unique=True)
    metric_name = models.CharField(max_length=100, default="score")
    # Explicit success threshold; when null the failure rule uses factor x mean score.
    success_threshold = models.FloatField(null=True, blank=True)
    # The threshold last applied to set Prediction.is_failure (explicit or derived), for the record.
    applied_threshold = models.FloatField(null=True, blank=True)
    source = models.CharField(max_length=200, blank=True, help_text="where the rows came from")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class EvaluatedModel(models.Model):
    name = models.CharField(max_length=200, unique=True)

    def __str__(self) -> str:
        return self.name


class Example(models.Model):
    # No index of its own: the unique (dataset, example_id) index serves lookups by dataset.
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="examples", db_index=False)
    example_id = models.CharField(max_length=200)
    input_text = models.TextField()
    reference = models.TextField(blank=True)

    class Meta:
        constraints = (
            models.UniqueConstraint(fields=["dataset", "example_id"], name="unique_example"),
        )

    def __str__(self) -> str:
        return f"{self.dataset.name}:{self.example_id}"


class Prediction(models.Model):
    """One model's output on one example: the unit every label is about (dataset, example_id, model)."""

    # No index of its own: the unique (example, model) index serves lookups by example.
    example = models.ForeignKey(Example, on_delete=models.CASCADE, related_name="predictions", db_index=False)
    model = models.ForeignKey(EvaluatedModel, on_delete=models.CASCADE, related_name="predictions")
    output_text = models.TextField()
    score = models.FloatField()
    is_failure = models.BooleanField(default=False)
    # sha256 of (input, output, reference): identical failures share one judge analysis.
    # Not indexed: analyses are looked up from predictions, never the other way, and every
    # index costs ingestion speed.
    content_key = models.CharField(max_length=64)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = (
            models.UniqueConstraint(fields=["example", "model"], name="unique_prediction"),
        )
        # Covers the dashboard's predictions and failures per dataset: counted from the index, example by
        # example, without reading each row (at a million predictions 0.4 s instead of 1.0 s on SQLite).
        indexes = (models.Index(fields=["example", "is_failure"]),)

    def __str__(self) -> str:
        return f"{self.example} / {self.model.name}"


class WorkSet(models.Model):
    """A named, reproducible sample of failures (stratified per model and dataset)."""

    name = models.CharField(max_length=200, unique=True)
    ratio = models.FloatField()
    seed = models.IntegerField()
    filters = models.JSONField(default=dict, blank=True)
    thresholds = models.JSONField(default=dict, blank=True, help_text="dataset -> threshold used")
    created_at = models.DateTimeField(auto_now_add=True)
    predictions = models.ManyToManyField(Prediction, through="WorkSetFailure", related_name="work_sets")

    def __str__(self) -> str:
        return self.name


class WorkSetFailure(models.Model):
    work_set = models.ForeignKey(WorkSet, on_delete=models.CASCADE, related_name="failures")
    prediction = models.ForeignKey(Prediction, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = (
            models.UniqueConstraint(fields=["work_set", "prediction"], name="unique_work_set_failure"),
        )


class ChangeLogEntry(models.Model):
    """One write to the predictions or labels table (see annotation/changes.py): append-only, so writers never
    wait for each other; the newest entries of a table make its cache key."""

    id = models.BigAutoField(primary_key=True)
    name = models.CharField(max_length=20)  # annotation.changes.PREDICTIONS or LABELS

    class Meta:
        indexes = (models.Index(fields=["name", "id"], name="change_log_name_id"),)


class StageRun(models.Model):
    """One run of a pipeline stage: what ran, with which configuration, how far it got."""

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    stage = models.CharField(max_length=50, db_index=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING)
    config = models.JSONField(default=dict, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Who runs it and when it last said so: a killed run's row stays 'running', these tell.
    pid = models.IntegerField(null=True, blank=True)
    host = models.CharField(max_length=255, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.stage} #{self.pk} ({self.status})"


class IngestUpload(models.Model):
    """A results file sent to `POST /api/ingest/`: kept under var/ until a task has ingested it.

    Keyed by the file's content, dataset and format, so the same upload sent again is this row again
    (never a second ingest); its status is what the client polls."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    key = models.CharField(max_length=64, unique=True)
    sha256 = models.CharField(max_length=64)
    name = models.CharField(max_length=255)
    size = models.BigIntegerField()
    dataset = models.CharField(max_length=200, blank=True)
    format = models.CharField(max_length=20)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True)
    # A failure not caused by the file (a database or worker fault): the same upload sent again is retried.
    retryable = models.BooleanField(default=False)
    report = models.JSONField(default=dict, blank=True)
    uploaded_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"upload #{self.pk} {self.name} ({self.status})"


class Annotator(models.Model):
    """Who produced a label: a person, a judge configuration ("annotator zero") or an adjudicator."""

    class Kind(models.TextChoices):
        HUMAN = "human"
        JUDGE = "judge"
        ADJUDICATOR = "adjudicator"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.HUMAN)
    email = models.CharField(max_length=254, blank=True)
    labelstudio_user_id = models.IntegerField(null=True, blank=True, unique=True)

    def __str__(self) -> str:
        return self.name


class PromptVersion(models.Model):
    """A judge prompt template as used; labels and analyses point to the exact text."""

    stage = models.CharField(max_length=50)
    name = models.CharField(max_length=100)
    template = models.TextField()
    sha256 = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.stage}/{self.name}@{self.sha256[:8]}"


class Analysis(models.Model):
    """The judge's stage-1 analysis of one unique (input, output, reference) under one judge config."""

    class Status(models.TextChoices):
        OK = "ok"
        FAILED = "failed"

    key = models.CharField(max_length=64, unique=True, help_text="hash of content + judge config")
    content_key = models.CharField(max_length=64, db_index=True)
    backend = models.CharField(max_length=50)
    model_name = models.CharField(max_length=200, blank=True)
    prompt_version = models.ForeignKey(PromptVersion, null=True, blank=True, on_delete=models.PROTECT)
    status = models.CharField(max_length=20, choices=Status.choices)
    required_criteria = models.JSONField(default=list, blank=True)
    error_title = models.TextField(blank=True)
    error_summary = models.TextField(blank=True)
    confidence = models.FloatField(null=True, blank=True)
    failure_reason = models.TextField(blank=True)
    run = models.ForeignKey(StageRun, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "analyses"


class ResponseCache(models.Model):
    """Judge responses keyed by (backend, model, prompt): a re-run or resumed run pays nothing twice."""

    key = models.CharField(max_length=64, unique=True)
    response = models.JSONField()
    prompt_tokens = models.IntegerField(default=0)
    completion_tokens = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)


class Label(models.Model):
    """Which category explains one failure, from any source. An annotator's rows for one item form a set."""

    class Source(models.TextChoices):
        JUDGE = LabelSource.JUDGE.value
        HUMAN = LabelSource.HUMAN.value
        GOLD = LabelSource.GOLD.value

    # Indexes: only those a query uses. The unique key (prediction, version, source, annotator, category)
    # serves look-ups by item and cascades from predictions; (version, source) serves every read of a
    # version's labels; source alone the per-source counts. The other foreign keys and external_id have
    # none: no query filters on them alone, and each index slowed every label write (ten in all were
    # half the time of an import). A category, annotator, prompt or analysis deleted (admin only) scans.
    prediction = models.ForeignKey(Prediction, on_delete=models.CASCADE, related_name="labels", db_index=False)
    taxonomy_version = models.ForeignKey("taxonomy.TaxonomyVersion", on_delete=models.PROTECT, related_name="labels",
                                         db_index=False)
    category = models.ForeignKey("taxonomy.Category", on_delete=models.PROTECT, related_name="labels",
                                 db_index=False)
    source = models.CharField(max_length=10, choices=Source.choices, db_index=True)
    annotator = models.ForeignKey(Annotator, on_delete=models.PROTECT, related_name="labels", db_index=False)
    confidence = models.FloatField(null=True, blank=True)
    error_title = models.TextField(blank=True)
    error_summary = models.TextField(blank=True)
    rationale = models.TextField(blank=True)
    note = models.TextField(blank=True)
    proposed_category = models.CharField(max_length=300, blank=True)
    prompt_version = models.ForeignKey(PromptVersion, null=True, blank=True, on_delete=models.PROTECT, db_index=False)
    analysis = models.ForeignKey(Analysis, null=True, blank=True, on_delete=models.SET_NULL, db_index=False)
    # Where the label came from outside: a Label Studio annotation id, an import file, ... (read only
    # beside the item: "ls:" prefixes within a prediction's labels).
    external_id = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = (
            models.UniqueConstraint(
                fields=["prediction", "taxonomy_version", "source", "annotator", "category"],
                name="unique_label",
            ),
        )
        indexes = (models.Index(fields=["taxonomy_version", "source"]),)


class LabelStudioProject(models.Model):
    """A Label Studio project that a work set was pushed to under one taxonomy version."""

    class Mode(models.TextChoices):
        BLIND = "blind"
        ASSISTED = "assisted"
        # One project, a seeded random share of tasks with the judge's pre-label (assisted) and the rest
        # blind: measures anchoring. Each task's draw is LabelStudioTask.assisted.
        MIXED = "mixed"
        ADJUDICATION = "adjudication"

    labelstudio_id = models.IntegerField(unique=True)
    title = models.CharField(max_length=300)
    # Null only for an adjudication project over the whole queue of a taxonomy version (no work set).
    work_set = models.ForeignKey(WorkSet, on_delete=models.CASCADE, related_name="labelstudio_projects",
                                 null=True, blank=True)
    taxonomy_version = models.ForeignKey("taxonomy.TaxonomyVersion", on_delete=models.PROTECT)
    mode = models.CharField(max_length=20, choices=Mode.choices)
    overlap = models.PositiveSmallIntegerField(default=1)
    # Mixed projects only: the share of tasks drawn to show the judge's pre-label, and the draw's seed.
    assisted_share = models.FloatField(null=True, blank=True)
    assignment_seed = models.IntegerField(null=True, blank=True)
    # Webhook health, as the platform sees it (Label Studio keeps no record of failed deliveries): where
    # the project's webhook points, when a delivery last arrived, and how many annotation changes the
    # last sync had to bring that no delivery had (older than a grace period).
    webhook_url = models.CharField(max_length=2048, blank=True, default="")
    last_delivery_at = models.DateTimeField(null=True, blank=True)
    last_sync_at = models.DateTimeField(null=True, blank=True)
    missed_by_webhook = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)


class LabelStudioTask(models.Model):
    project = models.ForeignKey(LabelStudioProject, on_delete=models.CASCADE, related_name="tasks")
    prediction = models.ForeignKey(Prediction, on_delete=models.CASCADE, related_name="+")
    labelstudio_id = models.IntegerField(unique=True)
    # Mixed projects: True when the task shows the judge's pre-label, False when it is blind; null in
    # blind, assisted and adjudication projects (all tasks alike).
    assisted = models.BooleanField(null=True, blank=True)

    class Meta:
        constraints = (
            models.UniqueConstraint(fields=["project", "prediction"], name="unique_labelstudio_task"),
        )


class LabelStudioAnnotation(models.Model):
    """The last known state of one Label Studio annotation, so that webhooks that repeat or arrive out of
    order, and syncs, converge on the same labels; deleted annotations stay as tombstones."""

    project = models.ForeignKey(LabelStudioProject, on_delete=models.CASCADE, related_name="annotations")
    task = models.ForeignKey(LabelStudioTask, on_delete=models.CASCADE, related_name="annotations")
    labelstudio_id = models.IntegerField(unique=True)
    annotator = models.ForeignKey(Annotator, on_delete=models.PROTECT, related_name="+")
    result = models.JSONField(default=list, blank=True)
    was_cancelled = models.BooleanField(default=False)
    deleted = models.BooleanField(default=False)
    labelstudio_updated_at = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField(auto_now=True)


# --- Adjudication (issue 5): the queue of disputed items and every decision that made gold ---------


class AdjudicationItem(models.Model):
    """An item whose annotators did not agree under the auto-gold rule, waiting for an adjudicator."""

    class Status(models.TextChoices):
        OPEN = "open"
        RESOLVED = "resolved"
        AUTO_GOLD = "auto_gold"  # later labels made it agree, so the rule settled it

    prediction = models.ForeignKey(Prediction, on_delete=models.CASCADE, related_name="adjudications")
    taxonomy_version = models.ForeignKey("taxonomy.TaxonomyVersion", on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN, db_index=True)
    why = models.TextField(help_text="why the rule did not settle it")
    # Each annotator's and the judge's categories when it was queued: {"human": {name: [paths]}, "judge": ...}
    labels = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = (
            models.UniqueConstraint(fields=["prediction", "taxonomy_version"], name="unique_adjudication_item"),
        )


class AdjudicationDecision(models.Model):
    """One decision on an item's gold categories: by the auto rule or by a person, with the reason.

    Decisions are never edited; a newer one supersedes the older (kept for the record).
    """

    class Method(models.TextChoices):
        AUTO_RULE = "auto_rule"
        ADJUDICATOR = "adjudicator"
        IMPORT = "import"  # gold read from a file by import_labels (decided_by: the file's annotator)

    prediction = models.ForeignKey(Prediction, on_delete=models.CASCADE, related_name="adjudication_decisions")
    taxonomy_version = models.ForeignKey("taxonomy.TaxonomyVersion", on_delete=models.PROTECT, related_name="+")
    categories = models.JSONField(help_text="gold category paths, sorted")
    method = models.CharField(max_length=20, choices=Method.choices)
    rule = models.CharField(max_length=300, blank=True, help_text="the auto rule, as configured")
    decided_by = models.ForeignKey(Annotator, on_delete=models.PROTECT, related_name="adjudication_decisions")
    reason = models.TextField()
    superseded = models.BooleanField(default=False, db_index=True)
    # Where the decision was made: "ls:<annotation id>" (Label Studio adjudication project),
    # "api:<user id>" (REST), "import:<file name>" (import_labels), empty for the command.
    external_id = models.CharField(max_length=200, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = (models.Index(fields=["prediction", "taxonomy_version", "superseded"]),)


class JudgeRefinement(models.Model):
    """One `refine_judge` comparison: the current and a candidate judge prompt on held-out gold folds.

    The candidate is accepted only when it beats the current one (higher kappa with gold and a paired
    bootstrap interval of the difference above 0); the latest accepted one is the judge's default
    for the taxonomy.
    """

    taxonomy = models.ForeignKey("taxonomy.Taxonomy", on_delete=models.CASCADE, related_name="judge_refinements")
    taxonomy_version = models.ForeignKey("taxonomy.TaxonomyVersion", on_delete=models.PROTECT, related_name="+")
    judge = models.CharField(max_length=20)  # offline | openai
    model_name = models.CharField(max_length=200, blank=True)
    current_prompt = models.ForeignKey(PromptVersion, on_delete=models.PROTECT, related_name="+")
    candidate_prompt = models.ForeignKey(PromptVersion, on_delete=models.PROTECT, related_name="+")
    # What the candidate is, so it can be used as the default: a template (openai) or a config (offline).
    candidate_spec = models.JSONField(default=dict)
    report = models.JSONField(default=dict)
    accepted = models.BooleanField(default=False)
    run = models.ForeignKey(StageRun, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = (models.Index(fields=["taxonomy", "judge", "model_name", "accepted"]),)
