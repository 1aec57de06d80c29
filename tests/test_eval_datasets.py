"""Benchmark data: the source registry, loaders (synthetic fixture rows; never real GPQA), shared data, prepare-data."""
from __future__ import annotations

import json
from pathlib import Path
from collections import Counter
from types import SimpleNamespace

import pytest

from mgrpo.evaluation import datasets as ds
from mgrpo.evaluation.benchmarks import BENCHMARKS, SYSTEM_PROMPT, parse_benchmarks
from test_eval_fixtures import GPQA_ROWS, MMLU_PRO_ROWS, SHARED_DATA, write_fixture_data, write_jsonl


def test_every_data_benchmark_has_a_source():
    file_benchmarks = {name for name, b in BENCHMARKS.items() if b.runner == "lm_eval"}
    assert file_benchmarks == {name for name, b in BENCHMARKS.items() if b.source is not None} >= \
        {"math500", "aime24", "aime25", "gpqa_diamond", "gpqa", "mmlu_pro"}  # >=: a dropped-in task file adds one
    gpqa_diamond, gpqa = BENCHMARKS["gpqa_diamond"].source, BENCHMARKS["gpqa"].source
    assert gpqa_diamond.gated and gpqa.gated and not BENCHMARKS["math500"].source.gated
    assert (gpqa_diamond.config, gpqa.config) == ("gpqa_diamond", "gpqa_main")


def test_protocol_defaults():
    shipped = {"toy", "math500", "aime24", "aime25", "gpqa_diamond", "gpqa", "mmlu_pro", "mbpp_plus", "livecodebench"}
    assert {n: b.default_samples for n, b in BENCHMARKS.items() if b.default_samples != 1 and n in shipped} == \
        {"aime24": 8, "aime25": 8, "gpqa_diamond": 8}  # a dropped-in task file may declare any k
    assert shipped <= set(BENCHMARKS)


def test_parse_benchmarks_keeps_order_and_drops_duplicates():
    assert [b.name for b in parse_benchmarks("aime25, math500,aime25")] == ["aime25", "math500"]
    with pytest.raises(ValueError, match="no benchmark given"):
        parse_benchmarks(" , ")


def test_system_prompt_is_the_training_prompt():
    from mgrpo.verl_backend import data
    assert SYSTEM_PROMPT == data.SYSTEM_PROMPT


def test_gpqa_choices_are_shuffled_deterministically_and_the_letter_names_the_correct_answer(tmp_path):
    path = write_jsonl(tmp_path / "gpqa.jsonl", GPQA_ROWS)
    docs = ds.load_docs("gpqa", path)
    again = ds.load_docs("gpqa", path)
    assert docs == again
    for row, doc in zip(GPQA_ROWS, docs):
        assert sorted(doc["choices"]) == sorted([row["Correct Answer"]] + [row[f"Incorrect Answer {i}"] for i in (1, 2, 3)])
        assert doc["choices"]["ABCD".index(doc["answer"])] == row["Correct Answer"]
    assert len(Counter(doc["answer"] for doc in docs)) > 1   # not always the same position
    # Pinned, so a seed that changes between processes (hash(), PYTHONHASHSEED) or versions fails here. Derived
    # by hand: seed = first 8 bytes (big-endian) of sha256("rec<i>"), random.Random(seed).shuffle([0, 1, 2, 3]);
    # rec0: seed 1640662613071946079 -> order [0, 2, 1, 3], so the correct answer (0) stays at A.
    assert [doc["answer"] for doc in docs] == ["A", "C", "B", "B", "C", "D"]
    assert docs[0]["choices"] == ["sentinel-0", "decoy-0-b", "decoy-0-a", "decoy-0-c"]


def test_mmlu_pro_answer_must_name_an_option(tmp_path):
    docs = ds.load_docs("mmlu_pro", write_jsonl(tmp_path / "mmlu_pro.jsonl", MMLU_PRO_ROWS))
    assert [d["answer"] for d in docs] == ["G", "J", "C", "F"] and len(docs[0]["choices"]) == 10
    bad = [dict(MMLU_PRO_ROWS[0], options=["x", "y", "z"], answer="E")]
    with pytest.raises(ValueError, match="mmlu_pro.jsonl: row 1: field 'answer' must be a letter naming one of the 3"):
        ds.load_docs("mmlu_pro", write_jsonl(tmp_path / "mmlu_pro.jsonl", bad))


@pytest.mark.parametrize("row, message", [
    ({"problem": "1+1?", "answer": True, "unique_id": "a"}, "field 'answer' must be text or a number, got True"),
    ({"problem": "1+1?", "answer": [2], "unique_id": "a"}, r"field 'answer' must be text or a number, got \[2\]"),
    ({"problem": "1+1?", "answer": float("nan"), "unique_id": "a"}, "field 'answer' must be text or a number, got nan"),
    ({"problem": ["1+1?"], "answer": "2", "unique_id": "a"}, r"field 'problem' must be text, got \['1\+1\?'\]"),
])
def test_a_math_value_of_the_wrong_type_is_named_not_graded_as_its_str(tmp_path, row, message):
    # the gold answer was str() of the value: "True", "[2]", "nan", which no response can match
    good = {"problem": "2+2?", "answer": 4, "unique_id": "b"}  # a number is an answer (AIME copies spell them so)
    assert ds.load_docs("math500", write_jsonl(tmp_path / "math500.jsonl", [good]))[0]["answer"] == "4"
    with pytest.raises(ValueError, match=rf"math500.jsonl: row 2: {message}"):
        ds.load_docs("math500", write_jsonl(tmp_path / "math500.jsonl", [good, row]))


