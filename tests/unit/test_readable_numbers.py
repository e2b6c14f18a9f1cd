"""The page number formats: counts, percentages, significant digits and p-values as people read them."""
import pytest

from annotation.templatetags.readable_numbers import (
    count,
    full,
    percent,
    points,
    pvalue,
    readable,
    significant,
)


@pytest.mark.parametrize(("value", "shown"), [
    (52.0, "52"), (52, "52"), (1234, "1,234"), (12.5, "12.5"), (0.3333, "0.33"), (0, "0"),
    (None, "n/a"), (float("nan"), "n/a"),
])
def test_count(value, shown):
    assert count(value) == shown


@pytest.mark.parametrize(("value", "shown"), [
    (0.456789, "46%"), (0.034, "3.4%"), (0.0012, "0.12%"), (0, "0%"), (1, "100%"), (0.1, "10%"),
    (0.0999, "10.0%"), (-0.25, "-25%"), (None, "n/a"),
])
def test_percent(value, shown):
    assert percent(value) == shown


@pytest.mark.parametrize(("value", "shown"), [
    (0.62345, "0.623"), (-0.051234, "-0.0512"), (12.345, "12.3"), (1234.5, "1,234"), (1.0, "1.00"),
    (0, "0"), (1e-12, "0"), (None, "n/a"),
])
def test_significant(value, shown):
    assert significant(value) == shown


def test_significant_takes_the_number_of_digits():
    assert significant(0.62345, 2) == "0.62"


@pytest.mark.parametrize(("value", "shown"), [(0.0004, "< 0.001"), (0.0123, "0.012"), (0.5, "0.50"), (1, "1.0")])
def test_pvalue(value, shown):
    assert pvalue(value) == shown


def test_full_keeps_every_digit_of_a_float():
    assert full(0.123456789) == "0.123456789"
    assert full(7) == "7"
    assert full(None) == "n/a"


@pytest.mark.parametrize(("value", "shown"), [(0.032, "+3.2 pp"), (-0.25, "-25 pp"), (0, "0 pp"), (None, "n/a")])
def test_points(value, shown):
    assert points(value) == shown


@pytest.mark.parametrize(("value", "shown"), [(3229, "3,229"), (0.302481234, "0.302"), (True, "True"), ("x", "x"),
                                              (None, "")])
def test_readable_picks_the_format_by_type(value, shown):
    assert readable(value) == shown
