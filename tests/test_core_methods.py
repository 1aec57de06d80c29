import sys

import numpy as np
import pytest

from mgrpo.core import (
    Method,
    UnknownMethodError,
    default_momentum_rollouts,
    get_method,
    known_methods,
    load_baselines,
    score_group,
    validate_hyperparameters,
)


def test_paper_methods_and_baselines_are_registered():
    assert {"srt", "srt_iqr", "intuitor", "mgrpo", "mgrpo_iqr", "ground_truth", "entropy_min"} <= set(known_methods())


def test_unknown_method_lists_known_ones():
    with pytest.raises(UnknownMethodError) as err:
        get_method("grpo-magic")
    assert "grpo-magic" in str(err.value) and "mgrpo_iqr" in str(err.value) and "srt" in str(err.value)


def test_srt_rewards_agreement_and_advantages():
    s = score_group(get_method("srt"), ["4", "4", "5", None], gold="5")
    assert s.label == "4" and s.votes == 2 and s.label_correct is False
    assert s.correct.tolist() == [0.0, 0.0, 1.0, 0.0]  # each rollout against the hidden gold (diagnostic)
    assert score_group(get_method("srt"), ["4", "5"]).correct is None  # no gold, nothing to say
    assert s.rewards.tolist() == [1.0, 1.0, 0.0, 0.0]
    sd = np.std([1, 1, 0, 0], ddof=1)
    assert np.allclose(s.advantages, [0.5 / sd, 0.5 / sd, -0.5 / sd, -0.5 / sd], atol=1e-5)
    assert s.in_loss.all()


