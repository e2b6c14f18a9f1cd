"""The failure rule and stratified sampling, as plain functions."""
import pytest

from annotation.core.failure_rules import failure_threshold, is_failure
from annotation.core.sampling import sample_size, stratified_sample


def test_threshold_is_seven_tenths_of_the_mean_by_default():
    assert failure_threshold(dataset="x", mean_score=0.8) == pytest.approx(0.56)


def test_explicit_threshold_wins_over_known_and_derived():
    assert failure_threshold(dataset="gpqa", mean_score=0.2, explicit=0.3) == 0.3
    assert failure_threshold(dataset="GPQA", mean_score=0.2) == 1.0  # the reference code's fixed value


def test_no_scores_means_no_threshold():
    assert failure_threshold(dataset="x", mean_score=None) is None


def test_failure_is_strictly_below_the_threshold():
    assert is_failure(0.49, 0.5) and not is_failure(0.5, 0.5)


@pytest.mark.parametrize("n,ratio,expected",
                         [(0, 0.1, 0), (1, 0.1, 1), (10, 0.1, 1), (11, 0.1, 2), (255, 0.1, 26), (7, 1.0, 7)])
def test_sample_size_is_ceiling_of_ratio_and_at_least_one(n, ratio, expected):
    assert sample_size(n, ratio) == expected


def test_ratio_out_of_range_is_refused():
    with pytest.raises(ValueError):
        sample_size(10, 0)


def test_sampling_is_reproducible_and_independent_of_input_order():
    strata = {("d", "m1"): [str(i) for i in range(100)], ("d", "m2"): [str(i) for i in range(50)]}
    shuffled = {k: list(reversed(v)) for k, v in strata.items()}
    first = stratified_sample(strata, ratio=0.1, seed=7)
    assert first == stratified_sample(shuffled, ratio=0.1, seed=7)
    assert [len(v) for v in first.values()] == [10, 5]
    assert first != stratified_sample(strata, ratio=0.1, seed=8)


def test_adding_a_stratum_leaves_the_others_unchanged():
    base = {("d", "m1"): [str(i) for i in range(40)]}
    wider = {**base, ("d", "m0"): [str(i) for i in range(40)]}
    assert stratified_sample(base, ratio=0.25, seed=1)[("d", "m1")] == stratified_sample(wider, ratio=0.25,
                                                                                         seed=1)[("d", "m1")]