def test_gpqa_missing_column(tmp_path):
    row = dict(GPQA_ROWS[0])
    del row["Incorrect Answer 3"]
    with pytest.raises(ValueError, match="gpqa_diamond.jsonl:1: missing field 'Incorrect Answer 3'"):
        ds.load_docs("gpqa_diamond", write_jsonl(tmp_path / "gpqa_diamond.jsonl", [row]))


def test_not_an_object_and_empty_file(tmp_path):
    (tmp_path / "a.jsonl").write_text("[1, 2]\n")
    with pytest.raises(ValueError, match="a.jsonl:1: expected a JSON object"):
        ds.read_jsonl_rows(tmp_path / "a.jsonl", ())
    (tmp_path / "b.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="b.jsonl: no rows"):
        ds.read_jsonl_rows(tmp_path / "b.jsonl", ())


def test_clean_latex_repairs_commands_read_as_string_escapes():
    assert ds.clean_latex("\x0crac{1}{2}") == "\\frac{1}{2}"
    assert ds.clean_latex("\\\x0crac{p}{q}") == "\\frac{p}{q}"
    assert ds.clean_latex("\tfrac{m}{n}") == "\\tfrac{m}{n}"
    assert ds.clean_latex("of $\triangle DEF$") == "of $\\triangle DEF$"  # AIME 2025 problem 19
    assert ds.clean_latex("$a\times b$, \\\text{cm}") == "$a\\times b$, \\text{cm}"
    assert ds.clean_latex("perimeters.\tan apple\to") == "perimeters.\tan apple\to"  # words after real TABs
    assert ds.clean_latex("a\tb") == "a\tb"
    assert ds.clean_latex("have\tequal\tperimeters.\tThe") == "have\tequal\tperimeters.\tThe"  # MATH-500 tabs
    assert ds.clean_latex("{\n\treturn 2*sin(x);") == "{\n\treturn 2*sin(x);"


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"{SHARED_DATA} not present")
@pytest.mark.parametrize("name,rows", [("math500", 500), ("aime24", 30), ("aime25", 30)])
def test_shared_data_loads(name, rows):
    docs = ds.load_docs(name, SHARED_DATA / BENCHMARKS[name].source.filename)
    assert len(docs) == rows
    assert len({d["id"] for d in docs}) == rows
    assert not any("\x0c" in d["problem"] for d in docs)
    if name != "math500":  # AIME has no real TAB; MATH-500's Asymptote code does
        assert not any("\t" in d["problem"] for d in docs)
    if name != "math500":
        assert all(d["answer"].isdigit() and 0 <= int(d["answer"]) <= 999 for d in docs)


def test_result_reports_the_downloaded_revision_only_for_the_downloaded_file(tmp_path):
    write_fixture_data(tmp_path)
    path = tmp_path / "math500.jsonl"
    sha = ds.file_sha256(path)
    (tmp_path / ds.MANIFEST).write_text(json.dumps({"math500": {"revision": "abc123", "sha256": sha}}))
    record = ds.dataset_record("math500", path)
    assert (record["source"], record["revision"], record["sha256"]) == ("HuggingFaceH4/MATH-500", "abc123", sha)
    path.write_text(path.read_text() + "\n\n")   # edited after download: the revision no longer vouches for it
    assert ds.dataset_record("math500", path)["revision"] is None


@pytest.mark.parametrize("content,reason", [
    (b'{"math500": {"sha256": ', "Expecting value"),                      # cut short
    (b'{"math500": "caf\xe9"}', "invalid continuation byte"),              # not UTF-8
    (b"[1, 2]", "expected a JSON object, got list"),
    (b'{"math500": "abc123"}', "entry 'math500' is a str, not an object"),
])
def test_an_unreadable_manifest_is_an_error_naming_it(tmp_path, content, reason):
    import re

    from mgrpo.evaluation.cli import present_entry
    from mgrpo.jsonl import DataError

    write_fixture_data(tmp_path)
    (tmp_path / ds.MANIFEST).write_bytes(content)
    message = re.escape(f"{tmp_path / ds.MANIFEST}: unreadable manifest: ") + f".*{reason}"
    with pytest.raises(DataError, match=message):
        ds.dataset_record("math500", tmp_path / "math500.jsonl")
    with pytest.raises(DataError, match=message):   # prepare-data --keep-present
        present_entry("math500", tmp_path)


