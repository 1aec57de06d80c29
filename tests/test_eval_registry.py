"""The benchmark registry: an lm-eval benchmark is declared by its task file alone (one file to add one)."""
from __future__ import annotations

import re
import shutil

import pytest

from mgrpo.evaluation import benchmarks as bm
from test_eval_fixtures import ScriptedGenerator, write_jsonl

PAPER_BENCHMARKS = {"math500", "aime24", "aime25", "gpqa_diamond", "gpqa", "mmlu_pro"}

NEW_TASK = """\
include: _math_base.yaml
task: mgrpo_tiny_sums
metadata:
  version: 1.0
  benchmark: tiny_sums
  label: Tiny sums
  description: three sums, avg@4
  samples: 4
  format: math
  columns: {problem: question, answer: final}
  source: {hf_id: example/tiny-sums, split: test, file: sums.jsonl, fields: [question, final]}
"""


def test_the_package_declares_the_papers_benchmarks_in_task_files():
    declared = {b.name: b for b in bm.task_file_benchmarks()}
    assert PAPER_BENCHMARKS <= set(declared)  # and any benchmark dropped in by its task file (Adding a benchmark)
    assert {name: (b.doc_format, b.grading) for name, b in declared.items() if name in PAPER_BENCHMARKS} == {
        "math500": ("math", "math"), "aime24": ("math", "math"), "aime25": ("math", "math"),
        "gpqa_diamond": ("gpqa", "choice"), "gpqa": ("gpqa", "choice"), "mmlu_pro": ("mmlu_pro", "choice")}
    assert dict(declared["aime24"].columns) == {"id": "ID", "problem": "Problem", "answer": "Answer"}
    assert all(bm.BENCHMARKS[name] == b for name, b in declared.items())


def test_every_format_has_a_normaliser():
    from mgrpo.evaluation.datasets import DOC_BUILDERS

    assert set(DOC_BUILDERS) == set(bm.GRADING_OF_FORMAT)


def test_a_benchmark_is_added_by_dropping_in_one_task_file(tmp_path, monkeypatch):
    pytest.importorskip("lm_eval")
    from mgrpo.evaluation import evaluate, lm_eval_runner

    tasks = tmp_path / "tasks"
    shutil.copytree(bm.TASK_DIR, tasks)  # the package's task folder, one file more
    (tasks / "tiny_sums.yaml").write_text(NEW_TASK)
    declared = {b.name: b for b in bm.task_file_benchmarks(tasks)}
    assert set(declared) == {b.name for b in bm.task_file_benchmarks()} | {"tiny_sums"}
    # What the package does at import (registry) and at run time (lm-eval's task folder), pointed at the copy.
    monkeypatch.setitem(bm.BENCHMARKS, "tiny_sums", declared["tiny_sums"])
    monkeypatch.setattr(lm_eval_runner, "TASK_DIR", tasks)
    data = tmp_path / "data"
    write_jsonl(data / "sums.jsonl", [{"question": f"What is {i} + {i}?", "final": str(2 * i)} for i in (1, 2, 3)])

    def respond(text, j):  # problem i: its first i of 4 samples are right -> 1/4, 2/4, 3/4
        i = int(re.search(r"What is (\d+) \+", text).group(1))
        return f"\\boxed{{{2 * i if j < i else 0}}}"

    result = evaluate("scripted", ["tiny_sums"], tmp_path / "out", data_dir=data,
                      generator=ScriptedGenerator(respond))["tiny_sums"]
    assert (result["metric"], result["n_problems"], result["samples_per_problem"]) == ("avg@4", 3, 4)
    assert result["metrics"] == {"avg@4": pytest.approx(0.5), "pass@4": pytest.approx(1.0)}
    assert (result["dataset"]["source"], result["dataset"]["split"]) == ("example/tiny-sums", "test")
    from analysis.tables import benchmark_label  # the tables title its column with the file's label

    assert [benchmark_label(n) for n in ("tiny_sums", "math500", "not_registered")] == \
        ["Tiny sums", "MATH500", "not_registered"]


def write_task(tmp_path, text, name="tiny_sums"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("old,new,message", [
    ("  samples: 4\n", "", r"metadata: 'samples' is a required property"),
    ("format: math", "format: essay", r"metadata.format: 'essay' is not one of \['gpqa', 'math', 'mmlu_pro'\]"),
    ("include: _math_base.yaml", "include: _choice_base.yaml", r"format 'math' is graded by _math_base.yaml: set 'include: _math_base.yaml'"),
    ("benchmark: tiny_sums", "benchmark: sums", r"metadata.benchmark 'sums' must be the file's name 'tiny_sums'"),
    ("task: mgrpo_tiny_sums", "task: tiny_sums", r"task must be 'mgrpo_tiny_sums'"),
    ("samples: 4", "samples: 0", r"metadata.samples: 0 is less than the minimum of 1"),
    ("samples: 4", "samples: 4\n  temperature: 0.6", r"metadata: Additional properties are not allowed \('temperature' was unexpected\)"),
    ("{problem: question, answer: final}", "{problem: question}", r"metadata.columns: 'answer' is a required property"),
    ("file: sums.jsonl, ", "", r"metadata.source: 'file' is a required property"),
    ("fields: [question, final]", "fields: []", r"metadata.source.fields: \[\] should be non-empty"),
    ("fields: [question, final]", "fields: [question]", r"metadata.columns \['final'\] must be among"),
    ("version: 1.0\n", "version: [1.0\n", r"not valid YAML"),
])
def test_a_bad_task_file_is_refused_naming_the_file_and_the_key(tmp_path, old, new, message):
    assert old in NEW_TASK
    path = write_task(tmp_path, NEW_TASK.replace(old, new))
    with pytest.raises(bm.TaskFileError, match=re.escape(str(path)) + ": " + message):
        bm.benchmark_from_task_file(path)


def test_columns_are_for_the_math_format_and_only_for_it(tmp_path):
    choice = NEW_TASK.replace("_math_base", "_choice_base").replace("format: math", "format: mmlu_pro")
    with pytest.raises(bm.TaskFileError, match="needed by format 'math' and only by it; format 'mmlu_pro' has fixed"):
        bm.benchmark_from_task_file(write_task(tmp_path, choice))
    no_columns = NEW_TASK.replace("  columns: {problem: question, answer: final}\n", "")
    with pytest.raises(bm.TaskFileError, match="needed by format 'math' and only by it; format 'math' needs it"):
        bm.benchmark_from_task_file(write_task(tmp_path, no_columns))


def test_mgrpo_benchmarks_lists_what_the_task_files_declare(tmp_path, monkeypatch, capsys):
    from mgrpo.cli import main

    monkeypatch.setitem(bm.BENCHMARKS, "tiny_sums", bm.benchmark_from_task_file(write_task(tmp_path, NEW_TASK)))
    assert main(["benchmarks"]) == 0
    listed = {line.split()[0]: line.split()[1:5] for line in capsys.readouterr().out.splitlines()}
    assert set(listed) == set(bm.BENCHMARKS) >= PAPER_BENCHMARKS | {"toy", "mbpp_plus", "livecodebench", "tiny_sums"}
    assert listed["tiny_sums"] == ["lm_eval", "(math)", "k=4", "sums.jsonl"]
    assert listed["gpqa_diamond"] == ["lm_eval", "(gpqa)", "k=8", "gpqa_diamond.jsonl"]
    assert listed["mbpp_plus"][:2] == ["code", "k=1"]
