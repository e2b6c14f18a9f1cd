"""The Label Studio labeling configs (label and adjudication projects) and the control and task-data names
they share with the tasks and the mirror. Label Studio refuses to rename a used control, so these names
never change between taxonomy versions."""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from annotation.models import LabelStudioProject
from taxonomy.core.paths import OTHER
from taxonomy.core.verdicts import NON_ERROR_VERDICTS, VERDICT_DESCRIPTIONS
from taxonomy.models import Category, TaxonomyVersion

# Controls of the labeling configs.
CATEGORY_CONTROL = "category"
PROPOSAL_CONTROL = "proposed_category"
NOTE_CONTROL = "note"
REASON_CONTROL = "reason"  # adjudication projects: why these categories are gold
# Task data keys that tie a task to the platform's rows.
PREDICTION_KEY = "errormap_prediction_id"
ITEM_KEY = "errormap_adjudication_item"

OTHER_DESCRIPTION = "None of the categories fits: propose one in the text field below."

# The failure as the annotator sees it; every value is task data shown by <Text>, never put into the XML.
ITEM_VIEW = (
    '  <Text name="meta" value="$meta"/>\n'
    '  <Header value="Input" size="5"/>\n'
    '  <Text name="input" value="$input"/>\n'
    '  <Header value="Reference" size="5"/>\n'
    '  <Text name="reference" value="$reference"/>\n'
    '  <Header value="Model output" size="5"/>\n'
    '  <Text name="output" value="$output"/>\n'
)


def build_label_config(version: TaxonomyVersion, *, mode: str) -> str:
    """The labeling config for one taxonomy version: the category tree with descriptions as hints, an
    'Other / propose a category' field, a note, the item's texts and, in assisted and mixed modes only,
    the judge's analysis (a mixed project's blind tasks hold a placeholder there)."""
    tree = category_choices(version, with_other=True)
    judge = ""
    if mode in (LabelStudioProject.Mode.ASSISTED, LabelStudioProject.Mode.MIXED):
        judge = (
            '  <View style="background:#fff8e1;padding:8px">\n'
            '    <Header value="Judge analysis (a suggestion: check it)"/>\n'
            '    <Text name="judge_analysis" value="$judge_analysis"/>\n'
            "  </View>\n"
        )
    return (
        "<View>\n"
        f'  <Header value="{header_text(str(version))}: why did this output fail?" size="4"/>\n'
        + ITEM_VIEW
        + f"{judge}"
        '  <Header value="Error category (pick the most specific that fits; several if needed)" size="5"/>\n'
        f'  <Taxonomy name="{CATEGORY_CONTROL}" toName="output" showFullPath="true">\n'
        + "\n".join(tree)
        + "\n  </Taxonomy>\n"
        '  <Header value="Other / propose a category" size="5"/>\n'
        f'  <TextArea name="{PROPOSAL_CONTROL}" toName="output" maxSubmissions="1" editable="true"'
        ' rows="1" placeholder="a new category name, if none fits"/>\n'
        '  <Header value="Note" size="5"/>\n'
        f'  <TextArea name="{NOTE_CONTROL}" toName="output" maxSubmissions="1" editable="true"'
        ' rows="2" placeholder="what went wrong, in your words"/>\n'
        "</View>\n"
    )


def build_adjudication_config(version: TaxonomyVersion) -> str:
    """The adjudicator's view: the item, why it is disputed, every annotator's and the judge's labels (all
    task data shown by <Text>, never put into this XML), the category tree for the decision and a required
    reason."""
    tree = category_choices(version, with_other=False)
    return (
        "<View>\n"
        f'  <Header value="Adjudicate ({header_text(str(version))}): which categories are gold?" size="4"/>\n'
        + ITEM_VIEW
        + '  <View style="background:#eef4ff;padding:8px">\n'
        '    <Header value="Why this item is disputed" size="5"/>\n'
        '    <Text name="why" value="$why"/>\n'
        '    <Header value="Annotators\' labels" size="5"/>\n'
        '    <Text name="annotator_labels" value="$annotator_labels"/>\n'
        '    <Header value="Judge\'s label" size="5"/>\n'
        '    <Text name="judge_labels" value="$judge_labels"/>\n'
        "  </View>\n"
        '  <Header value="Decision: the gold categories (several if needed)" size="5"/>\n'
        f'  <Taxonomy name="{CATEGORY_CONTROL}" toName="output" showFullPath="true" required="true">\n'
        + "\n".join(tree)
        + "\n  </Taxonomy>\n"
        '  <Header value="Reason (required: why these categories)" size="5"/>\n'
        f'  <TextArea name="{REASON_CONTROL}" toName="output" required="true" maxSubmissions="1"'
        ' editable="true" rows="3" placeholder="why these categories are gold"/>\n'
        "</View>\n"
    )


def category_choices(
    version: TaxonomyVersion, *, with_other: bool, indent: str = "      "
) -> list[str]:
    """The version's category tree as nested <Choice> lines (names and descriptions as quoted attributes),
    plus an 'Other' choice when asked and the version has none, and last the two verdicts that say the
    item is not a model error (taxonomy/core/verdicts.py; stored as top-level categories of the version,
    see ensure_verdict_categories)."""
    categories = [
        c
        for c in version.categories.all().order_by("depth", "path")
        if not (c.parent_id is None and c.path in NON_ERROR_VERDICTS)
    ]
    children: dict[int | None, list[Category]] = {}
    for category in categories:
        children.setdefault(category.parent_id, []).append(category)

    def choices(parent_id: int | None, indent: str) -> list[str]:
        lines = []
        for category in sorted(children.get(parent_id, []), key=lambda c: c.name.lower()):
            attrs = f"value={quoteattr(category.name)}"
            if category.description:
                attrs += f" hint={quoteattr(category.description)}"
            nested = choices(category.pk, indent + "  ")
            if nested:
                lines.append(f"{indent}<Choice {attrs}>")
                lines.extend(nested)
                lines.append(f"{indent}</Choice>")
            else:
                lines.append(f"{indent}<Choice {attrs}/>")
        return lines

    tree = choices(None, indent)
    if with_other and not any(
        c.parent_id is None and c.name.lower() == OTHER.lower() for c in categories
    ):
        tree.append(
            f"{indent}<Choice value={quoteattr(OTHER)} hint={quoteattr(OTHER_DESCRIPTION)}/>"
        )
    for verdict in NON_ERROR_VERDICTS:
        tree.append(
            f"{indent}<Choice value={quoteattr(verdict)} hint={quoteattr(VERDICT_DESCRIPTIONS[verdict])}/>"
        )
    return tree


def header_text(text: str) -> str:
    """Text for a Header's value attribute: quoted, without '$' (Label Studio would read task data)."""
    return quoteattr(text.replace("$", ""))[1:-1]
