"""End to end: a tiny local HF model through lm-eval, the toy benchmark, the CLI, and bad inputs."""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from mgrpo.evaluation.benchmarks import UnknownBenchmarkError, known_benchmarks
from mgrpo.evaluation.generation import ModelDirError
from mgrpo.evaluation import evaluate  # the public entry (lazy export of mgrpo.evaluation.runner.evaluate)
from test_eval_fixtures import (
    ScriptedGenerator,
    save_tiny_chat_model,
    save_tiny_toy_model,
    write_fixture_data,
    write_jsonl,
)

RESULT_KEYS = {"benchmark", "model", "metric", "value", "stderr", "n_problems", "samples_per_problem",
               "generation", "dataset"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_fixture_data(tmp_path_factory.mktemp("eval_data"))


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory):
    return save_tiny_chat_model(tmp_path_factory.mktemp("chat_model"))


@pytest.fixture(scope="module")
def toy_setup(tmp_path_factory):
    from mgrpo.toy import task
    root = tmp_path_factory.mktemp("toy")
    task.write_splits(root / "data", seed=0, config=task.TaskConfig(pretrain_size=4, train_size=4, test_size=5))
    return save_tiny_toy_model(root / "model"), root / "data"


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_tiny_hf_model_through_lm_eval(chat_model, data_dir, tmp_path):
    pytest.importorskip("lm_eval")
    result = evaluate(str(chat_model), ["aime25"], tmp_path, data_dir=data_dir, samples=2, max_tokens=4,
                      limit=3)["aime25"]
    assert RESULT_KEYS <= set(result)
    assert (result["metric"], result["n_problems"], result["samples_per_problem"]) == ("avg@2", 3, 2)
    assert result["generation"] == {"temperature": 0.8, "top_p": 1.0, "max_tokens": 4, "backend": "hf", "seed": 0}
    assert result["dataset"]["source"] == "math-ai/aime25"
    records = read_jsonl(tmp_path / "aime25.samples.jsonl")
    assert len(records) == 3 and all(len(r["responses"]) == 2 for r in records)
    assert all(len(resp) <= 4 for r in records for resp in r["responses"])   # char tokenizer: <= 4 chars
    # The prompt is the model's own chat template with our system prompt.
    assert records[0]["prompt"].startswith("<|im_start|>system\nLet's think step by step")
    assert records[0]["prompt"].endswith("<|im_start|>assistant\n")
    # The reported value is the mean of the logged verdicts.
    mean = sum(sum(r["correct"]) / 2 for r in records) / 3
    assert result["value"] == pytest.approx(mean)


def test_toy_benchmark_on_a_tiny_model(toy_setup, tmp_path):
    from mgrpo.toy.task import extract_answer

    model, data = toy_setup
    result = evaluate(str(model), ["toy"], tmp_path, data_dir=data, samples=3)["toy"]
    assert (result["metric"], result["n_problems"], result["samples_per_problem"]) == ("avg@3", 5, 3)
    assert result["generation"]["max_tokens"] == 16
    records = read_jsonl(tmp_path / "toy.samples.jsonl")
    rows = read_jsonl(data / "test.jsonl")
    assert [r["prompt"] for r in records] == [row["prompt"] for row in rows]   # raw prompt, no chat template
    for record in records:
        assert record["extracted"] == [extract_answer(resp) for resp in record["responses"]]


def test_toy_scoring_is_exact_with_a_scripted_model(toy_setup, tmp_path):
    _, data = toy_setup
    rows = {row["prompt"]: row["answer"] for row in read_jsonl(data / "test.jsonl")}

    class RawScripted(ScriptedGenerator):
        def generate(self, prompts, n, params):
            # problem i: samples j < i are right ("#<answer>"), others wrong ("#" + another digit)
            order = list(rows)
            return [[f"1,2#{rows[p]}" if j < order.index(p) else f"#{(int(rows[p]) + 1) % 10}"
                     for j in range(n)] for p in prompts]

    result = evaluate("scripted", ["toy"], tmp_path, data_dir=data, samples=4,
                      generator=RawScripted(None))["toy"]
    # correct counts min(i, 4) for i = 0..4 -> 0+1+2+3+4 = 10 of 20; pass@4 = 4/5
    assert result["value"] == pytest.approx(10 / 20)
    assert result["metrics"]["pass@4"] == pytest.approx(4 / 5)


