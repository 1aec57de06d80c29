"""The method's stage on verl batches (DataProto) built by hand; expected values computed by hand."""
import math

import numpy as np
import pytest
import torch

pytest.importorskip("verl")
from verl.protocol import DataProto  # noqa: E402

from mgrpo.core import get_method  # noqa: E402
from mgrpo.verl_backend import stages  # noqa: E402

S3 = 1 / math.sqrt(3)  # (1/3) / std([1, 0, 1]) with std = sqrt(1/3)


def make_batch(rows, T=6):
    """rows: (uid, answer, is_momentum, token_value, n_tokens, gold). Padding positions hold 100 (must be ignored)."""
    B = len(rows)
    mask = torch.zeros(B, T, dtype=torch.int64)
    ent = torch.full((B, T), 100.0)
    for i, (_, _, _, value, n, _) in enumerate(rows):
        mask[i, :n] = 1
        ent[i, :n] = value
    return DataProto.from_dict(
        tensors={"response_mask": mask, "entropy": ent},
        non_tensors={
            "uid": np.array([r[0] for r in rows], dtype=object),
            stages.ANSWER: np.array([r[1] for r in rows], dtype=object),
            stages.IS_MOMENTUM: np.array([r[2] for r in rows], dtype=bool),
            stages.GOLD: np.array([r[5] for r in rows], dtype=object),
        },
    )


# Two prompts, G = 4 (M = 3 policy + N = 1 momentum), rows shuffled as after verl's load balancing.
# A: policy 5, 7, 5 + momentum 5 -> label 5; rewards [1, 0, 1]; advantages [S3, -2 S3, S3].
# B: policy 3, (none), 4 + momentum 4 -> label 4; rewards [0, 0, 1]; advantages [-S3, -S3, 2 S3].
MGRPO_ROWS = [
    ("A", "5", False, 1.0, 3, "5"),
    ("B", "3", False, 1.0, 5, "4"),
    ("A-momentum", "5", True, 1.0, 2, "5"),
    ("A", "7", False, 1.0, 4, "5"),
    ("B", "", False, 1.0, 6, "4"),
    ("B-momentum", "4", True, 1.0, 1, "4"),
    ("A", "5", False, 1.0, 2, "5"),
    ("B", "4", False, 1.0, 3, "4"),
]


def test_mgrpo_advantages_and_masks_by_hand():
    data = make_batch(MGRPO_ROWS)
    original_mask = data.batch["response_mask"].clone()
    data, scores = stages.score_dataproto(data, get_method("mgrpo"))
    expected = [S3, -S3, 0.0, -2 * S3, -S3, 0.0, S3, 2 * S3]
    row_adv = [float(data.batch["advantages"][i, 0]) for i in range(8)]
    assert row_adv == pytest.approx(expected, abs=1e-5)
    # token-level: the row's advantage on each of its response tokens, 0 on padding
    for i, (_, _, momentum, _, n, _) in enumerate(MGRPO_ROWS):
        adv = data.batch["advantages"][i]
        assert torch.all(adv[n:] == 0)
        assert torch.allclose(adv[:n], torch.full((n,), expected[i]), atol=1e-5)
        # momentum rows carry no gradient: their masks are all zero; policy rows keep theirs
        keep = 0 if momentum else 1
        assert torch.equal(data.batch["response_mask"][i], original_mask[i] * keep)
        assert torch.equal(data.batch["loss_mask"][i], original_mask[i] * keep)
    assert list(scores.in_loss) == [True, True, False, True, True, False, True, True]


