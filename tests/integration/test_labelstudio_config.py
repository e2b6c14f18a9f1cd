"""The generated Label Studio labeling configs, byte for byte: Label Studio refuses to rename a used control,
and a config that changes without a reason re-writes every project on the next push."""
from __future__ import annotations

from pathlib import Path

import pytest

from annotation.services.labelstudio.config import build_adjudication_config, build_label_config
from taxonomy.core.verdicts import NON_ERROR_VERDICTS
from taxonomy.services.versions import CategorySpec, create_version, ensure_verdict_categories

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "labelstudio"

# Nested paths, descriptions with quotes, '<', '&' and '$' (task-data syntax), a name with an apostrophe:
# everything the XML must quote.
CATEGORIES = [
    CategorySpec("Accuracy / Mistranslation", 'the meaning is changed ("false friend" & co)'),
    CategorySpec("Accuracy / Omission", "part of the source is missing <b>"),
    CategorySpec("Fluency / Grammar", "ungrammatical output"),
    CategorySpec("Fluency / Grammar / Agreement", "subject-verb $agreement"),
    CategorySpec("Style", ""),
    CategorySpec("Reader's confusion", "it's unclear"),
]


@pytest.fixture
def version():
    return create_version(taxonomy_name="xml-$fixture <one>", categories=CATEGORIES)


@pytest.mark.parametrize("mode", ["blind", "assisted"])
def test_label_config_is_byte_identical_to_the_fixture(version, mode):
    expected = (FIXTURES / f"label_config_{mode}.xml").read_text()
    assert build_label_config(version, mode=mode) == expected


def test_adjudication_config_is_byte_identical_to_the_fixture(version):
    expected = (FIXTURES / "adjudication_config.xml").read_text()
    assert build_adjudication_config(version) == expected


def test_verdicts_are_offered_once_and_last_whether_or_not_the_version_holds_them(version):
    before = build_label_config(version, mode="blind")
    assert [c.path for c in ensure_verdict_categories(version)] == list(NON_ERROR_VERDICTS)
    assert build_label_config(version, mode="blind") == before  # the rows add no second choice
    for verdict in NON_ERROR_VERDICTS:
        assert before.count(f'<Choice value="{verdict}"') == 1
    choices = [line.strip() for line in before.splitlines() if line.strip().startswith("<Choice")]
    assert [c.split('"')[1] for c in choices[-3:]] == ["Other", *NON_ERROR_VERDICTS]