def test_cli_evaluate_toy(toy_setup, tmp_path, capsys):
    from mgrpo.cli import main

    model, data = toy_setup
    code = main(["evaluate", "--model", str(model), "--benchmarks", "toy", "--out", str(tmp_path),
                 "--data-dir", str(data), "--samples", "2", "--limit", "2", "--seed", "5"])
    assert code == 0
    result = json.loads((tmp_path / "toy.json").read_text())
    assert (result["n_problems"], result["samples_per_problem"], result["generation"]["seed"]) == (2, 2, 5)
    assert "toy" in capsys.readouterr().out


# ------------------------------------------------------------------ bad inputs

@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_cli_vllm_backend_where_vllm_is_absent_is_one_line(toy_setup, tmp_path, capsys):
    # it was a 7-frame traceback ending in "ImportError: vllm not installed: ..."
    from mgrpo.cli import main

    model, data = toy_setup
    code = main(["evaluate", "--model", str(model), "--benchmarks", "toy", "--out", str(tmp_path / "out"),
                 "--data-dir", str(data), "--backend", "vllm"])
    assert code == 2
    assert capsys.readouterr().err == ("mgrpo evaluate: error: vllm not installed: install vllm on the GPU machine, "
                                       "or use --backend hf\n")
    assert not (tmp_path / "out").exists()


def test_unknown_benchmark_lists_the_known_ones(tmp_path):
    with pytest.raises(UnknownBenchmarkError) as err:
        evaluate("m", ["math500", "aime26"], tmp_path)
    assert "'aime26'" in str(err.value)
    assert all(name in str(err.value) for name in known_benchmarks())


def test_cli_unknown_benchmark_is_a_clean_error(tmp_path, capsys):
    from mgrpo.cli import main

    assert main(["evaluate", "--model", str(tmp_path / "m"), "--benchmarks", "nope", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown benchmark(s) 'nope'" in err and "math500" in err


@pytest.mark.parametrize("flags, message", [
    (["--out", "FILE"], "output folder FILE is a file, not a folder"),
    (["--cache", "FILE"], "cache folder FILE is a file, not a folder"),
    (["--out", "MODEL"], "output folder MODEL is inside the model folder MODEL: write results elsewhere"),
    (["--out", "MODEL/results"], "output folder MODEL/results is inside the model folder MODEL: write results "
                                 "elsewhere"),
    (["--cache", "MODEL/cache"], "cache folder MODEL/cache is inside the model folder MODEL: write results elsewhere"),
    (["--batch-size", "0"], "batch_size must be an integer >= 1, got 0"),
    (["--seed", "-1"], "seed must be an integer in [0, 2147483647] (got -1)"),
    (["--temperature", "inf"], "temperature must be a finite number >= 0, got inf"),
    (["--temperature", "nan"], "temperature must be a finite number >= 0, got nan"),
    pytest.param(["--device", "cuda:7"], "device 'cuda:7' is not usable here: Torch not compiled with CUDA enabled",
                 marks=pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="torch here has CUDA")),
])
def test_cli_refuses_bad_options_in_one_line_before_loading_the_model(toy_setup, tmp_path, capsys, monkeypatch,
                                                                      flags, message):
    from transformers import AutoModelForCausalLM

    from mgrpo.cli import main

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", lambda *a, **k: pytest.fail("the model loaded"))
    model, data = toy_setup
    (tmp_path / "FILE").write_text("keep me")
    options = {"--out": str(tmp_path / "out"), "--data-dir": str(data)}
    model_files = sorted(p.relative_to(model) for p in Path(model).rglob("*"))
    flags = [flag.replace("FILE", str(tmp_path / "FILE")).replace("MODEL", str(model)) for flag in flags]
    options.update(zip(flags[::2], flags[1::2]))
    assert main(["evaluate", "--model", str(model), "--benchmarks", "toy",
                 *[x for item in options.items() for x in item]]) == 2
    message = message.replace("FILE", str(tmp_path / "FILE")).replace("MODEL", str(model))
    assert capsys.readouterr().err == f"mgrpo evaluate: error: {message}\n"
    assert (tmp_path / "FILE").read_text() == "keep me"
    assert not (tmp_path / "out").exists()
    assert sorted(p.relative_to(model) for p in Path(model).rglob("*")) == model_files


def test_non_model_checkpoint_fails_before_generation(tmp_path, data_dir):
    not_a_model = tmp_path / "ckpt"
    not_a_model.mkdir()
    (not_a_model / "weights.bin").write_bytes(b"")
    with pytest.raises(ModelDirError, match=f"{not_a_model} is not a model directory: no config.json"):
        evaluate(str(not_a_model), ["math500"], tmp_path / "out", data_dir=data_dir)
    assert not (tmp_path / "out").exists()


def test_missing_data_dir_or_file(tmp_path, chat_model):
    with pytest.raises(ValueError, match="math500.jsonl: pass --data-dir"):
        evaluate(str(chat_model), ["math500"], tmp_path)
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'aime24.jsonl'}"):
        evaluate(str(chat_model), ["aime24"], tmp_path / "out", data_dir=tmp_path)


