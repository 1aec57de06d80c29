import numpy as np
import pytest
import torch

from mgrpo.core import group_advantages


def test_hand_computed():
    # r = [1, 0, 0, 1]: mean 0.5, unbiased std = sqrt(1/3)
    adv = group_advantages([1, 0, 0, 1], eps=0.0)
    s = np.sqrt(1 / 3)
    assert np.allclose(adv, [0.5 / s, -0.5 / s, -0.5 / s, 0.5 / s])


def test_group_of_one_and_equal_rewards_give_zero():
    assert group_advantages([1.0]).tolist() == [0.0]
    assert group_advantages([1, 1, 1]).tolist() == [0.0, 0.0, 0.0]
    assert group_advantages([]).size == 0


def test_torch_in_torch_out_by_hand_and_sums_to_zero():
    # mean 0.4; deviations -0.2, 0.5, 0, 0, -0.3; sample variance (0.04 + 0.25 + 0.09) / 4 = 0.095
    r = torch.tensor([0.2, 0.9, 0.4, 0.4, 0.1], dtype=torch.float64)
    adv = group_advantages(r)
    assert isinstance(adv, torch.Tensor)
    assert abs(float(adv.sum())) < 1e-6
    std = 0.095 ** 0.5
    assert adv.tolist() == pytest.approx([-0.2 / std, 0.5 / std, 0.0, 0.0, -0.3 / std], abs=1e-5)
