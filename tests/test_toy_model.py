"""The tiny char-level model and tokenizer load through AutoTokenizer / AutoModelForCausalLM."""
import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from mgrpo.toy.model import ModelSize, build_model, build_tokenizer, count_parameters


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
                 "--steps", "3", "--hidden-size", "16", "--intermediate-size", "32", "--layers", "1",
                 "--heads", "2"]) == 0
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    assert model.config.hidden_size == 16
    summary = json.loads((tmp_path / "m" / "pretrain.json").read_text())
    assert 0.0 <= summary["test_acc_greedy"] <= 1.0 and summary["settings"]["steps"] == 3
    # the kernels torch chose, so that a base model that differs from docs/toy_study.md's can be traced
    assert summary["machine"]["torch"] == torch.__version__
    assert summary["machine"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert AutoTokenizer.from_pretrained(tmp_path / "m").eos_token == "<eos>"


def test_pretrain_rejects_bad_settings(tmp_path):
    from mgrpo.cli import main

    assert main(["pretrain", "--data", str(tmp_path), "--out", str(tmp_path / "m"), "--seed", "0",
                 "--steps", "0"]) == 2
    assert not (tmp_path / "m").exists()
