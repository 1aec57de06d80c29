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


def test_high_outliers_are_kept():
    assert iqr_keep_mask(np.array([1.0, 1, 1, 1, 50])).all()


def test_torch_in_torch_out_and_same_answer():
    e = [1.0, 1.1, 1.0, 1.1, 1.0, 1.1, 0.05, 1.1]
    out = iqr_keep_mask(torch.tensor(e))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.bool
    assert out.tolist() == iqr_keep_mask(np.array(e)).tolist()


def test_negative_k_is_rejected():
    with pytest.raises(ValueError, match="iqr_k"):
        iqr_keep_mask(np.ones(4), k=-0.1)
