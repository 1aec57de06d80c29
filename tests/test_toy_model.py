"""The tiny char-level model and tokenizer load through AutoTokenizer / AutoModelForCausalLM."""
import json
import re

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from mgrpo.toy.model import build_model, build_tokenizer, count_parameters
from mgrpo.toy.settings import ModelSize


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    directory = tmp_path_factory.mktemp("toy_model")
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, seed=0)
    tokenizer.save_pretrained(directory)
    model.save_pretrained(directory)
    return directory, tokenizer, model


def test_tokenizer_round_trip(saved):
    directory, original, _ = saved
    tokenizer = AutoTokenizer.from_pretrained(directory)
    text = "3+4*2-1="
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and len(ids) == len(text) + 1  # <bos> + one token per char
    assert ids == original(text)["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    answer = tokenizer("7,4,3#3", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert tokenizer.decode(answer, skip_special_tokens=True) == "7,4,3#3"
    specials = {tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token}
    assert specials == {"<bos>", "<eos>", "<pad>"}
    assert len({tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id}) == 3


def test_model_round_trip(saved):
    directory, tokenizer, model = saved
    loaded = AutoModelForCausalLM.from_pretrained(directory)
    ids = torch.tensor([tokenizer("1+2*3=")["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, loaded(ids).logits, atol=1e-5)
    assert loaded.config.eos_token_id == tokenizer.eos_token_id
    assert loaded.config.vocab_size == len(tokenizer)
    # "~100k parameters": default size, hand count 2 layers x (4*64*64 + 3*64*128 + 2*64) + 21*64 + 64
    assert count_parameters(loaded) == 2 * (4 * 64 * 64 + 3 * 64 * 128 + 2 * 64) + len(tokenizer) * 64 + 64


def test_bad_model_size():
    with pytest.raises(ValueError, match="divisible"):
        build_model(build_tokenizer(), ModelSize(hidden_size=30, num_attention_heads=4))


def test_pretrain_cli_writes_hf_model(tmp_path):
    from mgrpo.cli import main

    assert main(["toy-data", "--out", str(tmp_path / "d"), "--seed", "0", "--operands", "3",
                 "--pretrain-size", "200", "--train-size", "20", "--test-size", "10"]) == 0
    assert main(["pretrain", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "m"), "--seed", "0",
                 "--max-steps", "3", "--target-acc", "none", "--select-rows", "20", "--hidden-size", "16",
                 "--intermediate-size", "32", "--layers", "1", "--heads", "2"]) == 0
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    assert model.config.hidden_size == 16
    summary = json.loads((tmp_path / "m" / "pretrain.json").read_text())
    assert 0.0 <= summary["test_acc_greedy"] <= 1.0 and summary["steps"] == 3
    # the kernels torch chose, so that a base model that differs from docs/toy_study.md's can be traced
    assert summary["machine"]["torch"] == torch.__version__
    assert summary["machine"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert AutoTokenizer.from_pretrained(tmp_path / "m").eos_token == "<eos>"


@pytest.mark.parametrize("flags", [["--max-steps", "0"], ["--target-acc", "1.5"], ["--target-acc", "0"],
                                   ["--check-every", "0"], ["--select-rows", "200"], ["--max-new-tokens", "0"],
                                   ["--seed", "-1"]])
def test_pretrain_rejects_bad_settings(tmp_path, capsys, flags):
    from mgrpo.cli import main
    from mgrpo.toy.task import TaskConfig, write_splits

    write_splits(tmp_path / "d", 0, TaskConfig(operands=3, pretrain_size=200, train_size=20, test_size=10))
    assert main(["pretrain", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "m"), "--seed", "0",
                 *flags]) == 2
    assert flags[0].lstrip("-").replace("-", "_") in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("settings, message", [
    ({"lr": float("inf")}, "pretrain lr must be a finite number > 0, got inf"),
    ({"lr": float("nan")}, "pretrain lr must be a finite number > 0, got nan"),
    ({"eval_temperature": float("inf")}, "pretrain eval_temperature must be a finite number > 0, got inf"),
    ({"weight_decay": float("inf")}, "pretrain weight_decay must be a finite number >= 0, got inf"),
    ({"weight_decay": float("nan")}, "pretrain weight_decay must be a finite number >= 0, got nan")])
def test_pretrain_settings_refuse_non_finite_floats(settings, message):
    from mgrpo.toy.settings import PretrainSettings

    with pytest.raises(ValueError) as err:
        PretrainSettings(**settings).validate()
    assert str(err.value) == message


def test_diverging_pretraining_is_one_error_line_naming_the_step(tmp_path, capsys):
    from mgrpo.cli import main
    from mgrpo.toy.task import TaskConfig, write_splits

    write_splits(tmp_path / "d", 0, TaskConfig(operands=3, pretrain_size=200, train_size=20, test_size=10))
    assert main(["pretrain", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "m"), "--seed", "0",
                 "--lr", "1e6", "--max-steps", "20", "--target-acc", "none", "--select-rows", "20",
                 "--hidden-size", "16", "--intermediate-size", "32", "--layers", "1", "--heads", "2"]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(r"mgrpo pretrain: error: pretraining loss is nan at step \d+\n", err), err
    assert not (tmp_path / "m").exists()


def test_pretrain_refuses_chains_whose_worked_solution_the_generation_budget_cuts(tmp_path, capsys):
    """9 operands: 8 running values "a,b,...,h" (15 characters), "#d" and <eos> make 18 tokens > the default 16;
    8 operands make 16, which fits."""
    from mgrpo.cli import main
    from mgrpo.toy.task import TaskConfig, write_splits

    sizes = dict(pretrain_size=60, train_size=5, test_size=5, val_size=5)
    write_splits(tmp_path / "d9", 0, TaskConfig(operands=9, **sizes))
    assert main(["pretrain", "--data", str(tmp_path / "d9"), "--out", str(tmp_path / "m"), "--seed", "0"]) == 2
    assert (f"worked solutions in {tmp_path / 'd9' / 'pretrain.jsonl'} take up to 18 tokens with <eos>, more "
            "than max_new_tokens=16: raise --max-new-tokens to 18") in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
    tiny = ["--max-steps", "1", "--target-acc", "none", "--select-rows", "20", "--hidden-size", "16",
            "--intermediate-size", "32", "--layers", "1", "--heads", "2"]
    assert main(["pretrain", "--data", str(tmp_path / "d9"), "--out", str(tmp_path / "m"), "--seed", "0",
                 "--max-new-tokens", "18", *tiny]) == 0
    write_splits(tmp_path / "d8", 0, TaskConfig(operands=8, **sizes))
    assert main(["pretrain", "--data", str(tmp_path / "d8"), "--out", str(tmp_path / "m8"), "--seed", "0",
                 *tiny]) == 0


def test_pretrain_refuses_an_out_that_is_a_file(tmp_path, capsys):
    from mgrpo.cli import main
    from mgrpo.toy.task import TaskConfig, write_splits

    write_splits(tmp_path / "d", 0, TaskConfig(operands=3, pretrain_size=200, train_size=20, test_size=10))
    (tmp_path / "m").write_text("keep me")
    assert main(["pretrain", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "m"), "--seed", "0"]) == 2
    assert f"output folder {tmp_path / 'm'} is a file, not a folder" in capsys.readouterr().err
    assert (tmp_path / "m").read_text() == "keep me"


TINY = dict(batch_size=8, select_rows=20,
            size=ModelSize(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from mgrpo.toy.task import TaskConfig, write_splits

    data = tmp_path_factory.mktemp("tiny_data")
    write_splits(data, 0, TaskConfig(operands=3, pretrain_size=100, train_size=10, test_size=10))
    return data


def test_pretrain_stops_at_the_first_check_that_reaches_the_target(tiny_data, tmp_path, monkeypatch):
    """Scripted held-out accuracies 0.2, 0.5, 0.6, 0.9 at steps 2, 4, 6, 8 with target 0.55: stop at step 6."""
    import mgrpo.cpu.rollout as rollout
    from mgrpo.toy.pretrain import pretrain
    from mgrpo.toy.settings import PretrainSettings

    real, scripted = rollout.accuracy, iter([0.2, 0.5, 0.6, 0.9])

    def accuracy(model, tokenizer, rows, **kw):
        if len(rows) == TINY["select_rows"]:  # the held-out rows; the test split has 10
            return next(scripted)
        return real(model, tokenizer, rows, **kw)

    monkeypatch.setattr(rollout, "accuracy", accuracy)
    settings = PretrainSettings(max_steps=20, target_acc=0.55, check_every=2, **TINY)
    summary = pretrain(tiny_data, tmp_path / "m", seed=0, settings=settings, log=lambda _: None)
    assert summary["steps"] == 6 and summary["target_reached"] is True
    assert summary["checks"] == [{"step": 2, "select_acc": 0.2}, {"step": 4, "select_acc": 0.5},
                                 {"step": 6, "select_acc": 0.6}]
    saved = json.loads((tmp_path / "m" / "pretrain.json").read_text())
    assert saved["steps"] == 6 and saved["checks"][-1]["select_acc"] == 0.6


def test_checking_never_changes_the_model_it_checks(tiny_data, tmp_path):
    """A run that checks (and never reaches its target) ends with the very weights of a run that never checks."""
    from mgrpo.toy.pretrain import pretrain
    from mgrpo.toy.settings import PretrainSettings

    messages = []
    checked = pretrain(tiny_data, tmp_path / "a", seed=3, log=messages.append,
                       settings=PretrainSettings(max_steps=4, target_acc=1.0, check_every=1, **TINY))
    plain = pretrain(tiny_data, tmp_path / "b", seed=3, log=lambda _: None,
                     settings=PretrainSettings(max_steps=4, target_acc=None, **TINY))
    assert [c["step"] for c in checked["checks"]] == [1, 2, 3, 4] and checked["target_reached"] is False
    assert any("WARNING" in m and "target_acc=1.0" in m for m in messages)
    assert plain["checks"] == [] and plain["target_reached"] is True
    a = AutoModelForCausalLM.from_pretrained(tmp_path / "a").state_dict()
    b = AutoModelForCausalLM.from_pretrained(tmp_path / "b").state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_model_written_is_checked_when_max_steps_is_no_multiple_of_check_every(tiny_data, tmp_path, monkeypatch):
    """Scripted held-out accuracies 0.2 at step 2 and 0.6 at step 3 (the last) with target 0.55: reached at 3."""
    import mgrpo.cpu.rollout as rollout
    from mgrpo.toy.pretrain import pretrain
    from mgrpo.toy.settings import PretrainSettings

    real, scripted = rollout.accuracy, iter([0.2, 0.6])

    def accuracy(model, tokenizer, rows, **kw):
        if len(rows) == TINY["select_rows"]:
            return next(scripted)
        return real(model, tokenizer, rows, **kw)

    monkeypatch.setattr(rollout, "accuracy", accuracy)
    summary = pretrain(tiny_data, tmp_path / "m", seed=0, log=lambda _: None,
                       settings=PretrainSettings(max_steps=3, target_acc=0.55, check_every=2, **TINY))
    assert summary["checks"] == [{"step": 2, "select_acc": 0.2}, {"step": 3, "select_acc": 0.6}]
    assert summary["steps"] == 3 and summary["target_reached"] is True


def test_the_held_out_rows_are_not_trained_on(tiny_data, tmp_path, monkeypatch):
    import mgrpo.toy.pretrain as pre
    from mgrpo.toy.task import read_jsonl

    held_out = {r["prompt"] for r in read_jsonl(tiny_data / "pretrain.jsonl")[-TINY["select_rows"]:]}
    trained, real = set(), pre._batch

    def batch(tokenizer, rows, direct):
        trained.update(r["prompt"] for r in rows)
        return real(tokenizer, rows, direct)

    monkeypatch.setattr(pre, "_batch", batch)
    pre.pretrain(tiny_data, tmp_path / "m", seed=0, log=lambda _: None,
                 settings=pre.PretrainSettings(max_steps=30, target_acc=None, **TINY))
    assert trained and not trained & held_out