def test_missing_toy_data_dir_points_at_toy_data_not_prepare_data(tmp_path, chat_model):
    # prepare-data refuses toy ("toy data is generated"): the advice must name the command that writes it
    with pytest.raises(ValueError, match=r"test\.jsonl: pass --data-dir \(prepare it with `mgrpo toy-data --out DIR"):
        evaluate(str(chat_model), ["toy"], tmp_path)


@pytest.mark.parametrize("rows,message", [
    ([{"problem": "p"}], "math500.jsonl:1: missing field 'answer'"),
    ([{"problem": "p", "answer": "1"}, {"problem": "", "answer": "2"}], "math500.jsonl:2: field 'problem' is empty"),
])
def test_malformed_data_file_names_file_line_and_field(tmp_path, chat_model, rows, message):
    write_jsonl(tmp_path / "math500.jsonl", rows)
    with pytest.raises(ValueError, match=message):
        evaluate(str(chat_model), ["math500"], tmp_path / "out", data_dir=tmp_path)
    assert not (tmp_path / "out").exists()   # checked before any model is loaded


def test_invalid_json_line(tmp_path, chat_model):
    (tmp_path / "aime25.jsonl").write_text('{"problem": "p", "answer": 1, "id": "0"}\n{oops\n')
    with pytest.raises(ValueError, match="aime25.jsonl:2: not valid JSON"):
        evaluate(str(chat_model), ["aime25"], tmp_path / "out", data_dir=tmp_path)


def test_corrupt_manifest_fails_before_generation(tmp_path):
    write_jsonl(tmp_path / "aime25.jsonl", [{"problem": "p", "answer": 1, "id": "0"}])
    (tmp_path / "MANIFEST.json").write_text('{"aime25": {"sha256": ')  # a download cut short
    generator = ScriptedGenerator(lambda text, j: "\\boxed{1}")
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'MANIFEST.json'}: unreadable manifest: ")):
        evaluate("scripted", ["aime25"], tmp_path / "out", data_dir=tmp_path, samples=1, generator=generator)
    assert generator.calls == [] and not (tmp_path / "out").exists()


