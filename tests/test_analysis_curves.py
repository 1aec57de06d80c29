"""Best / Final / collapse judged from hand-made validation curves."""
import json

import pytest

from analysis.runs import CollapseRule, read_metrics, series, summarize_curve

PEAK_THEN_CRASH = [(0, 0.30), (10, 0.50), (20, 0.70), (30, 0.65), (40, 0.40), (50, 0.20)]


def test_peak_then_crash_is_a_collapse_at_the_first_step_past_the_threshold():
    c = summarize_curve(PEAK_THEN_CRASH, CollapseRule(min_drop=0.10))
    assert (c.start, c.start_step) == (0.30, 0)
    assert (c.best, c.best_step) == (0.70, 20)
    assert (c.final, c.final_step) == (0.20, 50)
    assert c.drop == pytest.approx(0.50)
    assert c.collapsed
    # 0.65 is only 0.05 below the peak; 0.40 is 0.30 below: the collapse is seen at step 40.
    assert c.collapse_step == 40


def test_a_rising_curve_never_collapses_and_its_best_is_its_last_point():
    c = summarize_curve([(0, 0.1), (10, 0.2), (20, 0.3)], CollapseRule(min_drop=0.05))
    assert (c.best_step, c.final_step, c.collapsed, c.collapse_step) == (20, 20, False, None)


def test_ties_pick_the_earliest_best_step_and_order_does_not_matter():
    c = summarize_curve([(30, 0.5), (10, 0.5), (0, 0.2), (20, 0.4)])
    assert c.best_step == 10
    assert c.start_step == 0


def test_a_dip_that_recovers_is_not_a_collapse_but_its_dip_is_recorded():
    c = summarize_curve([(0, 0.5), (10, 0.8), (20, 0.5), (30, 0.79)], CollapseRule(min_drop=0.1))
    assert not c.collapsed
    assert c.collapse_step == 20  # where it fell, although it came back


def test_threshold_is_strict_and_relative_mode_scales_with_the_peak():
    points = [(0, 0.8), (10, 0.7)]  # 0.1 absolute, 12.5% relative
    assert not summarize_curve(points, CollapseRule(min_drop=0.10)).collapsed
    assert summarize_curve(points, CollapseRule(min_drop=0.09)).collapsed
    assert summarize_curve(points, CollapseRule(min_drop=0.10, relative=True)).collapsed
    assert not summarize_curve(points, CollapseRule(min_drop=0.13, relative=True)).collapsed


def test_bad_inputs_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="no validation points"):
        summarize_curve([])
    with pytest.raises(ValueError, match="min_drop"):
        CollapseRule(min_drop=0)
    bad = tmp_path / "metrics.jsonl"
    bad.write_text('{"step": 1}\nnot json\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl:2"):
        read_metrics(bad)


def test_best_skips_the_base_model_but_the_peak_and_the_collapse_include_it():
    c = summarize_curve([(0, 0.62), (10, 0.55), (20, 0.50)], CollapseRule(min_drop=0.10))
    assert (c.peak, c.peak_step) == (0.62, 0)
    assert (c.best, c.best_step) == (0.55, 10)  # best/ is a trained checkpoint
    assert c.drop == pytest.approx(0.12) and c.collapsed and c.collapse_step == 20
    only_base = summarize_curve([(0, 0.4)])
    assert (only_base.best, only_base.best_step) == (0.4, 0)


@pytest.mark.parametrize("line, key", [('{"step": 2, "val_acc": NaN}', "val_acc"),
                                       ('{"step": 2, "val_acc": "0.1"}', "val_acc"),
                                       ('{"step": 2, "reward": Infinity}', "reward"),
                                       ('{"step": 2, "entropy": true}', "entropy"),
                                       ('{"step": "2", "val_acc": 0.1}', "step")])
def test_a_metric_that_is_not_a_finite_number_or_null_is_an_error_naming_line_and_key(tmp_path, line, key):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 0, "val_acc": 0.5}\n' + line + "\n")
    with pytest.raises(ValueError, match=rf"metrics.jsonl:2: .*{key}"):
        read_metrics(path)