def test_mgrpo_step_metrics_by_hand():
    # the momentum rows' tokens hold entropy 4 (the EMA's samples), the policy rows' 1
    rows = [r[:3] + (4.0 if r[2] else 1.0,) + r[4:] for r in MGRPO_ROWS]
    data = make_batch(rows)
    data, scores = stages.score_dataproto(data, get_method("mgrpo"))
    ent = stages.trajectory_means(data.batch["entropy"], torch.as_tensor(
        [[1] * r[4] + [0] * (6 - r[4]) for r in rows]))
    m = stages.step_metrics(scores, [r[2] for r in rows], ent)
    assert m["reward"] == pytest.approx(3 / 6)  # A: 1,0,1  B: 0,0,1
    assert m["agreement"] == pytest.approx(3 / 6)
    assert m["momentum_agreement"] == pytest.approx(1.0)
    assert m["pseudo_label_acc"] == pytest.approx(1.0)  # both labels equal the hidden gold
    assert m["rollout_acc"] == pytest.approx(3 / 6)
    assert m["filtered_frac"] == 0.0
    # the policy rows only: with the momentum rows (6 x 1 + 2 x 4) / 8 = 1.75; with padding (100) far more
    assert m["entropy"] == pytest.approx(1.0)


def test_step_metrics_count_only_labelled_prompts():
    # Prompt A keeps its hidden gold, prompt B has none: B's rows count neither as right nor as wrong.
    rows = [(u, a, mom, e, n, "" if u.startswith("B") else g) for u, a, mom, e, n, g in MGRPO_ROWS]
    data, scores = stages.score_dataproto(make_batch(rows), get_method("mgrpo"))
    m = stages.step_metrics(scores, [r[2] for r in rows], None)
    assert m["pseudo_label_acc"] == pytest.approx(1.0)  # A's label 5 is its gold; B is not counted
    assert m["rollout_acc"] == pytest.approx(2 / 3)  # A's policy rows answer 5, 7, 5 for gold 5
    rows = [r[:5] + ("",) for r in rows]
    data, scores = stages.score_dataproto(make_batch(rows), get_method("mgrpo"))
    m = stages.step_metrics(scores, [r[2] for r in rows], None)
    assert m["pseudo_label_acc"] is None and m["rollout_acc"] is None
    assert m["filtered_acc"] is None  # mgrpo drops nothing


def test_iqr_drops_low_entropy_outlier_and_changes_the_vote():
    # entropies [1, 1, 0, 1]: Q1 = 0.75, Q3 = 1, cut = 0.75 - 0.75 * 0.25 = 0.5625 -> row 2 dropped.
    # Kept voters 9, 2, 2 (momentum) -> label 2; unfiltered it would be a 9-vs-2 tie won by 9.
    rows = [("P", "9", False, 1.0, 4, "2"), ("P", "2", False, 1.0, 4, "2"),
            ("P", "9", False, 0.0, 4, "2"), ("P-momentum", "2", True, 1.0, 4, "2")]
    data, scores = stages.score_dataproto(make_batch(rows), get_method("mgrpo_iqr"))
    assert scores.groups[0][2].label == "2"
    assert list(scores.kept) == [True, True, False, True]
    assert list(scores.in_loss) == [True, True, False, False]
    h = 1 / math.sqrt(2)  # rewards [0, 1] over the two kept policy rows
    assert [float(data.batch["advantages"][i, 0]) for i in range(4)] == pytest.approx([-h, h, 0, 0], abs=1e-5)
    assert data.batch["response_mask"][2].sum() == 0 and data.batch["response_mask"][3].sum() == 0
    m = stages.step_metrics(scores, [r[2] for r in rows], [1, 1, 0, 1])
    assert m["filtered_frac"] == pytest.approx(0.25)
    assert m["filtered_acc"] == 0.0  # the dropped row answered 9, gold 2

    _, unfiltered = stages.score_dataproto(make_batch(rows), get_method("mgrpo"))
    assert unfiltered.groups[0][2].label == "9"