def test_code_benchmarks_dispatch_with_the_same_settings(tmp_path, monkeypatch):
    from mgrpo.evaluation import code
    from mgrpo.evaluation.generation import EvalSettings, SamplingParams

    seen = {}

    def fake_evaluate_code(benchmark, generator, data_path, out_dir, settings):
        seen.update(benchmark=benchmark, generator=generator, data_path=data_path, settings=settings)
        return {"benchmark": benchmark, "metric": "pass@1", "value": 0.5}

    monkeypatch.setattr(code, "evaluate_code", fake_evaluate_code)
    # valid data: it is loaded and checked before any model (the fake stands in for what follows)
    (tmp_path / "mbpp_plus.jsonl").write_bytes(MBPP_FIXTURE.read_bytes())
    generator = ScriptedGenerator(lambda text, j: "")
    result = evaluate("m", ["mbpp_plus"], tmp_path / "out", data_dir=tmp_path, generator=generator,
                      temperature=0.7, samples=2, seed=3, limit=4, code_options={"workers": 2})["mbpp_plus"]
    assert result["value"] == 0.5
    assert json.loads((tmp_path / "out" / "mbpp_plus.json").read_text())["value"] == 0.5
    assert seen["generator"].generator is generator and seen["data_path"] == tmp_path / "mbpp_plus.jsonl"
    assert seen["generator"].store is None  # no cache folder: generated in chunks, nothing kept
    assert seen["settings"] == EvalSettings(model="m", backend="scripted", samples=2, limit=4, extra={"workers": 2},
                                            sampling=SamplingParams(temperature=0.7, max_tokens=3072, seed=3))


def test_code_benchmark_data_must_exist_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="livecodebench.*pass --data-dir"):
        evaluate("m", ["livecodebench"], tmp_path / "out", generator=ScriptedGenerator(None))
    with pytest.raises(FileNotFoundError, match="data for livecodebench not found"):
        evaluate("m", ["livecodebench"], tmp_path / "out", data_dir=tmp_path, generator=ScriptedGenerator(None))


MBPP_FIXTURE = __import__("pathlib").Path(__file__).parent / "fixtures" / "mbpp_plus_two_problems.jsonl"


def _without_entry_point(path):
    rows = read_jsonl(MBPP_FIXTURE)
    del rows[1]["entry_point"]
    write_jsonl(path, rows)


@pytest.mark.parametrize("name,spoil,message", [
    ("mbpp_plus", lambda p: p.write_text(""), "{path}: no problems"),
    ("mbpp_plus", lambda p: p.mkdir(), "MBPP+ data file {path} is a folder, not a file"),
    ("mbpp_plus", _without_entry_point, "{path}:2: missing field(s) ['entry_point']"),
    ("livecodebench", lambda p: p.write_text(""), "livecodebench: no problems to evaluate in {path} with these "
                                                  "settings"),
    ("livecodebench", lambda p: p.write_text('{"question_id": "1"}\n'),
     "{path}:1: missing field(s) ['question_title', 'question_content', 'platform', 'contest_date', 'starter_code', "
     "'difficulty', 'public_test_cases', 'private_test_cases', 'metadata']"),
])
def test_bad_code_benchmark_data_fails_before_the_model_loads_and_before_toy_is_written(toy_setup, tmp_path,
                                                                                        name, spoil, message):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(toy_setup[1], data)
    path = data / f"{name}.jsonl"
    spoil(path)
    # the model does not exist: reaching it would be another error
    with pytest.raises(ValueError) as err:
        evaluate(str(tmp_path / "no_model"), ["toy", name], tmp_path / "out", data_dir=data)
    assert str(err.value) == message.format(path=path)
    assert not (tmp_path / "out").exists()  # toy was not evaluated first


