"""The synthetic toy task: determinism per seed, answer extraction, answers recomputed independently."""
import json
from dataclasses import replace
import operator

import pytest

from mgrpo.toy.task import (TaskConfig, extract_answer, generate_splits, is_correct, read_jsonl,
                            worked_solution, write_splits)

SMALL = TaskConfig(operands=4, pretrain_size=300, train_size=100, test_size=50)


def evaluate_chain(prompt: str) -> int:
    """Independent left-to-right evaluation mod 10 (Python's % is non-negative for a positive modulus)."""
    ops = {"+": operator.add, "-": operator.sub, "*": operator.mul}
    body = prompt[:-1]
    assert prompt.endswith("=")
    value = int(body[0])
    for i in range(1, len(body), 2):
        value = ops[body[i]](value, int(body[i + 1])) % 10
    return value


def test_same_seed_same_splits_other_seed_differs():
    assert generate_splits(7, SMALL) == generate_splits(7, SMALL)
    assert generate_splits(7, SMALL)["test"] != generate_splits(8, SMALL)["test"]


def test_split_sizes_ids_and_no_prompt_shared_between_splits():
    splits = generate_splits(1, SMALL)
    assert [len(splits[s]) for s in ("pretrain", "train", "test")] == [300, 100, 50]
    for rows in splits.values():
        assert [r["id"] for r in rows] == list(range(len(rows)))
    prompts = [r["prompt"] for rows in splits.values() for r in rows]
    assert len(prompts) == len(set(prompts))


def test_answers_match_independent_evaluation():
    for rows in generate_splits(2, SMALL).values():
        for row in rows:
            assert row["answer"] == str(evaluate_chain(row["prompt"]))
            assert len(row["prompt"]) == 2 * SMALL.operands  # digits, operators and '='


@pytest.mark.parametrize("prompt, solution", [
    ("3+4*2-1=", "7,4,3#3"),       # 7, 8 mod 10 = 4, 3
    ("0-1=", "9#9"),               # negative wraps to 9
    ("9*9+5=", "1,6#6"),           # 81 -> 1, 6
])
def test_worked_solution_hand_computed(prompt, solution):
    assert worked_solution(prompt) == solution


@pytest.mark.parametrize("response, expected", [
    ("7,4,3#3", "3"),
    ("#5", "5"),            # the short cut: no scratchpad
    ("anything#0", "0"),
    ("#3 \n", "3"),         # trailing whitespace is fine
    ("5", None),            # no answer mark
    ("", None),
    ("#12", None),          # more than one digit
    ("1#2#3", None),        # two marks
    ("#x", None),
    ("#", None),
    ("#4,", None),          # text after the answer
])
def test_extract_answer(response, expected):
    assert extract_answer(response) == expected


def test_is_correct():
    assert is_correct("1,2#2", "2") and not is_correct("1,2#2", "3") and not is_correct("2", "2")


def test_write_and_read_splits(tmp_path):
    paths = write_splits(tmp_path / "data", 3, SMALL)
    assert sorted(p.name for p in paths.values()) == ["pretrain.jsonl", "test.jsonl", "train.jsonl", "val.jsonl"]
    assert read_jsonl(paths["test"]) == generate_splits(3, SMALL)["test"]
    assert not list((tmp_path / "data").glob(".*"))  # no temp files left behind


def test_the_val_split_is_drawn_last_and_shares_no_prompt():
    # drawn after the others: adding it left every seed's pretrain/train/test rows as they were
    with_val, small_val = generate_splits(5, SMALL), generate_splits(5, replace(SMALL, val_size=1))
    assert {s: with_val[s] for s in ("pretrain", "train", "test")} == \
        {s: small_val[s] for s in ("pretrain", "train", "test")}
    prompts = [{r["prompt"] for r in with_val[s]} for s in ("pretrain", "train", "test", "val")]
    assert len(with_val["val"]) == SMALL.val_size and len(set().union(*prompts)) == sum(map(len, prompts))


