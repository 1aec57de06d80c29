import numpy as np
import pytest
import torch

from mgrpo.core import iqr_keep_mask


def test_constant_entropies_keep_everything():
    assert iqr_keep_mask(np.full(8, 0.7)).all()


def test_one_low_outlier_is_dropped():
    # values 1..7 and 0.01: Q1 = 1.75, Q3 = 5.25 (linear), IQR = 3.5, cut = 1.75 - 0.75 * 3.5 = -0.875 -> keep all
    e = np.array([0.01, 1, 2, 3, 4, 5, 6, 7])
    assert iqr_keep_mask(e).all()
    # a tight group with one over-confident trajectory: Q1 = 1.0, Q3 = 1.1, cut = 1.0 - 0.075 = 0.925
    e = np.array([1.0, 1.1, 1.0, 1.1, 1.0, 1.1, 0.05, 1.1])
    assert iqr_keep_mask(e).tolist() == [True] * 6 + [False, True]


def test_boundary_is_kept_and_k_matters():
    # Q1 = 2.5, Q3 = 5.5 for [1..7] by linear interpolation (n = 7: positions 1.5 and 4.5)
    e = np.array([1.0, 2, 3, 4, 5, 6, 7])
    assert iqr_keep_mask(e, k=0.5).all()  # cut = 2.5 - 1.5 = 1.0: e == cut is kept
    assert iqr_keep_mask(e, k=0.4).tolist() == [False] + [True] * 6  # cut = 1.3
    assert iqr_keep_mask(e, k=0.0).tolist() == [False, False] + [True] * 5  # cut = Q1 = 2.5


def test_when_the_middle_of_the_group_shares_one_entropy_any_lower_rollout_is_dropped_whatever_k():
    # 6 identical responses (entropy 0.3) among 8: sorted positions 1.75 and 5.25 both fall on 0.3, so
    # Q1 = Q3 = 0.3, IQR = 0 and the cut is 0.3 for every k
    e = np.array([0.3, 0.3, 0.29, 0.3, 0.3, 0.9, 0.3, 0.3])
    for k in (0.75, 1e6):
        assert iqr_keep_mask(e, k=k).tolist() == [True, True, False, True, True, True, True, True]


def test_high_outliers_are_kept():
    assert iqr_keep_mask(np.array([1.0, 1, 1, 1, 50])).all()


def test_torch_in_torch_out_by_hand():
    e = [1.0, 1.1, 1.0, 1.1, 1.0, 1.1, 0.05, 1.1]  # cut 0.925, as in test_one_low_outlier_is_dropped
    out = iqr_keep_mask(torch.tensor(e))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.bool
    assert out.tolist() == [True] * 6 + [False, True]


def test_small_groups_follow_the_formula():
    # n = 2: Q1 = 0.25, Q3 = 0.75, cut = 0.25 - 0.375 < 0: nothing can be dropped
    assert iqr_keep_mask(np.array([0.0, 1.0])).all()
    # n = 3: Q1 = 0.45, Q3 = 0.95, cut = 0.45 - 0.75 * 0.5 = 0.075: the lowest goes
    assert iqr_keep_mask(np.array([0.0, 0.9, 1.0])).tolist() == [False, True, True]
    # IQR = 0: anything below Q1 is an outlier
    assert iqr_keep_mask(np.array([2.0] * 6 + [1.999])).tolist() == [True] * 6 + [False]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_entropy_is_refused_not_a_reason_to_drop_the_group(bad):
    # NaN quartiles would compare False everywhere and drop every rollout
    for kind in (np.array, torch.tensor):
        with pytest.raises(ValueError, match="entropies must be finite"):
            iqr_keep_mask(kind([1.0, 1.1, bad, 1.0]))


def test_negative_k_is_rejected():
    with pytest.raises(ValueError, match="iqr_k"):
        iqr_keep_mask(np.ones(4), k=-0.1)