@pytest.mark.parametrize("option,value,expected", [
    ("start_date", 20240101, 'a date "YYYY-MM-DD"'), ("start_date", "2024/01/01", 'a date "YYYY-MM-DD"'),
    ("end_date", "2024-13-01", 'a date "YYYY-MM-DD"'),
    ("workers", "abc", "an integer >= 1"), ("workers", 0, "an integer >= 1"), ("workers", 2.5, "an integer >= 1"),
    ("timeout_s", "abc", "a number > 0 (seconds)"), ("timeout_s", 0, "a number > 0 (seconds)"),
    ("timeout_s", -1, "a number > 0 (seconds)"), ("timeout_s", True, "a number > 0 (seconds)"),
    ("memory_mb", 0, "an integer >= 1 (MiB)"), ("memory_mb", -5, "an integer >= 1 (MiB)"),
    ("release_version", "v5", "'release_latest' or 'release_vK'"),
    ("allow_weak_sandbox", "yes", "true or false"),
])
def test_a_code_option_of_the_wrong_type_or_range_is_named_before_any_model_is_loaded(tmp_path, option, value,
                                                                                      expected):
    with pytest.raises(ValueError) as err:
        evaluate(str(tmp_path / "no_model"), ["livecodebench"], tmp_path / "out", data_dir=tmp_path,
                 code_options={option: value})
    assert str(err.value) == f"code option {option} must be {expected} (got {value!r})"


def test_valid_code_options_pass_the_check():
    from mgrpo.evaluation.code import check_code_options

    check_code_options({"workers": 1, "timeout_s": 0.5, "memory_mb": 1, "start_date": "2024-01-01",
                        "end_date": "2024-12-31", "release_version": "release_v5", "allow_weak_sandbox": False})
    check_code_options({"timeout_s": 6, "release_version": "release_latest"})


def test_a_misspelt_code_option_fails_before_any_model_is_loaded(tmp_path):
    # it failed in the code benchmark, after the model had loaded (minutes for a GPU model); the model path here
    # does not exist and no generator is given, so reaching the model would raise another error
    with pytest.raises(ValueError, match=r"unknown code option\(s\) timeout; known: allow_weak_sandbox, end_date, "
                                         r"memory_mb, release_version, start_date, timeout_s, workers"):
        evaluate(str(tmp_path / "no_model"), ["mbpp_plus"], tmp_path / "out", data_dir=tmp_path,
                 code_options={"timeout": 5})
    # sampling is set by evaluate's own arguments: as a code option it would have been silently overridden
    with pytest.raises(ValueError, match=r"unknown code option\(s\) temperature"):
        evaluate(str(tmp_path / "no_model"), ["mbpp_plus"], tmp_path / "out", data_dir=tmp_path,
                 code_options={"temperature": 0.2})


