"""MATH -> verl parquet on small fixture files, read back through verl's own RLHFDataset; the reward function."""
import json

import pandas as pd
import pytest

pytest.importorskip("verl")
from mgrpo.verl_backend import data as vdata  # noqa: E402
from mgrpo.verl_backend.reward import compute_score, extract_answer  # noqa: E402

TRAIN = [
    {"problem": "What is $1+1$?", "solution": "We add: $1+1=\\boxed{2}$.", "level": "Level 1", "type": "Algebra"},
    {"problem": "Half of 1?", "solution": "It is $\\boxed{\\frac12}$.", "level": "Level 2", "type": "Algebra"},
    {"problem": "Name the root of $x-3$.", "solution": "$x=\\boxed{3}$ since ...", "level": "Level 1",
     "type": "Algebra"},
]
TEST = [{"problem": "What is $2+2$?", "solution": "$\\boxed{4}$", "answer": "4"},
        {"problem": "What is $3 \\cdot 3$?", "solution": "$\\boxed{9}$"}]


@pytest.fixture()
def source(tmp_path):
    src = tmp_path / "math"
    src.mkdir()
    (src / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in TRAIN))
    (src / "test.json").write_text(json.dumps(TEST))
    return src


def test_prepare_writes_verl_format_with_hidden_labels(source, tmp_path):
    written = vdata.prepare(source, tmp_path / "out")
    train = pd.read_parquet(written["train"])
    test = pd.read_parquet(written["test"])
    assert len(train) == 3 and len(test) == 2
    row = train.iloc[1]
    assert list(row["prompt"][0].values()) == ["system", vdata.SYSTEM_PROMPT] or row["prompt"][0]["role"] == "system"
    assert row["prompt"][0]["content"] == "Let's think step by step and output the final answer within \\boxed{}."
    assert row["prompt"][1] == {"role": "user", "content": "Half of 1?"}
    # training rows: nothing where the reward reads labels; the hidden column keeps the canonical gold
    assert all(rm["ground_truth"] == "" for rm in train["reward_model"])
    assert list(train["mgrpo_gold"]) == ["2", "\\frac{1}{2}", "3"]
    assert [e["split"] for e in train["extra_info"]] == ["train"] * 3
    # test rows: reference answer for validation accuracy ("answer" column wins over the solution's box)
    assert [rm["ground_truth"] for rm in test["reward_model"]] == ["4", "9"]
    assert set(train.columns) == {"data_source", "prompt", "ability", "reward_model", "extra_info", "mgrpo_gold"}


def test_the_validation_split_holds_no_problem_of_an_evaluated_benchmark(source, tmp_path, capsys):
    # MATH-500 is drawn from MATH's test split, which the trainer validates on and picks best/ by: SRT_Best's
    # MATH500 cell would be chosen on the benchmark it is reported on. Those problems leave the validation split.
    math500 = tmp_path / "math500.jsonl"
    math500.write_text(json.dumps({"problem": "What is  $2+2$?\n", "answer": "4"}) + "\n"   # other whitespace
                       + json.dumps({"problem": "Not in MATH at all", "answer": "1"}) + "\n")
    written = vdata.prepare(source, tmp_path / "out", exclude=[math500])
    test = pd.read_parquet(written["test"])
    train = pd.read_parquet(written["train"])
    assert [p[1]["content"] for p in test["prompt"]] == ["What is $3 \\cdot 3$?"]
    assert len(train) == 3
    err = capsys.readouterr().err
    assert "test: 1 of 2 rows left out" in err
    assert "1 of the 2 problems of" in err and "math500.jsonl" in err  # the one found in neither split
    # --test-limit counts what is left
    written = vdata.prepare(source, tmp_path / "out2", test_limit=1, exclude=[math500])
    assert len(pd.read_parquet(written["test"])) == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "x"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl row 0: no 'problem'"):
        vdata.prepare(source, tmp_path / "out3", exclude=[bad])