def test_the_filter_scope_ablations_reach_the_verl_batch():
    # the rows above: row 2 (answer 9, entropy 0) is dropped by the filter
    rows = [("P", "9", False, 1.0, 4, "2"), ("P", "2", False, 1.0, 4, "2"),
            ("P", "9", False, 0.0, 4, "2"), ("P-momentum", "2", True, 1.0, 4, "2")]
    # vote only: label 2 from the kept voters; row 2 is trained with reward 0: rewards [0, 1, 0], advantages
    # (r - 1/3) / sqrt(1/3) = [-S3, 2 S3, -S3]
    data, scores = stages.score_dataproto(make_batch(rows), get_method("mgrpo_iqr_vote"))
    assert scores.groups[0][2].label == "2" and list(scores.kept) == [True, True, False, True]
    assert list(scores.in_loss) == [True, True, True, False]
    assert [float(data.batch["advantages"][i, 0]) for i in range(4)] == pytest.approx([-S3, 2 * S3, -S3, 0], abs=1e-5)
    assert data.batch["response_mask"][2].sum() == 4 and data.batch["response_mask"][3].sum() == 0
    # loss only: all four vote, 9 and 2 tie 2:2 and 9 comes first; rows 0, 1 in the loss: rewards [1, 0]
    data, scores = stages.score_dataproto(make_batch(rows), get_method("mgrpo_iqr_loss"))
    assert scores.groups[0][2].label == "9"
    assert list(scores.in_loss) == [True, True, False, False]
    h = 1 / math.sqrt(2)
    assert [float(data.batch["advantages"][i, 0]) for i in range(4)] == pytest.approx([h, -h, 0, 0], abs=1e-5)
    assert data.batch["response_mask"][2].sum() == 0


def test_intuitor_self_certainty_from_token_statistic():
    # token statistic = logsumexp(z) - mean(z) = self-certainty + log V; rows' means 2+logV, 3+logV, 4+logV
    V = 11
    rows = [("Q", "1", False, 2.0 + math.log(V), 3, ""), ("Q", "1", False, 3.0 + math.log(V), 5, ""),
            ("Q", "2", False, 4.0 + math.log(V), 2, "")]
    data, scores = stages.score_dataproto(make_batch(rows), get_method("intuitor"),
                                          token_statistic="self_certainty", vocab_size=V)
    assert list(scores.rewards) == pytest.approx([2.0, 3.0, 4.0])
    assert [float(data.batch["advantages"][i, 0]) for i in range(3)] == pytest.approx([-1, 0, 1], abs=1e-5)
    with pytest.raises(ValueError, match="vocab_size"):
        stages.score_dataproto(make_batch(rows), get_method("intuitor"), token_statistic="self_certainty")


def test_momentum_in_loss_reproduces_released_intent():
    rows = [("A", "5", False, 1.0, 3, ""), ("A", "7", False, 1.0, 3, ""), ("A", "5", False, 1.0, 3, ""),
            ("A-momentum", "5", True, 1.0, 3, "")]
    data, scores = stages.score_dataproto(make_batch(rows), get_method("mgrpo"), momentum_in_loss=True)
    # rewards [1, 0, 1, 1]: mean 0.75, unbiased std 0.5
    assert [float(data.batch["advantages"][i, 0]) for i in range(4)] == pytest.approx([.5, -1.5, .5, .5], abs=1e-5)
    assert data.batch["response_mask"][3].sum() == 3


def test_keep_fraction_drops_least_consistent_prompts():
    # majority shares over the answers that voted: X 3/3, Y 2/3, Z 1/1 (two rollouts without an answer)
    rows = [("X", "1", False, 1.0, 2, ""), ("X", "1", False, 1.0, 2, ""), ("X", "1", False, 1.0, 2, ""),
            ("Y", "1", False, 1.0, 2, ""), ("Y", "2", False, 1.0, 2, ""), ("Y", "1", False, 1.0, 2, ""),
            ("Z", "4", False, 1.0, 2, ""), ("Z", "", False, 1.0, 2, ""), ("Z", "", False, 1.0, 2, "")]
    data, scores = stages.score_dataproto(make_batch(rows), get_method("srt"), keep_fraction=0.5)
    # floor(0.5 * 3) = 1 prompt kept: X (share 1, tied with Z: the smaller uid); Y and Z leave the loss
    assert set(scores.kept_prompts) == {"X"}
    assert not scores.in_loss[3:].any() and data.batch["response_mask"][3:].sum() == 0
    assert scores.in_loss[:3].all()
    # the step's reward is over the trained rows only (X: 1, 1, 1), its agreement over every row (X 3, Y 2, Z 1 of 9)
    m = stages.step_metrics(scores, [False] * 9, None)
    assert m["reward"] == pytest.approx(1.0) and m["agreement"] == pytest.approx(6 / 9)
    data, scores = stages.score_dataproto(make_batch(rows), get_method("srt"), keep_fraction=0.7)
    # floor(0.7 * 3) = 2: X and Z (share 1.0); Y (2/3) leaves the loss
    assert set(scores.kept_prompts) == {"X", "Z"}
    assert not scores.in_loss[3:6].any() and data.batch["response_mask"][3:6].sum() == 0
    assert scores.in_loss[[0, 1, 2, 6, 7, 8]].all()
    # floor(0.2 * 3) = 0, yet a step trains on at least one prompt: the most consistent
    assert stages.keep_most_consistent([("X", 0.5), ("Y", 1.0), ("Z", 0.25)], 0.2) == {"Y"}
    # a prompt without a label (share None) is never kept, even where floor(0.7 * 3) = 2 leaves room for it
    assert stages.keep_most_consistent([("U", None), ("X", 0.5), ("V", None)], 0.7) == {"X"}


