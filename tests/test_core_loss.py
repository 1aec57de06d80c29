import math

import torch

from mgrpo.core import low_var_kl, policy_loss


def test_on_policy_loss_is_minus_mean_token_advantage():
    logp = torch.log(torch.full((2, 3), 0.5))
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    adv = torch.tensor([1.0, -2.0])
    loss, stats = policy_loss(logp, logp, adv, mask)
    # ratio 1: -(1 + 1 - 2 - 2 - 2) / 5 tokens
    assert math.isclose(float(loss), 4 / 5, rel_tol=1e-6)
    assert stats["clip_frac"] == 0.0


def test_clipping_for_positive_and_negative_advantages():
    old = torch.zeros(1, 1)
    up = torch.full((1, 1), math.log(1.5))  # ratio 1.5
    mask = torch.ones(1, 1)
    loss_pos, _ = policy_loss(up, old, torch.tensor([1.0]), mask, clip=0.2)
    assert math.isclose(float(loss_pos), -1.2, rel_tol=1e-6)  # min(1.5, 1.2) * 1
    loss_neg, _ = policy_loss(up, old, torch.tensor([-1.0]), mask, clip=0.2)
    assert math.isclose(float(loss_neg), 1.5, rel_tol=1e-6)  # -min(-1.5, -1.2)


def test_clip_fraction_counts_only_tokens_the_clipped_branch_decides():
    old = torch.zeros(1, 2)
    logp = torch.log(torch.tensor([[0.5, 5.0]]))  # ratios 0.5 and 5, both outside [0.8, 1.2]
    # A = -1 on both: token 1 min(-0.5, -0.8) takes the clipped -0.8; token 2 min(-5, -1.2) the unclipped -5
    _, stats = policy_loss(logp, old, torch.tensor([-1.0]), torch.ones(1, 2), clip=0.2)
    assert math.isclose(stats["clip_frac"], 0.5)


def test_masked_rows_carry_no_gradient():
    logp = torch.zeros(2, 2, requires_grad=True)
    mask = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    loss, _ = policy_loss(logp, logp.detach(), torch.tensor([1.0, 5.0]), mask)
    loss.backward()
    assert torch.all(logp.grad[1] == 0) and torch.all(logp.grad[0] != 0)


def test_kl_term():
    logp = torch.log(torch.tensor([[0.5]]))
    ref = torch.log(torch.tensor([[0.25]]))
    # k3: exp(ref - logp) - (ref - logp) - 1 = 0.5 + ln 2 - 1
    expected = 0.5 + math.log(2) - 1
    assert math.isclose(float(low_var_kl(logp, ref)), expected, rel_tol=1e-6)
    loss, stats = policy_loss(logp, logp, torch.tensor([0.0]), torch.ones(1, 1), ref_logp=ref, kl_coef=0.1)
    assert math.isclose(float(loss), 0.1 * expected, rel_tol=1e-5)
    assert math.isclose(stats["kl"], expected, rel_tol=1e-5)
    assert float(low_var_kl(logp, logp)) == 0.0