def test_mgrpo_momentum_rollouts_vote_but_never_enter_the_loss():
    # policy alone would vote 7 (2 vs 1); the two momentum rollouts tip the label to 3
    answers = ["7", "7", "3", "9", "3", "3"]
    is_momentum = [False, False, False, False, True, True]
    s = score_group(get_method("mgrpo"), answers, is_momentum, gold="3")
    assert s.label == "3" and s.votes == 3 and s.label_correct is True
    assert s.in_loss.tolist() == [True, True, True, True, False, False]
    assert s.rewards.tolist() == [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    # advantages over the 4 policy rollouts only: r = [0, 0, 1, 0], mean 0.25, std = 0.5
    assert np.allclose(s.advantages, [-0.5, -0.5, 1.5, -0.5, 0.0, 0.0], atol=1e-5)


def test_iqr_drops_low_entropy_outlier_before_voting():
    # the over-confident pair (entropy 0.01) would win the vote 2:1:1:1:1; the filter removes both
    answers = ["8", "8", "2", "2", "6", "1", "2", "4"]
    entropies = [0.01, 0.01, 1.0, 1.1, 1.2, 1.0, 1.1, 1.2]
    is_momentum = [False] * 6 + [True] * 2
    s = score_group(get_method("mgrpo_iqr"), answers, is_momentum, entropies=entropies, k=0.75)
    assert s.kept.tolist() == [False, False] + [True] * 6
    assert s.label == "2" and s.votes == 3
    assert s.in_loss.tolist() == [False, False, True, True, True, True, False, False]
    assert s.advantages[0] == 0.0 and s.advantages[1] == 0.0 and s.rewards[:2].tolist() == [0.0, 0.0]
    without_filter = score_group(get_method("mgrpo"), answers, is_momentum)
    assert without_filter.label == "2"  # the momentum vote also settles it; the filter only changes who is in loss
    srt = score_group(get_method("srt"), answers[:6])
    assert srt.label == "8"  # SRT alone follows the over-confident pair


def test_filter_scope_ablations_drop_the_outliers_from_the_vote_or_from_the_loss_only():
    # SRT+IQR on 8 rollouts. Entropy quartiles (linear): Q1 = 0.01 + 0.75 * 0.99 = 0.7525, Q3 = 1.125, so the cut is
    # 0.7525 - 0.75 * 0.3725 = 0.473: the over-confident pair (0.01, answer "8") is dropped, and ties "2" 2:2.
    answers = ["8", "8", "2", "2", "6", "1", "3", "4"]
    entropies = [0.01, 0.01, 1.0, 1.1, 1.2, 1.0, 1.1, 1.2]

    def variant(scope):
        return Method(f"srt_iqr_{scope}_test", reward="agreement", entropy_filter=True, filter_scope=scope)

    paper = score_group(get_method("srt_iqr"), answers, entropies=entropies)
    assert paper.kept.tolist() == [False, False] + [True] * 6
    assert (paper.label, paper.votes, paper.n_voters) == ("2", 2, 6)
    assert paper.in_loss.tolist() == [False, False] + [True] * 6

    vote_only = score_group(variant("vote"), answers, entropies=entropies)
    assert (vote_only.label, vote_only.votes, vote_only.n_voters) == ("2", 2, 6)  # the pair does not vote ...
    assert vote_only.in_loss.all()  # ... but is trained, rewarded against the filtered vote
    assert vote_only.rewards.tolist() == [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert vote_only.kept.tolist() == paper.kept.tolist()  # what the filter flagged, whatever the scope

    loss_only = score_group(variant("loss"), answers, entropies=entropies)
    assert (loss_only.label, loss_only.votes, loss_only.n_voters) == ("8", 2, 8)  # all vote: "8" and "2" tie, "8"
    assert loss_only.in_loss.tolist() == [False, False] + [True] * 6  # comes first; the pair is not trained
    assert loss_only.rewards.tolist() == [0.0] * 8  # no trained rollout agrees with "8": every advantage 0
    assert loss_only.advantages.tolist() == [0.0] * 8


def test_frequency_reward_counts_voters_only_and_rewards_every_rollout_on_its_own_answer():
    answers = ["8", "8", "2", "2", "2", "1", "3", "4"]
    entropies = [0.01, 0.01, 1.0, 1.1, 1.2, 1.0, 1.1, 1.2]  # the pair is dropped, as above
    soft = Method("soft_iqr_vote_test", reward="frequency", entropy_filter=True, filter_scope="vote")
    s = score_group(soft, answers, entropies=entropies)
    # 6 voters: "2" x 3, "1", "3", "4"; no voter is behind the dropped pair's "8"
    assert np.allclose(s.rewards, [0, 0, 3 / 6, 3 / 6, 3 / 6, 1 / 6, 1 / 6, 1 / 6])
    plain = score_group(Method("soft_test", reward="frequency"), answers)  # no filter: 8 voters
    assert np.allclose(plain.rewards, [2 / 8, 2 / 8, 3 / 8, 3 / 8, 3 / 8, 1 / 8, 1 / 8, 1 / 8])
    # 3 of 8 agree with the majority: below a 0.5 threshold the label is withheld, and with it every reward
    withheld = score_group(Method("soft_threshold_test", reward="frequency", vote_threshold=0.5), answers)
    assert withheld.label is None and withheld.rewards.tolist() == [0.0] * 8
    passed = score_group(Method("soft_threshold_test", reward="frequency", vote_threshold=0.375), answers)
    assert passed.label == "2" and np.allclose(passed.rewards, plain.rewards)


@pytest.mark.parametrize("fields, message", [
    (dict(entropy_filter=True, filter_scope="votes"), "unknown filter_scope 'votes'"),
    (dict(filter_scope="vote"), "needs entropy_filter=True"),
])
def test_a_bad_filter_scope_is_refused_at_registration(fields, message):
    from mgrpo.core import register_method
    with pytest.raises(ValueError, match=message):
        register_method(Method("bad_scope_test", reward="agreement", **fields))


def test_intuitor_uses_self_certainty():
    s = score_group(get_method("intuitor"), ["1", "2", "3"], self_certainties=[0.1, 0.4, 0.7])
    assert s.rewards.tolist() == [0.1, 0.4, 0.7]
    assert np.allclose(s.advantages, [-1.0, 0.0, 1.0], atol=1e-5)


def test_ground_truth_reference_and_vote_threshold():
    s = score_group(get_method("ground_truth"), ["1", "2", "2"], gold="1")
    assert s.rewards.tolist() == [1.0, 0.0, 0.0]
    weak = Method("srt_threshold_test", reward="agreement", vote_threshold=0.5)
    s = score_group(weak, ["1", "2", "3", "1"])  # majority share 2/4 = 0.5: labelled
    assert s.label == "1"
    s = score_group(weak, ["1", "2", "3", "4", "1"])  # 2/5 < 0.5: no label, no reward
    assert s.label is None and s.rewards.sum() == 0
    # the share is over the answers that voted: 2/3 >= 0.5 (over all five rollouts it would be 2/5 < 0.5)
    s = score_group(weak, ["1", None, "2", None, "1"])
    assert s.label == "1" and s.rewards.tolist() == [1.0, 0.0, 0.0, 0.0, 1.0]


@pytest.mark.parametrize(
    "G,N,m,k,name",
    [(1, 0, 0.99, 0.75, "G"), (8, 8, 0.99, 0.75, "N"), (8, 0, 0.99, 0.75, "N"),
     (2, 1, 0.99, 0.75, "N \\(momentum rollouts\\) must be <= G - 2 = 0"), (5, 4, 0.99, 0.75, "at least 2 policy"),
     (8, 2, 1.5, 0.75, "momentum m"), (8, 2, -0.1, 0.75, "momentum m"), (8, 2, 0.99, -1.0, "iqr_k")],
)
def test_bad_hyperparameters_name_the_parameter(G, N, m, k, name):
    with pytest.raises(ValueError, match=name):
        validate_hyperparameters(get_method("mgrpo_iqr"), G, N, m, k)


def test_default_momentum_rollouts_is_a_quarter():
    assert default_momentum_rollouts(get_method("mgrpo"), 32) == 8
    assert default_momentum_rollouts(get_method("mgrpo"), 6) == 1  # floor(6 / 4)
    assert default_momentum_rollouts(get_method("mgrpo"), 3) == 1  # floor(3 / 4) = 0, but a momentum method needs one
    assert default_momentum_rollouts(get_method("srt"), 32) == 0


def test_a_dropped_in_baseline_file_registers(tmp_path):
    (tmp_path / "my_vote.py").write_text(
        "from mgrpo.core import Method, register_method\n"
        "register_method(Method('my_vote', reward='frequency', momentum=True), origin=__file__)\n"
    )
    assert load_baselines(tmp_path) == ["my_vote"]
    s = score_group(get_method("my_vote"), ["a", "a", "b", "a"], [False, False, False, True])
    assert s.rewards.tolist() == [0.75, 0.75, 0.25, 0.0]


@pytest.mark.parametrize("field", ["entropies", "self_certainties"])
def test_a_non_finite_statistic_is_refused_not_dropped(field):
    # a NaN makes both quartiles NaN, so the filter would silently drop every rollout of the group
    with pytest.raises(ValueError, match=f"{field} are not all finite"):
        score_group(get_method("mgrpo_iqr"), ["1", "1", "2", "1"], **{field: [1.0, float("nan"), 1.0, 1.0]},
                    **({} if field == "entropies" else {"entropies": [1.0] * 4}))


def test_momentum_in_loss_needs_only_two_rollouts_in_the_group():
    # all G rows then get advantages: G = 2, N = 1 has two rows in the loss (+-1/sqrt 2), not one
    validate_hyperparameters(get_method("mgrpo"), 2, 1, 0.99, 0.75, momentum_in_loss=True)
    validate_hyperparameters(get_method("mgrpo"), 8, 7, 0.99, 0.75, momentum_in_loss=True)
    with pytest.raises(ValueError, match="N \\(momentum rollouts\\) must be < G = 8"):
        validate_hyperparameters(get_method("mgrpo"), 8, 8, 0.99, 0.75, momentum_in_loss=True)


def test_a_baselines_dir_that_does_not_exist_is_named(monkeypatch, tmp_path):
    from mgrpo.core import methods

    monkeypatch.setenv("MGRPO_BASELINES_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="MGRPO_BASELINES_DIR=.*nowhere is not a directory"):
        methods.baselines_dir()


def test_a_broken_baseline_file_fails_every_lookup_not_only_the_first(monkeypatch, tmp_path):
    from mgrpo.core import methods

    (tmp_path / "a_good.py").write_text(
        "from mgrpo.core import Method, register_method\n"
        "register_method(Method('plugin_good', reward='agreement'), origin=__file__)\n")
    (tmp_path / "b_broken.py").write_text("def broken(:\n")
    monkeypatch.setenv("MGRPO_BASELINES_DIR", str(tmp_path))
    monkeypatch.setattr(methods, "_plugins_loaded", False)
    monkeypatch.setattr(methods, "_METHODS", dict(methods._METHODS))  # the registry is left as it was
    try:
        for _ in range(2):  # the second call used to answer from the partial registry
            with pytest.raises(SyntaxError):
                methods.known_methods()
    finally:
        sys.modules.pop("mgrpo_baselines.a_good", None)


def test_a_name_taken_twice_names_both_baseline_files_even_without_origin(monkeypatch, tmp_path):
    # README's example registers without origin=__file__; a clash then blamed mgrpo.core.methods, not the file
    from mgrpo.core import methods

    monkeypatch.setattr(methods, "_METHODS", dict(methods._METHODS))
    monkeypatch.setattr(methods, "_ORIGIN", dict(methods._ORIGIN))
    (tmp_path / "a_first.py").write_text(
        "from mgrpo.core.methods import Method, register_method\n"
        "register_method(Method(name='clash_vote', reward='frequency'))\n")
    (tmp_path / "b_second.py").write_text(
        "from mgrpo.core.methods import Method, register_method\n"
        "register_method(Method(name='clash_vote', reward='agreement'))\n")
    try:
        with pytest.raises(ValueError) as err:
            load_baselines(tmp_path)
        assert str(err.value) == (f"method 'clash_vote' is registered twice ({tmp_path / 'a_first.py'} and "
                                  f"{tmp_path / 'b_second.py'})")
        methods.register_method(Method("after_loading", reward="agreement"))  # outside a baseline file
        assert methods._ORIGIN["after_loading"] == "mgrpo.core.methods"
    finally:
        sys.modules.pop("mgrpo_baselines.a_first", None)


def test_mgrpo_methods_shows_a_vote_threshold(monkeypatch, capsys):
    """A drop-in SRT with vote_threshold=0.5 is another method: `mgrpo methods` must not list it as plain SRT."""
    from mgrpo.cli import main
    from mgrpo.core import methods as mcore

    mcore.known_methods()  # the baselines loaded first, then one method more for this test only
    monkeypatch.setitem(mcore._METHODS, "srt_thr_listed", Method("srt_thr_listed", reward="agreement",
                                                                 vote_threshold=0.5))
    assert main(["methods"]) == 0
    listed = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()}
    assert listed["srt_thr_listed"][:2] == ["reward=agreement", "vote>=0.5"]
    assert listed["srt"][1] != "vote>=0.5" and listed["srt"][0] == "reward=agreement"


def test_a_reward_declares_the_one_trajectory_statistic_it_reads(monkeypatch):
    """The verl backend computes one token statistic per old-log-prob pass, chosen by the reward's declaration."""
    from mgrpo.core import methods, register_method, register_reward, reward_statistic

    known_methods()  # entropy_min's neg_entropy is a baseline file's
    monkeypatch.setattr(methods, "_REWARDS", dict(methods._REWARDS))
    monkeypatch.setattr(methods, "_REWARD_STATISTIC", dict(methods._REWARD_STATISTIC))
    assert {r: reward_statistic(r) for r in ("agreement", "frequency", "self_certainty", "ground_truth",
                                             "neg_entropy")} == {
        "agreement": "entropy", "frequency": "entropy", "self_certainty": "self_certainty",
        "ground_truth": "entropy", "neg_entropy": "entropy"}
    register_reward("certainty_test", statistic="self_certainty")(lambda ctx: np.zeros(len(ctx.answers)))
    assert reward_statistic("certainty_test") == "self_certainty"
    with pytest.raises(ValueError, match="'typo_test': statistic must be one of entropy, self_certainty .*'certainty'"):
        register_reward("typo_test", statistic="certainty")
    with pytest.raises(ValueError, match="'certainty_iqr_test': the IQR filter reads entropies, its reward "
                                         "'certainty_test' reads self_certainty"):
        register_method(Method("certainty_iqr_test", reward="certainty_test", entropy_filter=True))
    with pytest.raises(ValueError, match="'certainty_test' is already registered"):  # same function, other statistic
        register_reward("certainty_test")(methods._REWARDS["certainty_test"])