def test_srt_options_threshold_and_soft_reward():
    srt = get_method("srt")
    thresholded = stages.configure_method(srt, vote_threshold=0.5)
    # answers 1, 2, 3, 1 -> share 2/4 = 0.5 passes; 1, 2, 3, 4, 1 -> 2/5 < 0.5: no label, all rewards 0
    rows = [("A", a, False, 1.0, 2, "") for a in ("1", "2", "3", "4", "1")]
    _, scores = stages.score_dataproto(make_batch(rows), thresholded)
    assert scores.groups[0][2].label is None and not scores.rewards.any()
    soft = stages.configure_method(srt, soft_reward=True)
    _, scores = stages.score_dataproto(make_batch(rows), soft)
    assert list(scores.rewards) == pytest.approx([0.4, 0.2, 0.2, 0.2, 0.4])
    with pytest.raises(ValueError, match="soft_reward"):
        stages.configure_method(get_method("intuitor"), soft_reward=True)
    with pytest.raises(ValueError, match="vote_threshold"):
        stages.configure_method(srt, vote_threshold=1.5)
    for name, reward in (("ground_truth", "ground_truth"), ("intuitor", "self_certainty")):
        with pytest.raises(ValueError) as err:
            stages.configure_method(get_method(name), vote_threshold=0.5)
        assert str(err.value) == (f"setting 'vote_threshold' withholds the majority vote's label, which only the "
                                  f"agreement and frequency rewards read; method {name!r} uses {reward!r}")
        with pytest.raises(ValueError) as err:
            stages.configure_method(get_method(name), keep_fraction=0.5)
        assert str(err.value) == (f"setting 'keep_fraction' keeps the prompts with the most self-consistent majority "
                                  f"vote, which only the agreement and frequency rewards read; method {name!r} uses "
                                  f"{reward!r}")
    assert stages.configure_method(get_method("intuitor"), keep_fraction=1.0) == get_method("intuitor")  # the default


def test_soft_reward_with_threshold_rewards_nothing_where_the_label_is_withheld():
    # Both options of the original SRT reward manager at once: the threshold must still act under the soft reward.
    both = stages.configure_method(get_method("srt"), vote_threshold=0.5, soft_reward=True)
    below = [("A", a, False, 1.0, 2, "") for a in ("1", "2", "3", "4", "1")]  # share 2/5 < 0.5
    above = [("B", a, False, 1.0, 2, "") for a in ("1", "2", "1", "1")]  # share 3/4 >= 0.5
    _, scores = stages.score_dataproto(make_batch(below + above), both)
    assert list(scores.rewards) == pytest.approx([0, 0, 0, 0, 0, 0.75, 0.25, 0.75, 0.75])


def test_bad_batches_fail_with_names():
    data = make_batch(MGRPO_ROWS)
    del data.non_tensor_batch[stages.ANSWER]
    with pytest.raises(KeyError, match="mgrpo_answer"):
        stages.score_dataproto(data, get_method("mgrpo"))
    rows = [("A", "1", False, 1.0, 2, "1"), ("A", "1", False, 1.0, 2, "2")]
    with pytest.raises(ValueError, match="different gold"):
        stages.score_dataproto(make_batch(rows), get_method("srt"))
    with pytest.raises(ValueError, match="entropy and self-certainty"):
        stages.score_dataproto(make_batch(rows[:1]), get_method("mgrpo_iqr"), token_statistic="self_certainty",
                               vocab_size=4)