def test_verl_loader_reads_prepared_files(source, tmp_path):
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    written = vdata.prepare(source, tmp_path / "out", test_limit=1)
    config = OmegaConf.create({"prompt_key": "prompt", "max_prompt_length": 512, "filter_overlong_prompts": False,
                               "cache_dir": str(tmp_path / "cache")})
    dataset = RLHFDataset(data_files=[str(written["train"])], tokenizer=None, config=config)
    assert len(dataset) == 3
    item = dataset[0]
    assert item["raw_prompt"][1]["content"] == "What is $1+1$?"
    assert item["reward_model"]["ground_truth"] == ""
    assert item["mgrpo_gold"] == "2"  # travels with the prompt (to the trainer stage), not inside reward_model
    assert len(pd.read_parquet(written["test"])) == 1


def test_bad_inputs_name_the_file_and_row(tmp_path):
    src = tmp_path / "bad"
    src.mkdir()
    with pytest.raises(FileNotFoundError, match="no train split"):
        vdata.prepare(src, tmp_path / "o")
    (src / "train.jsonl").write_text(json.dumps({"problem": "p", "solution": "no box"}) + "\n")
    (src / "test.jsonl").write_text(json.dumps({"problem": "p", "answer": "1"}) + "\n")
    with pytest.raises(ValueError, match=r"train.jsonl row 0: no \\boxed"):
        vdata.prepare(src, tmp_path / "o")
    (src / "train.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match="train.jsonl:1"):
        vdata.prepare(src, tmp_path / "o")
    assert not (tmp_path / "o" / "train.parquet").exists()


def test_a_bad_test_split_leaves_the_written_splits_as_they_were(source, tmp_path):
    out = tmp_path / "out"
    vdata.prepare(source, out)
    before = {name: (out / name).read_bytes() for name in ("train.parquet", "test.parquet")}
    (source / "train.jsonl").write_text(json.dumps(TRAIN[0]) + "\n")  # a new train split...
    (source / "test.json").write_text(json.dumps([{"solution": "$\\boxed{4}$"}]))  # ...and a test split without 'problem'
    with pytest.raises(ValueError) as err:
        vdata.prepare(source, out)
    assert str(err.value) == f"{source / 'test.json'} row 0: missing 'problem'"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old pair, and no temp file


def test_an_out_that_is_a_file_is_refused(source, tmp_path):
    (tmp_path / "out").write_text("keep me")
    with pytest.raises(ValueError) as err:
        vdata.prepare(source, tmp_path / "out")
    assert str(err.value) == f"output folder {tmp_path / 'out'} is a file, not a folder"
    assert (tmp_path / "out").read_text() == "keep me"


def test_reward_extracts_answer_and_never_scores_training_rows():
    response = "so the answer is \\boxed{\\frac12}. Wait, \\boxed{0.5}"
    assert extract_answer(response) == "\\frac{1}{2}"  # last box, MATH-normalised
    assert extract_answer("no box here") is None
    assert extract_answer("so \\fbox{5} it is") == "5"  # verl finds \fbox but its remove_boxed refuses it
    train = compute_score("math", response, "\\frac{1}{2}", {"split": "train"})
    assert train == {"score": 0.0, "mgrpo_answer": "\\frac{1}{2}"}  # a gold passed by mistake changes nothing
    test = compute_score("math", response, "\\frac{1}{2}", {"split": "test"})
    assert test["score"] == 1.0 and test["acc"] == 1.0  # acc: verl then counts a failed rollout as 0
    assert compute_score("math", "\\boxed{3}", "4", {"split": "test"})["score"] == 0.0
    assert compute_score("math", "nothing", "4", {"split": "test"}) == {"score": 0.0, "acc": 0.0, "mgrpo_answer": ""}


def test_prepare_math_downloads_pinned_splits_that_verl_prepare_data_reads(tmp_path, monkeypatch, capsys):
    """`mgrpo prepare-math` (the paper config's data step) -> train/test JSONL -> `mgrpo verl-prepare-data`."""
    import types

    datasets = pytest.importorskip("datasets")
    hub = pytest.importorskip("huggingface_hub")
    from mgrpo.cli import main

    splits = {"train": [{"problem": "What is $1+1$?", "solution": "It is $\\\\boxed{2}$.", "level": "Level 1",
                         "type": "Algebra"}],
              "test": [{"problem": "What is $2+3$?", "solution": "So $\\\\boxed{5}$.", "level": "Level 2",
                        "type": "Algebra"}]}
    loads = []

    def fake_load_dataset(path, name=None, split=None, revision=None, token=None):
        loads.append((path, name, split, revision))
        return splits[split]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setattr(hub.HfApi, "dataset_info",
                        lambda self, repo, revision=None, token=None: types.SimpleNamespace(sha=revision))
    assert main(["prepare-math", "--out", str(tmp_path / "MATH")]) == 0
    pinned = "0530c78699ea5e8eb5530600900e1f328b48acad"
    assert loads == [("DigitalLearningGmbH/MATH-lighteval", "default", "train", pinned),
                     ("DigitalLearningGmbH/MATH-lighteval", "default", "test", pinned)]
    assert main(["verl-prepare-data", "--source", str(tmp_path / "MATH"), "--out", str(tmp_path / "verl")]) == 0
    train = pd.read_parquet(tmp_path / "verl" / "train.parquet")
    test = pd.read_parquet(tmp_path / "verl" / "test.parquet")
    assert train["mgrpo_gold"].tolist() == ["2"] and test["mgrpo_gold"].tolist() == ["5"]
    assert train["reward_model"][0]["ground_truth"] == ""  # label-free training: the reward never sees it


def test_a_validation_prompt_whose_rollout_failed_counts_as_wrong_in_val_acc():
    """Two test prompts; the first answered right, the second's rollout failed (no row). verl's validation fills
    the missing sample with 0 in `acc` only, so val_acc must be 1/2, not 1/1."""
    from verl.trainer.ppo.metric_utils import process_validation_metrics

    from mgrpo.verl_backend.metrics import val_accuracy

    row = compute_score("math", "\\boxed{4}", "4", {"split": "test"})
    infos = {key: [value] for key, value in row.items()}
    infos["reward"] = [row["score"]]
    by_source = process_validation_metrics(["math"], ["u1"], infos,
                                           expected_acc_counts={("math", "u1"): 1, ("math", "u2"): 1})
    logged = {}
    for source, var2metric in by_source.items():  # as verl's _validate names them (trainer_base.py)
        core = "acc" if "acc" in var2metric else "reward"
        for var, metric2val in var2metric.items():
            for metric, value in metric2val.items():
                logged[f"{'val-core' if var == core else 'val-aux'}/{source}/{var}/{metric}"] = value
    assert val_accuracy(logged) == 0.5


@pytest.mark.parametrize("content, message", [
    (b"", "not valid JSON (Expecting value at line 1 column 1)"),
    (b'[{"problem": "p", "solution": "\\\\boxed{1}"}', "not valid JSON (Expecting ',' delimiter at line 1 column 44)"),
    (b'[{"problem": "\xff", "solution": "\\\\boxed{1}"}]', "not UTF-8 (invalid start byte at byte 14)"),
])
def test_a_bad_json_split_is_one_line_naming_the_file(tmp_path, content, message):
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.jsonl").write_text(json.dumps(TRAIN[0]) + "\n")
    (src / "test.json").write_bytes(content)
    with pytest.raises(ValueError) as err:
        vdata.prepare(src, tmp_path / "out")
    assert str(err.value) == f"{src / 'test.json'}: {message}"
    assert not (tmp_path / "out").exists()  # nothing written


def test_a_json_split_of_non_objects_names_the_file_and_row(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.jsonl").write_text(json.dumps(TRAIN[0]) + "\n")
    (src / "test.json").write_text(json.dumps([TEST[0], "What is 2+2?"]))
    with pytest.raises(ValueError) as err:
        vdata.prepare(src, tmp_path / "out")
    assert str(err.value) == f"{src / 'test.json'} row 1: expected a JSON object, got str"


def test_a_null_in_a_parquet_split_is_a_missing_value_not_nan(tmp_path):
    """MATH-500-style parquet with an `answer` column null in some rows: those rows take the solution's box (as a
    JSONL row without `answer` does); a null problem is a missing problem."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "src"
    src.mkdir()
    (src / "train.jsonl").write_text(json.dumps(TRAIN[0]) + "\n")
    pq.write_table(pa.table({"problem": ["What is $2+2$?", "What is $3+3$?"],
                             "solution": ["$\\boxed{4}$", "$\\boxed{6}$"],
                             "answer": pa.array([None, "6"], type=pa.string())}), src / "test.parquet")
    test = pd.read_parquet(vdata.prepare(src, tmp_path / "out")["test"])
    assert test["mgrpo_gold"].tolist() == ["4", "6"]
    assert [rm["ground_truth"] for rm in test["reward_model"]] == ["4", "6"]
    pq.write_table(pa.table({"problem": pa.array(["What is $2+2$?", None], type=pa.string()),
                             "solution": ["$\\boxed{4}$", "$\\boxed{6}$"]}), src / "test.parquet")
    with pytest.raises(ValueError) as err:
        vdata.prepare(src, tmp_path / "out2")
    assert str(err.value) == f"{src / 'test.parquet'} row 1: missing 'problem'"


@pytest.mark.parametrize("row, message", [
    ({"problem": "p", "solution": "$\\boxed{4}$", "answer": [4]}, "'answer' [4] is not text or a number"),
    ({"problem": "p", "solution": "$\\boxed{4}$", "answer": True}, "'answer' True is not text or a number"),
    ({"problem": "p", "solution": "$\\boxed{4}$", "answer": float("nan")}, "'answer' nan is not text or a number"),
    ({"problem": ["p"], "solution": "$\\boxed{4}$"}, "'problem' ['p'] is not text"),
    ({"problem": "p", "solution": {"text": "$\\boxed{4}$"}}, "'solution' {'text': '$\\\\boxed{4}$'} is not text"),
])
def test_a_value_of_the_wrong_type_is_named_not_written_as_its_str(tmp_path, row, message):
    # the gold answer was str() of whatever the row held: "[4]", "True", "nan", none of which a response matches;
    # a list problem became the prompt "['p']"
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.jsonl").write_text(json.dumps(TRAIN[0]) + "\n")
    (src / "test.jsonl").write_text(json.dumps(TEST[0]) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(ValueError) as err:
        vdata.prepare(src, tmp_path / "out")
    assert str(err.value) == f"{src / 'test.jsonl'} row 1: {message}"
    assert not (tmp_path / "out").exists()
    (src / "test.jsonl").write_text(json.dumps({**TEST[0], "answer": 4}) + "\n")  # a plain number is an answer
    assert pd.read_parquet(vdata.prepare(src, tmp_path / "out")["test"])["mgrpo_gold"].tolist() == ["4"]


def test_a_benchmark_problem_spaced_differently_still_leaves_the_splits(source, tmp_path, capsys):
    """The same problem with spaces inside its LaTeX (`$2 + 2$` for `$2+2$`, `$3\\cdot 3$` for `$3 \\cdot 3$`)."""
    math500 = tmp_path / "math500.jsonl"
    math500.write_text(json.dumps({"problem": "What is $2 + 2$?", "answer": "4"}) + "\n"
                       + json.dumps({"problem": "What is $3\\cdot 3$ ?", "answer": "9"}) + "\n")
    with pytest.raises(ValueError) as err:
        vdata.prepare(source, tmp_path / "out", exclude=[math500])
    assert str(err.value) == f"{source / 'test.json'}: no rows left once the excluded benchmarks' problems are out"
    assert "test: 2 of 2 rows left out" in capsys.readouterr().err
