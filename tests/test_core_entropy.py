import math

import torch

from mgrpo.core import self_certainty, token_entropy, trajectory_entropy


def test_uniform_distribution():
    V = 7
    logits = torch.zeros(2, 3, V)
    mask = torch.ones(2, 3)
    assert torch.allclose(trajectory_entropy(logits, mask), torch.full((2,), math.log(V)))
    assert torch.allclose(self_certainty(logits, mask), torch.zeros(2), atol=1e-6)


def test_hand_computed_two_token_distribution():
    # p = [0.8, 0.2]: H = -(0.8 ln 0.8 + 0.2 ln 0.2); KL(U||p) = -ln 2 - (ln 0.8 + ln 0.2) / 2
    logits = torch.log(torch.tensor([[[0.8, 0.2]]]))
    mask = torch.ones(1, 1)
    h = -(0.8 * math.log(0.8) + 0.2 * math.log(0.2))
    kl = -math.log(2) - (math.log(0.8) + math.log(0.2)) / 2
    assert math.isclose(float(trajectory_entropy(logits, mask)), h, rel_tol=1e-5)
    assert math.isclose(float(self_certainty(logits, mask)), kl, rel_tol=1e-5)


def test_mask_selects_response_tokens_and_temperature_matters():
    peaked = torch.tensor([10.0, 0.0, 0.0])
    logits = torch.stack([torch.zeros(3), peaked])[None]  # token 0 uniform, token 1 peaked
    only_first = trajectory_entropy(logits, torch.tensor([[1.0, 0.0]]))
    assert torch.allclose(only_first, torch.tensor([math.log(3)]))
    hot = token_entropy(peaked / 10.0)  # dividing by a higher temperature flattens the distribution
    assert float(hot) > float(token_entropy(peaked))


def test_empty_mask_gives_zero_not_nan():
    assert trajectory_entropy(torch.randn(1, 4, 5), torch.zeros(1, 4)).tolist() == [0.0]


def test_a_token_masked_to_minus_infinity_adds_no_entropy():
    # top-k style masking: p = [0.5, 0.5, 0] has entropy ln 2 (0 log 0 = 0), not NaN
    logits = torch.tensor([0.0, 0.0, float("-inf")])
    assert math.isclose(float(token_entropy(logits)), math.log(2), rel_tol=1e-6)