def test_code_option_parsing():
    from mgrpo.evaluation.cli import parse_options

    assert parse_options(["workers=8", "timeout_s=6.5", "release_version=release_v5"]) == \
        {"workers": 8, "timeout_s": 6.5, "release_version": "release_v5"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_options(["workers"])


# ------------------------------------------------------------------ the result cache

def test_cached_results_are_reused_only_while_model_data_and_settings_are_unchanged(toy_setup, tmp_path,
                                                                                   monkeypatch):
    import os
    import shutil

    model_src, data_src = toy_setup
    model, data = tmp_path / "model", tmp_path / "data"
    shutil.copytree(model_src, model)
    shutil.copytree(data_src, data)
    calls = []

    class Counting(ScriptedGenerator):
        backend = "hf"  # stands in for the hf model the cached call below would otherwise load

        def generate(self, prompts, n, params):
            calls.append(n)
            return [["#1"] * n for _ in prompts]

    def run(out, **kwargs):
        options = dict(data_dir=data, samples=2, generator=Counting(None), cache_dir=tmp_path / "cache")
        return evaluate(str(model), ["toy"], tmp_path / out, **{**options, **kwargs})["toy"]

    first = run("a")
    assert calls == [2]
    again = run("b")  # same model files, data and settings: copied from the cache, nothing generated
    assert calls == [2] and again == first
    for name in ("toy.json", "toy.samples.jsonl"):
        assert (tmp_path / "b" / name).read_bytes() == (tmp_path / "a" / name).read_bytes()
    # all cached: not even a model is loaded
    from mgrpo.evaluation import runner

    monkeypatch.setattr(runner, "load_generator", lambda *a, **k: pytest.fail("a model was loaded"))
    assert evaluate(str(model), ["toy"], tmp_path / "c", data_dir=data, samples=2, backend="hf",
                    cache_dir=tmp_path / "cache")["toy"] == first
    (data / "test.jsonl").write_bytes((data / "test.jsonl").read_bytes())  # same content, new mtime: still cached
    run("d")
    assert calls == [2]
    run("e", samples=3)  # another setting
    assert calls == [2, 3]
    weights = next(p for p in model.iterdir() if p.suffix in (".safetensors", ".bin"))
    os.utime(weights, ns=(1, 1))  # the checkpoint was written again
    run("f", samples=3)
    assert calls == [2, 3, 3]
    run("g", samples=3, backend_options={"max_model_len": 4096})  # another engine setting: evaluated again
    assert calls == [2, 3, 3, 3]
    run("h", samples=3, backend_options={"max_model_len": 4096})
    assert calls == [2, 3, 3, 3]
    (tmp_path / "cache" / "toy.key.json").write_text("{not json")  # an unreadable key is a miss, not a crash
    run("i", samples=3, backend_options={"max_model_len": 4096})
    assert calls == [2, 3, 3, 3, 3]


def test_cached_results_are_not_reused_after_the_harness_changed(toy_setup, tmp_path, monkeypatch):
    """A fix to a grader, prompt or task file (or another grading package) must evaluate again."""
    import shutil
    from pathlib import Path

    from mgrpo.evaluation import runner

    model, data = toy_setup
    harness = tmp_path / "harness"  # a copy of the harness files, so one can be edited
    shutil.copytree(Path(runner.__file__).parent, harness / "evaluation",
                    ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(runner, "HARNESS_ROOT", harness, raising=False)
    calls = []

    class Counting(ScriptedGenerator):
        backend = "hf"

        def generate(self, prompts, n, params):
            calls.append(n)
            return [["#1"] * n for _ in prompts]

    def run(out):
        evaluate(str(model), ["toy"], tmp_path / out, data_dir=data, samples=2, generator=Counting(None),
                 cache_dir=tmp_path / "cache")

    run("a")
    run("b")  # same harness: cached
    assert calls == [2]
    grader = harness / "evaluation" / "choice_grading.py"
    grader.write_text(grader.read_text() + "\n# a grader fix\n")
    run("c")
    assert calls == [2, 2]
    run("d")  # the fixed harness is now the cached one
    assert calls == [2, 2]
    tasks = harness / "evaluation" / "lm_eval_tasks"
    task_file = tasks / "aime24.yaml"
    task_file.write_text(task_file.read_text() + "# a task fix\n")
    run("e")  # another benchmark's task file: toy's results stand (adding a benchmark re-evaluates that one only)
    (tasks / "tiny_sums.yaml").write_text("include: _math_base.yaml\n")
    run("e2")
    assert calls == [2, 2]
    assert runner.harness_fingerprint("aime24") != runner.harness_fingerprint("math500")  # each its own task file
    base = tasks / "_math_base.yaml"  # shared by the math tasks, and the lm-eval utilities: every benchmark's
    base.write_text(base.read_text() + "# a base fix\n")
    run("e3")
    assert calls == [2, 2, 2]
    real_version = runner._version
    monkeypatch.setattr(runner, "_version", lambda p: "9.9" if p == "math_verify" else real_version(p))
    run("f")  # another math-verify
    assert calls == [2, 2, 2, 2]
    key = json.loads((tmp_path / "cache" / "toy.key.json").read_text())
    assert key["harness"]["versions"]["math_verify"] == "9.9"
    monkeypatch.setattr(runner, "_version", lambda p: "9.9" if p in ("math_verify", "transformers")
                        else real_version(p))
    run("g")  # another transformers: the model may generate other responses
    assert calls == [2, 2, 2, 2, 2]
