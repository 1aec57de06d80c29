"""mgrpo.jsonl: data rows with their file:line, blank lines skipped, every error naming file and line; step logs
(metrics.jsonl) and their resume rule."""
import pytest

from mgrpo.jsonl import DataError, append_row, iter_jsonl, read_log, truncate_log


def test_rows_come_with_their_file_and_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": 1}\n\n   \n{"a": 2}\n')
    assert list(iter_jsonl(path)) == [(f"{path}:1", {"a": 1}), (f"{path}:4", {"a": 2})]


@pytest.mark.parametrize("text,message", [
    ('{"a": 1}\n{"a": \n', r"d.jsonl:2: not valid JSON"),
    ('{"a": 1}\n[1, 2]\n', r"d.jsonl:2: expected a JSON object, got list"),
])
def test_bad_lines_name_file_and_line(tmp_path, text, message):
    (tmp_path / "d.jsonl").write_text(text)
    with pytest.raises(DataError, match=message):
        list(iter_jsonl(tmp_path / "d.jsonl"))


def test_a_byte_that_is_not_utf8_names_file_and_line(tmp_path):
    (tmp_path / "d.jsonl").write_bytes('{"a": "café"}\n'.encode() + b'{"a": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"d.jsonl:2: not UTF-8 \(invalid continuation byte"):
        list(iter_jsonl(tmp_path / "d.jsonl"))


def test_missing_file_says_what_was_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"metrics file not found: .*nope.jsonl"):
        list(iter_jsonl(tmp_path / "nope.jsonl", "metrics file"))


def test_resume_keeps_steps_up_to_the_checkpoint_each_once_the_last_written_winning(tmp_path):
    path = tmp_path / "metrics.jsonl"
    for step in (0, 1, 2, 3):
        append_row(path, {"step": step})
    append_row(path, {"step": 2, "again": True})  # a step done again after a kill between its row and checkpoint
    rows = truncate_log(path, 2)
    assert rows == [{"step": 0}, {"step": 1}, {"step": 2, "again": True}]
    assert read_log(path) == rows  # and the file now holds exactly those
    assert path.read_text() == '{"step": 0}\n{"step": 1}\n{"step": 2, "again": true}\n'


def test_a_last_row_cut_short_by_a_kill_is_left_out_and_the_run_resumes(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 0}\n{"step": 1}\n{"step": 2, "val_a')  # killed while appending step 2
    assert read_log(path) == [{"step": 0}, {"step": 1}]
    assert truncate_log(path, 1) == [{"step": 0}, {"step": 1}]
    append_row(path, {"step": 2})  # the resumed run appends onto a whole file
    assert read_log(path) == [{"step": 0}, {"step": 1}, {"step": 2}]


def test_a_complete_last_row_that_lost_only_its_newline_is_kept(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 0}\n{"step": 1}')
    assert read_log(path) == [{"step": 0}, {"step": 1}]


@pytest.mark.parametrize("text, message", [
    ('{"step": 0}\n{"step": 1, "val\n{"step": 2}\n', r"metrics.jsonl:2: not valid JSON"),  # not the last line
    ('{"step": 0}\n{"step": 1, "val\n', r"metrics.jsonl:2: not valid JSON"),  # ended by its newline: not torn
    ('{"step": 0}\n{"loss": 1.0}\n', r"metrics.jsonl: a row without an integer 'step'"),
])
def test_a_damaged_log_is_an_error_naming_the_file_and_line(tmp_path, text, message):
    path = tmp_path / "metrics.jsonl"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        truncate_log(path, 5)
    assert path.read_text() == text  # nothing rewritten


@pytest.mark.parametrize("text, step, missing", [
    ("", 2, "1, 2"),  # emptied
    ('{"step": 0}\n{"step": 1}\n', 2, "2"),  # cut short before the checkpoint's step
    ('{"step": 0}\n{"step": 2}\n', 2, "1"),  # a step's row lost in the middle
    ('{"step": 0}\n{"step": 1}\n{"step": 2}\n{"step": 10}\n', 10, "3, 4, 5, 6, 7 and 2 more"),
])
def test_a_log_that_no_longer_reaches_the_checkpoint_is_refused_untouched(tmp_path, text, step, missing):
    path = tmp_path / "metrics.jsonl"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        truncate_log(path, step)
    assert str(err.value) == (f"{path} has no row for step(s) {missing}, though the checkpoint it resumes from is at "
                              f"step {step}: the log was emptied or cut since; restore it, or start afresh with "
                              f"another --work")
    assert path.read_text() == text


def test_a_log_without_step_0_resumes(tmp_path):  # verl writes step 0 only where it validates before training
    path = tmp_path / "steps.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n')
    assert truncate_log(path, 2) == [{"step": 1}, {"step": 2}]


def test_no_log_yet_has_no_rows(tmp_path):
    assert read_log(tmp_path / "metrics.jsonl") == []
