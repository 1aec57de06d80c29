"""Generation backends: the HF backend on a tiny local model, the vLLM guard, model-directory checks."""
from __future__ import annotations

import importlib.util

import pytest
import torch

from mgrpo.evaluation.generation import (
    HFGenerator,
    ModelDirError,
    SamplingParams,
    VLLMGenerator,
    check_model_dir,
    load_generator,
)
from test_eval_fixtures import save_tiny_chat_model


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory):
    return save_tiny_chat_model(tmp_path_factory.mktemp("chat_model"))


@pytest.fixture(scope="module")
def generator(chat_model):
    return HFGenerator(chat_model, batch_size=2)


def test_chat_template_is_the_models_own(generator):
    prompt = generator.apply_chat_template([{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}])
    assert prompt == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"


def test_greedy_equals_transformers_greedy_decoding(generator, chat_model):
    """temperature 0 -> greedy: compare with a plain transformers greedy decode done here, one prompt at a time."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    prompts = ["<|im_start|>user\n1+1<|im_end|>\n", "<|im_start|>user\nlonger prompt here<|im_end|>\n",
               "x"]  # batch of 2 + 1, with left padding in the first batch
    got = generator.generate(prompts, 1, SamplingParams(temperature=0.0, max_tokens=6))
    tokenizer = AutoTokenizer.from_pretrained(chat_model)
    model = AutoModelForCausalLM.from_pretrained(chat_model).eval()
    for prompt, (response,) in zip(prompts, got):
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        assert response == tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def test_greedy_with_several_samples_repeats_the_greedy_answer(generator):
    # transformers refuses num_return_sequences > 1 without sampling; k greedy samples are k copies
    (one,), (two,) = generator.generate(["a", "bb"], 1, SamplingParams(temperature=0.0, max_tokens=6))
    assert generator.generate(["a", "bb"], 3, SamplingParams(temperature=0.0, max_tokens=6)) == [[one] * 3, [two] * 3]


def test_sampling_shape_and_seed(generator):
    params = SamplingParams(temperature=1.0, max_tokens=8, seed=3)
    first = generator.generate(["a", "b", "c"], 4, params)
    assert [len(samples) for samples in first] == [4, 4, 4]
    assert generator.generate(["a", "b", "c"], 4, params) == first          # same seed, same samples
    other = generator.generate(["a", "b", "c"], 4, SamplingParams(temperature=1.0, max_tokens=8, seed=4))
    assert other != first                                                    # a random 100-token vocab: differs
    assert len({s for samples in first for s in samples}) > 1               # the samples are not all equal


def test_max_tokens_bounds_the_response(generator):
    responses = generator.generate(["q"], 3, SamplingParams(temperature=1.0, max_tokens=2, seed=0))[0]
    # Char-level tokenizer: at most 2 new tokens -> at most 2 characters (special tokens are dropped).
    assert all(len(r) <= 2 for r in responses)


def test_checkpoint_sampling_defaults_are_ignored(chat_model, tmp_path):
    """A generation_config.json with top_k=1 would make sampling greedy; only SamplingParams may decide."""
    import json
    import shutil

    model_dir = tmp_path / "m"
    shutil.copytree(chat_model, model_dir)
    (model_dir / "generation_config.json").write_text(json.dumps({"top_k": 1, "do_sample": False}))
    gen = HFGenerator(model_dir)
    samples = gen.generate(["q"], 8, SamplingParams(temperature=1.0, max_tokens=6, seed=0))[0]
    assert len(set(samples)) > 1


@pytest.mark.parametrize("bad", [{"temperature": -1}, {"top_p": 0}, {"top_p": 1.5}, {"max_tokens": 0}])
def test_sampling_params_validation(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        SamplingParams(**bad)


@pytest.mark.parametrize("bad, message", [
    ({"temperature": float("inf")}, "temperature must be a finite number >= 0, got inf"),  # sampled uniformly
    ({"temperature": float("nan")}, "temperature must be a finite number >= 0, got nan"),
    ({"seed": -1}, "seed must be an integer in [0, 2147483647] (got -1)"),  # the range training takes
    ({"seed": 2**31}, "seed must be an integer in [0, 2147483647] (got 2147483648)")])
def test_sampling_params_name_a_non_finite_temperature_or_a_bad_seed(bad, message):
    with pytest.raises(ValueError) as err:
        SamplingParams(**bad)
    assert str(err.value) == message


@pytest.mark.parametrize("options, message", [
    ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
    ({"batch_size": -2}, "batch_size must be an integer >= 1, got -2"),
    pytest.param({"device": "cuda:7"}, "device 'cuda:7' is not usable here: Torch not compiled with CUDA enabled",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="torch here has CUDA")),
])
def test_bad_hf_options_fail_before_the_model_is_read(tmp_path, options, message):
    # the model folder does not exist: reaching it would raise ModelDirError instead
    with pytest.raises(ValueError) as err:
        HFGenerator(tmp_path / "no_model", **options)
    assert type(err.value) is ValueError and str(err.value) == message


def test_truncated_weights_name_the_model_folder(chat_model, tmp_path):
    import shutil

    cut = tmp_path / "cut"
    shutil.copytree(chat_model, cut)
    with open(cut / "model.safetensors", "r+b") as weights:  # a copy cut short
        weights.truncate(500)
    with pytest.raises(ModelDirError, match=f"^{cut} is not a loadable model: SafetensorError: "):
        HFGenerator(cut)


def test_an_unknown_device_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"^device 'gpu0' is not usable here: [^\n]*gpu0[^\n]*$"):  # torch's reason
        HFGenerator(tmp_path / "no_model", device="gpu0")


def test_not_a_model_directory(tmp_path):
    with pytest.raises(ModelDirError, match="model directory not found"):
        check_model_dir(tmp_path / "missing")
    with pytest.raises(ModelDirError, match=f"{tmp_path}.*no config.json"):
        check_model_dir(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelDirError, match=f"{tmp_path} is not a loadable model"):
        check_model_dir(tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_vllm_backend_says_it_is_not_installed(chat_model):
    with pytest.raises(ImportError, match="vllm not installed"):
        VLLMGenerator(chat_model)
    with pytest.raises(ImportError, match="vllm not installed"):
        load_generator(chat_model, backend="vllm")


def test_unknown_backend(chat_model):
    with pytest.raises(ValueError, match="unknown generation backend 'tpu'"):
        load_generator(chat_model, backend="tpu")


@pytest.mark.gpu
def test_vllm_matches_settings_on_gpu(chat_model):
    pytest.importorskip("vllm", reason="needs vllm and a CUDA GPU")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    gen = VLLMGenerator(chat_model, gpu_memory_utilization=0.2)
    params = SamplingParams(temperature=0.8, max_tokens=4, seed=1)
    first = gen.generate(["a", "b"], 3, params)
    assert [len(s) for s in first] == [3, 3]
    assert gen.generate(["a", "b"], 3, params) == first


def test_lm_eval_model_from_arg_string(chat_model):
    pytest.importorskip("lm_eval")
    from lm_eval.api.registry import get_model

    import mgrpo.evaluation.lm_eval_runner  # noqa: F401 -- registers the model "mgrpo"

    lm = get_model("mgrpo").create_from_arg_string(
        f"pretrained={chat_model},backend=hf,temperature=0.5,max_tokens=4,seed=2,batch_size=3")
    assert lm.params == SamplingParams(temperature=0.5, max_tokens=4, seed=2)
    assert isinstance(lm.generator, HFGenerator) and lm.generator.batch_size == 3