@pytest.mark.parametrize("line, message", [
    ('{"step": 1.5, "val_acc": 0.1}', "a metrics row needs a 'step' key that is an integer >= 0 (got 1.5)"),
    ('{"step": -10, "val_acc": 0.1}', "a metrics row needs a 'step' key that is an integer >= 0 (got -10)"),
    ('{"val_acc": 0.1}', "a metrics row needs a 'step' key that is an integer >= 0 (got None)"),
    ('{"step": 2, "val_acc": 1.5}', "val_acc = 1.5; an accuracy lies in [0, 1]"),
    ('{"step": 2, "pseudo_label_acc": -0.5}', "pseudo_label_acc = -0.5; an accuracy lies in [0, 1]"),
])
def test_a_fractional_or_negative_step_and_an_accuracy_outside_0_1_are_errors_naming_the_line(tmp_path, line,
                                                                                              message):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 0, "val_acc": 0.5}\n' + line + "\n")
    with pytest.raises(ValueError) as caught:
        read_metrics(path)
    assert str(caught.value) == f"{path}:2: {message}"


def test_a_whole_step_written_as_a_float_and_accuracies_at_0_and_1_are_read(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 0, "val_acc": 0.0}\n{"step": 10.0, "val_acc": 1.0, "reward": 3.5}\n')
    assert series(read_metrics(path), "val_acc") == [(0, 0.0), (10, 1.0)]  # reward is not an accuracy


def test_series_keeps_only_rows_with_the_key(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [{"step": 0, "val_acc": 0.2}, {"step": 1, "reward": 0.5}, {"step": 2, "reward": 0.6, "val_acc": 0.3},
            {"step": 3, "val_acc": None}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    loaded = read_metrics(path)
    assert series(loaded, "val_acc") == [(0, 0.2), (2, 0.3)]
    assert series(loaded, "reward") == [(1, 0.5), (2, 0.6)]


def test_a_step_logged_twice_is_an_error_naming_the_file_and_the_step(tmp_path):
    # a resume truncates the log to its checkpoint (mgrpo.jsonl.truncate_log), so no trainer writes a step twice;
    # read as it was, the curve had two points at step 5
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 0, "val_acc": 0.5}\n{"step": 5, "val_acc": 0.6}\n{"step": 5, "val_acc": 0.2}\n')
    with pytest.raises(ValueError) as caught:
        read_metrics(path)
    assert str(caught.value) == f"{path}:3: step 5 is logged twice (also on line 2)"


def test_a_peak_reached_twice_puts_the_collapse_after_its_last_visit_not_in_a_dip_that_came_back():
    # 0.70 at steps 0 and 20; the dip to 0.55 at step 10 came back up to the peak; the run falls at step 30.
    c = summarize_curve([(0, 0.70), (10, 0.55), (20, 0.70), (30, 0.50)], CollapseRule(min_drop=0.10))
    assert (c.peak, c.peak_step) == (0.70, 0)  # the peak's first step, as reported
    assert (c.best, c.best_step) == (0.70, 20)
    assert c.collapsed and c.collapse_step == 30  # not step 10, which lies before the best/ checkpoint
    # the same with a trained peak reached twice: 0.8 at 10 and 30, dip at 20, fall at 40
    c = summarize_curve([(0, 0.5), (10, 0.8), (20, 0.6), (30, 0.8), (40, 0.5)], CollapseRule(min_drop=0.10))
    assert c.collapsed and c.collapse_step == 40


def test_a_dip_that_came_back_near_the_peak_is_not_the_collapse_either():
    # 0.80 at step 10, a dip to 0.60 at 20, back to 0.79 at 30 (within 0.10 of the peak), the fall at 40: the
    # collapse is at 40, as when the curve comes back to exactly 0.80; it depended on an exact tie of the accuracies
    for back in (0.80, 0.79, 0.71):
        c = summarize_curve([(0, 0.5), (10, 0.8), (20, 0.6), (30, back), (40, 0.5)], CollapseRule(min_drop=0.10))
        assert c.collapsed and c.collapse_step == 40, back
    # a dip that only partly recovers (0.65, still past the threshold) is where the run fell
    c = summarize_curve([(0, 0.5), (10, 0.8), (20, 0.6), (30, 0.65), (40, 0.5)], CollapseRule(min_drop=0.10))
    assert c.collapse_step == 20
