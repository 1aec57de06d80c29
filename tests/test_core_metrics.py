"""The method columns of metrics.jsonl from scored groups, by hand."""
import pytest

from mgrpo.core import get_method, score_group, step_metrics


def test_step_metrics_by_hand():
    # A: policy 5, 7 + momentum 5 (gold 5): label 5, rewards [1, 0], agreement [1, 0 | 1]
    a = score_group(get_method("mgrpo"), ["5", "7", "5"], [False, False, True], gold="5")
    # B: policy 3, 4 + momentum 4 (no gold): label 4 (2 votes to 1), rewards [0, 1]
    b = score_group(get_method("mgrpo"), ["3", "4", "4"], [False, False, True])
    momentum = [False, False, True]
    m = step_metrics([(a, momentum, a.in_loss), (b, momentum, b.in_loss)])
    assert m["reward"] == pytest.approx(0.5)  # [1, 0, 0, 1]
    assert m["agreement"] == pytest.approx(0.5)  # policy rows [1, 0, 0, 1]
    assert m["momentum_agreement"] == 1.0  # both momentum rows agree with their label
    assert m["filtered_frac"] == 0.0 and m["filtered_acc"] is None  # no filter: nothing dropped
    assert m["pseudo_label_acc"] == 1.0  # over A only, the one prompt with a gold answer
    assert m["rollout_acc"] == pytest.approx(0.5)  # A's policy rows: 5 right, 7 wrong
    # a prompt left out of the loss (verl's keep_fraction) leaves the reward, not the diagnostics. C's policy rows
    # all agree (rewards [1, 1]), unlike A's and B's mean of 0.5, so counting C or not changes each mean.
    c = score_group(get_method("mgrpo"), ["6", "6", "6"], momentum)
    left_out = step_metrics([(a, momentum, a.in_loss), (b, momentum, b.in_loss), (c, momentum, [False] * 3)])
    assert left_out["reward"] == pytest.approx(2 / 4)  # A, B: [1, 0, 0, 1]; C's [1, 1] would make it 4/6
    assert left_out["agreement"] == pytest.approx(4 / 6)  # A, B, C: [1, 0, 0, 1, 1, 1]


def test_no_momentum_rows_no_momentum_agreement():
    s = score_group(get_method("srt"), ["1", "1", "2"])
    assert step_metrics([(s, [False] * 3, s.in_loss)])["momentum_agreement"] is None


def test_labelled_frac_counts_the_prompts_the_vote_labelled():
    # A: 1, 1, 2 -> label 1; B: no answer extracted -> no label; C: 1, 2, 3 at vote_threshold 0.5 -> the top share
    # 1/3 is withheld; D: 4, 4, none -> label 4 (2 of the 2 that voted). Labelled: A and D of four prompts.
    from mgrpo.core import Method
    threshold = Method("labelled_test", reward="agreement", vote_threshold=0.5)
    groups = [score_group(threshold, answers) for answers in (["1", "1", "2"], [None] * 3, ["1", "2", "3"],
                                                              ["4", "4", None])]
    m = step_metrics([(s, [False] * 3, s.in_loss) for s in groups])
    assert m["labelled_frac"] == pytest.approx(2 / 4)
    assert m["pseudo_label_acc"] is None  # no gold anywhere