def test_group_uid_strips_only_the_momentum_suffix():
    assert stages.group_uid("abc-momentum") == "abc"
    assert stages.group_uid("abc") == "abc"
    assert stages.group_rows(["a", "b-momentum", "b", "a-momentum"]) == {"a": [0, 3], "b": [1, 2]}


def test_rollout_logprob_gaps_by_hand():
    """Policy rows: mean |rollout - actor| over response tokens; momentum rows: mean (rollout - actor), the per-token
    estimate of KL(EMA || policy) on the EMA's own samples. Padding tokens (mask 0) hold junk and must not count."""
    rollout = torch.tensor([[-1.0, -2.0, 0.0], [-0.5, -0.5, -0.5], [-1.0, -3.0, 0.0]])
    actor = torch.tensor([[-1.5, -1.0, 9.0], [-0.5, -1.0, -1.5], [-2.0, -1.0, 5.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 1, 0]])
    gaps = stages.rollout_logprob_gaps(rollout, actor, mask, [False, True, False])
    assert gaps["policy_rollout_mismatch"] == pytest.approx((0.5 + 1.0 + 1.0 + 2.0) / 4)
    assert gaps["momentum_kl_to_policy"] == pytest.approx((0.0 + 0.5 + 1.0) / 3)
    only_policy = stages.rollout_logprob_gaps(rollout, actor, mask, [False, False, False])
    assert only_policy["momentum_kl_to_policy"] is None
    assert stages.rollout_logprob_gaps(rollout, rollout, mask, [False, True, False]) == {
        "policy_rollout_mismatch": 0.0, "momentum_kl_to_policy": 0.0}


def test_a_tied_vote_goes_the_same_way_whatever_the_row_order_and_as_on_the_cpu_backend():
    """Policy answers (sessions 0..5) none, 7, 3, 7, 3, 5 and momentum answers (sessions 0..1) 3, 7: 7 and 3 tie
    at 3 votes. In the CPU trainer's order (policy sessions, then momentum sessions) 7 is met first and wins, so the
    policy rewards are [0, 1, 0, 1, 0, 0]: mean 1/3, sample std sqrt(4/15), advantages 1.291 and -0.645. verl
    reorders rows by length across GPUs; the result must not follow."""
    from mgrpo.cpu.trainer import score_step

    policy, momentum = [None, "7", "3", "7", "3", "5"], ["3", "7"]
    std = math.sqrt(4 / 15)
    expected_policy = [(r - 1 / 3) / std for r in (0, 1, 0, 1, 0, 0)]
    cpu = score_step(get_method("mgrpo"), policy, momentum, [1.0] * 6, [1.0] * 2, [0.0] * 6, [0.0] * 2,
                     [None], M=6, N=2, k=0.75)[0]
    assert cpu.label == "7" and list(cpu.advantages[:6]) == pytest.approx(expected_policy, abs=1e-5)
    rows = [("P", a, False, i) for i, a in enumerate(policy)] + [("P-momentum", a, True, i)
                                                                   for i, a in enumerate(momentum)]
    rng = np.random.default_rng(0)
    for _ in range(30):
        order = rng.permutation(len(rows))
        shuffled = [rows[i] for i in order]
        scores = stages.score_batch(get_method("mgrpo"), [r[0] for r in shuffled], [r[1] for r in shuffled],
                                    [r[2] for r in shuffled], entropies=[1.0] * 8,
                                    rollout_index=[r[3] for r in shuffled])
        assert scores.groups[0][2].label == "7"
        by_row = {(r[2], r[3]): a for r, a in zip(shuffled, scores.advantages)}
        assert [by_row[(False, i)] for i in range(6)] == pytest.approx(expected_policy, abs=1e-5)
        assert by_row[(True, 0)] == by_row[(True, 1)] == 0.0