def test_prepare_data_writes_rows_and_manifest(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    hub = pytest.importorskip("huggingface_hub")
    rows = [{"problem": "1+1", "answer": "2", "id": "0"}, {"problem": "2+2", "answer": "4", "id": "1"}]
    calls = {}

    def fake_load_dataset(path, name=None, split=None, revision=None, token=None):
        calls["load"] = (path, name, split, revision)
        return rows

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setattr(hub.HfApi, "dataset_info", lambda self, repo, revision=None, token=None:
                        SimpleNamespace(sha="f" * 40))
    from mgrpo.evaluation.cli import prepare_data

    entry = prepare_data("aime25", tmp_path)["aime25"]
    assert calls["load"] == ("math-ai/aime25", None, "test", "f" * 40)   # loads the resolved commit
    assert [json.loads(line) for line in (tmp_path / "aime25.jsonl").read_text().splitlines()] == rows
    manifest = json.loads((tmp_path / ds.MANIFEST).read_text())
    assert manifest["aime25"] == entry and entry["revision"] == "f" * 40 and entry["rows"] == 2
    assert ds.dataset_record("aime25", tmp_path / "aime25.jsonl")["revision"] == "f" * 40


def _offline_errors():
    import urllib.error

    import httpx
    from huggingface_hub.errors import OfflineModeIsEnabled

    return [(httpx.ConnectError("[Errno -2] Name or service not known"),
             "ConnectError: [Errno -2] Name or service not known"),
            (OfflineModeIsEnabled("Cannot reach https://huggingface.co/api: offline mode is enabled.\nUnset it."),
             "OfflineModeIsEnabled: Cannot reach https://huggingface.co/api: offline mode is enabled."),
            (urllib.error.URLError("[Errno -2] Name or service not known"),
             "URLError: <urlopen error [Errno -2] Name or service not known>")]


@pytest.mark.parametrize("failing", ["dataset_info", "load_dataset"])
@pytest.mark.parametrize("error,shown", _offline_errors())
def test_prepare_data_without_hub_access_is_one_line_naming_the_benchmark_and_source(tmp_path, monkeypatch, failing,
                                                                                     error, shown):
    import datasets
    import huggingface_hub as hub

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(hub.HfApi, "dataset_info", fail if failing == "dataset_info" else
                        lambda self, repo, revision=None, token=None: SimpleNamespace(sha="f" * 40))
    monkeypatch.setattr(datasets, "load_dataset", fail)
    from mgrpo.evaluation.cli import prepare_data

    with pytest.raises(ValueError) as err:
        prepare_data("math500", tmp_path / "data")
    assert str(err.value) == ("math500: cannot download HuggingFaceH4/MATH-500, which needs Hugging Face Hub access "
                              f"(network, HF_HUB_OFFLINE unset): {shown}")
    assert not (tmp_path / "data").exists()


def test_prepare_math_without_hub_access_is_one_error_line(tmp_path, monkeypatch, capsys):
    import huggingface_hub as hub

    from mgrpo.cli import main

    def fail(*args, **kwargs):
        raise _offline_errors()[0][0]

    monkeypatch.setattr(hub.HfApi, "dataset_info", fail)
    assert main(["prepare-math", "--out", str(tmp_path / "math")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mgrpo prepare-math: error: math_train: cannot download DigitalLearningGmbH/MATH-lighteval, "
                          "which needs Hugging Face Hub access") and err.count("\n") == 1


def test_an_error_that_is_not_about_the_network_is_not_reworded():
    with pytest.raises(KeyError):
        with ds.network_access("math500", "HuggingFaceH4/MATH-500"):
            raise KeyError("problem")


def test_prepare_data_keeps_intact_benchmarks_and_fetches_the_rest(tmp_path, monkeypatch):
    from mgrpo.evaluation import cli

    fetched = []

    def fake_download(name, out):
        fetched.append(name)
        path = Path(out) / f"{name}.jsonl"
        path.write_text(f'{{"id": "{name}"}}\n')
        manifest_path = Path(out) / ds.MANIFEST
        manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
        manifest[name] = {"path": path.name, "sha256": ds.file_sha256(path)}
        manifest_path.write_text(json.dumps(manifest))
        return manifest[name]

    monkeypatch.setattr(ds, "download", fake_download)
    cli.prepare_data("aime24,aime25", tmp_path, keep_present=True)
    assert fetched == ["aime24", "aime25"]
    (tmp_path / "aime25.jsonl").write_text("damaged\n")
    cli.prepare_data("aime24,aime25,math500", tmp_path, keep_present=True)
    assert fetched == ["aime24", "aime25", "aime25", "math500"]  # aime24 intact: kept; aime25 damaged: again
    cli.prepare_data("aime24", tmp_path)
    assert fetched[-1] == "aime24"  # without the flag everything is fetched, as before


def test_prepare_data_gated_without_token(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    from mgrpo.evaluation.cli import prepare_data

    with pytest.raises(ValueError, match="Idavidrein/gpqa .*gated.*HF_TOKEN"):
        prepare_data("gpqa_diamond", tmp_path)
    with pytest.raises(ValueError, match="toy data is generated"):
        prepare_data("toy", tmp_path)