def test_read_jsonl_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": 0, "prompt": "1+1=", "answer": "2"}) + "\n" + json.dumps({"id": 1}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: missing key 'prompt'"):
        read_jsonl(bad)
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        read_jsonl(tmp_path / "nope.jsonl")


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="operands"):
        generate_splits(0, TaskConfig(operands=1))
    # operands=2: 10 * 3 * 10 = 300 distinct prompts, of which at most half are drawn
    with pytest.raises(ValueError, match=r"operands=2 allows at most 150 \(half its 300 distinct prompts\)"):
        generate_splits(0, TaskConfig(operands=2, pretrain_size=100, train_size=30, test_size=10, val_size=11))
    assert sum(map(len, generate_splits(0, TaskConfig(operands=2, pretrain_size=100, train_size=30, test_size=10,
                                                      val_size=10)).values())) == 150


@pytest.mark.parametrize("seed", [-1, 2**31, True, 1.5])
def test_a_seed_outside_what_the_libraries_take_is_refused(seed):
    # Python's random takes -1 as 1: two "different" seeds would give the same data
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2147483647\]"):
        generate_splits(seed, SMALL)


def test_toy_data_cli_refuses_an_out_that_is_a_file_and_a_negative_seed(tmp_path, capsys):
    from mgrpo.cli import main

    (tmp_path / "file").write_text("keep me")
    assert main(["toy-data", "--out", str(tmp_path / "file"), "--seed", "5"]) == 2
    assert f"toy data folder {tmp_path / 'file'} is a file, not a folder" in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "keep me"
    assert main(["toy-data", "--out", str(tmp_path / "d"), "--seed", "-1"]) == 2
    assert "seed must be an integer in [0, 2147483647] (got -1)" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_toy_data_cli(tmp_path):
    from mgrpo.cli import main

    assert main(["toy-data", "--out", str(tmp_path / "d"), "--seed", "5", "--operands", "4",
                 "--pretrain-size", "300", "--train-size", "100", "--test-size", "50"]) == 0
    assert read_jsonl(tmp_path / "d" / "train.jsonl") == generate_splits(5, SMALL)["train"]


@pytest.mark.parametrize("row, require_answer, message", [
    ({"id": 0, "prompt": "1+x=", "answer": "3"}, True, r"'prompt' '1\+x=' is not a chain such as"),
    ({"id": 0, "prompt": "1+2", "answer": "3"}, False, r"'prompt' '1\+2' is not a chain such as"),
    ({"id": 0, "prompt": "5=", "answer": "5"}, True, r"'prompt' '5=' is not a chain such as"),
    ({"id": 0, "prompt": "1+2=", "answer": None}, True, r"'answer' None is not the chain's value '3'"),
    ({"id": 0, "prompt": "1+2=", "answer": "13"}, True, r"'answer' '13' is not the chain's value '3'"),
    ({"id": 0, "prompt": "1+2=", "answer": True}, False, r"'answer' True is not the chain's value '3'"),
    ({"id": 0, "prompt": "1+2=", "answer": "5"}, False, r"'answer' '5' is not the chain's value '3'"),
])
def test_a_malformed_prompt_or_label_is_named_with_its_file_and_line(tmp_path, row, require_answer, message):
    # '1+x=' failed later as "invalid literal for int() with base 10: 'x'" (naming no file) in pretrain and train;
    # in val/test it, and a label no answer can equal (null, '13'), were sampled and scored 0 without a word
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": 1, "prompt": "2*3=", "answer": "6"}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(ValueError, match=rf"bad.jsonl:2: {message}"):
        read_jsonl(bad, require_answer=require_answer)


def test_labels_as_the_task_writes_them_or_absent_in_train_are_read(tmp_path):
    rows = [{"id": 0, "prompt": "1+2=", "answer": " 3 "}, {"id": 1, "prompt": "2*3-1=", "answer": 5},
            {"id": 2, "prompt": "1+1="}, {"id": 3, "prompt": "1+1=", "answer": None},
            {"id": 4, "prompt": "1+1=", "answer": ""}]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    # a label is read as its text: ' 3 ' and 5 are '3' and '5' (pretraining's bare target was '# 3 ', which
    # extract_answer does not read as 3); unlabelled rows stay as written
    assert read_jsonl(path, require_answer=False) == [{**rows[0], "answer": "3"}, {**rows[1], "answer": "5"},
                                                      *rows[2:]]
