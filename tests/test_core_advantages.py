import numpy as np
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


def test_torch_matches_and_sums_to_zero():
    r = torch.tensor([0.2, 0.9, 0.4, 0.4, 0.1])
    adv = group_advantages(r)
    assert isinstance(adv, torch.Tensor)
    assert abs(float(adv.sum())) < 1e-6
    assert np.allclose(adv.numpy(), group_advantages(r.numpy()), atol=1e-6)
