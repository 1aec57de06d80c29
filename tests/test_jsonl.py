"""mgrpo.jsonl.iter_jsonl: rows with their file:line, blank lines skipped, every error naming file and line."""
import pytest

from mgrpo.jsonl import DataError, iter_jsonl


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
