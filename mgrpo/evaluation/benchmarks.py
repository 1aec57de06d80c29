"""The benchmark registry: how each benchmark is run, graded and sampled (the paper's protocol).

The lm-eval benchmarks are declared by their task file alone, ``lm_eval_tasks/<name>.yaml``: the task for lm-eval
(``include`` of the math or multiple-choice base) and, under ``metadata``, what this registry needs: the default k
of avg@k, a description, how rows become documents (``format``) and where the data comes from (``source``). A
benchmark of a known format is added by dropping in one file (docs/evaluation.md, "Adding a benchmark"). The toy
and code benchmarks, which lm-eval does not run, are listed here.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

# Same system prompt as training (mgrpo.verl_backend.data.SYSTEM_PROMPT, the released code's template):
# the model is evaluated on the instruction it was trained to follow.
SYSTEM_PROMPT = "Let's think step by step and output the final answer within \\boxed{}."

# The paper samples at temperature 0.8; AIME24, AIME25 and GPQA-Diamond 8 times (avg@8), the rest once.
EVAL_TEMPERATURE = 0.8
DEFAULT_MAX_TOKENS = 3072

TASK_DIR = Path(__file__).parent / "lm_eval_tasks"
# A task file's document format -> how its responses are graded, and the base task file that grades so.
DOC_FORMATS = {"math": "math", "gpqa": "choice", "mmlu_pro": "choice"}
GRADING_BASES = {"math": "_math_base.yaml", "choice": "_choice_base.yaml"}


@dataclass(frozen=True)
class DatasetSource:
    benchmark: str
    hf_id: str                 # Hugging Face dataset id
    config: str | None         # dataset config (subset) name
    split: str
    revision: str | None       # commit to download; None = default branch at download time (recorded)
    filename: str              # local file under --data-dir
    fields: tuple[str, ...]    # columns every row must have (non-empty)
    gated: bool = False        # needs HF_TOKEN (accepted terms of use)
    license: str = ""


@dataclass(frozen=True)
class Benchmark:
    name: str
    runner: str              # "toy" (own loop, raw prompt) | "lm_eval" (our task YAML) | "code" (mgrpo.evaluation.code)
    default_samples: int     # k of avg@k when --samples is not given
    max_tokens: int          # default generation budget
    description: str
    doc_format: str | None = None         # lm_eval: a key of DOC_FORMATS (mgrpo.evaluation.datasets normalises)
    columns: tuple[tuple[str, str], ...] = ()  # format "math": (document key, column) for id, problem, answer
    source: DatasetSource | None = None   # lm_eval: where prepare-data downloads the data from

    @property
    def grading(self) -> str | None:
        return DOC_FORMATS.get(self.doc_format)


class TaskFileError(ValueError):
    pass


class _TaskLoader(yaml.SafeLoader):
    """Reads a task file's plain keys; lm-eval's own tags (``!function``) are left to lm-eval."""


_TaskLoader.add_multi_constructor("!", lambda loader, suffix, node: None)

_SOURCE_KEYS = {"hf_id", "config", "split", "revision", "file", "fields", "gated", "license"}
_METADATA_KEYS = {"version", "benchmark", "description", "samples", "max_tokens", "format", "columns", "source"}


def benchmark_from_task_file(path: Path) -> Benchmark:
    """The registry entry a task file declares; a missing or wrong key fails naming the file and the key."""
    def fail(message: str):
        raise TaskFileError(f"{path}: {message}")

    try:
        task = yaml.load(path.read_text(), Loader=_TaskLoader)
    except yaml.YAMLError as err:
        fail(f"not valid YAML: {err}")
    meta = task.get("metadata") if isinstance(task, dict) else None
    if not isinstance(meta, dict):
        fail("needs a 'metadata' mapping (benchmark, description, samples, format, source)")
    for key in ("benchmark", "description", "samples", "format", "source"):
        if key not in meta:
            fail(f"metadata: missing key {key!r}")
    if unknown := sorted(set(meta) - _METADATA_KEYS):
        fail(f"metadata: unknown key(s) {unknown}; known: {sorted(_METADATA_KEYS)}")
    name = meta["benchmark"]
    if name != path.stem:
        fail(f"metadata.benchmark {name!r} must be the file's name {path.stem!r}")
    if task.get("task") != f"mgrpo_{name}":
        fail(f"task must be 'mgrpo_{name}' (got {task.get('task')!r})")
    doc_format = meta["format"]
    if doc_format not in DOC_FORMATS:
        fail(f"metadata.format {doc_format!r} is not one of {sorted(DOC_FORMATS)}")
    base = GRADING_BASES[DOC_FORMATS[doc_format]]
    if task.get("include") != base:
        fail(f"format {doc_format!r} is graded by {base}: set 'include: {base}' (got {task.get('include')!r})")
    for key in ("samples", "max_tokens"):
        value = meta.get(key, DEFAULT_MAX_TOKENS)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            fail(f"metadata.{key} must be a positive integer (got {value!r})")
    columns = meta.get("columns") or {}
    if doc_format == "math":
        if not isinstance(columns, dict) or not {"problem", "answer"} <= set(columns) <= {"id", "problem", "answer"}:
            fail(f"metadata.columns must map problem, answer (and optionally id) to the data's columns "
                 f"(got {columns!r})")
    elif columns:
        fail(f"metadata.columns is for format 'math' only; format {doc_format!r} has fixed columns")
    source = meta["source"]
    if not isinstance(source, dict):
        fail("metadata.source must be a mapping (hf_id, split, file, fields, ...)")
    for key in ("hf_id", "split", "file", "fields"):
        if key not in source:
            fail(f"metadata.source: missing key {key!r}")
    if unknown := sorted(set(source) - _SOURCE_KEYS):
        fail(f"metadata.source: unknown key(s) {unknown}; known: {sorted(_SOURCE_KEYS)}")
    if not isinstance(source["fields"], list) or not source["fields"]:
        fail("metadata.source.fields must be a non-empty list of column names")
    if missing := [column for key, column in columns.items() if key != "id" and column not in source["fields"]]:
        fail(f"metadata.columns {missing} must be among metadata.source.fields (the columns every row must have)")
    return Benchmark(
        name=name, runner="lm_eval", default_samples=meta["samples"],
        max_tokens=meta.get("max_tokens", DEFAULT_MAX_TOKENS), description=str(meta["description"]),
        doc_format=doc_format, columns=tuple((key, str(column)) for key, column in columns.items()),
        source=DatasetSource(benchmark=name, hf_id=str(source["hf_id"]), config=source.get("config"),
                             split=str(source["split"]), revision=source.get("revision"),
                             filename=str(source["file"]), fields=tuple(map(str, source["fields"])),
                             gated=bool(source.get("gated", False)), license=str(source.get("license", ""))))


def task_file_benchmarks(task_dir: Path = TASK_DIR) -> list[Benchmark]:
    """Every benchmark declared in ``task_dir`` (files starting with ``_`` are shared bases, not benchmarks)."""
    return [benchmark_from_task_file(path) for path in sorted(task_dir.glob("*.yaml"))
            if not path.name.startswith("_")]


BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    Benchmark("toy", "toy", 1, 16, "toy chain-arithmetic test split (CPU trainer checkpoints), raw prompt"),
    *task_file_benchmarks(),
    Benchmark("mbpp_plus", "code", 1, DEFAULT_MAX_TOKENS, "MBPP+ (evalplus), pass@1 in the sandbox"),
    Benchmark("livecodebench", "code", 1, DEFAULT_MAX_TOKENS, "LiveCodeBench code generation, pass@1 in the sandbox"),
)}


class UnknownBenchmarkError(ValueError):
    pass


def known_benchmarks() -> list[str]:
    return list(BENCHMARKS)


def get_benchmark(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise UnknownBenchmarkError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}") from None


def parse_benchmarks(names: str | list[str]) -> list[Benchmark]:
    """``"math500,aime24"`` or a list -> benchmarks, in order, without duplicates; unknown names fail first."""
    if isinstance(names, str):
        names = names.split(",")
    wanted = [n.strip() for n in names if n.strip()]
    if not wanted:
        raise ValueError(f"no benchmark given; known: {', '.join(BENCHMARKS)}")
    unknown = [n for n in wanted if n not in BENCHMARKS]
    if unknown:
        raise UnknownBenchmarkError(f"unknown benchmark(s) {', '.join(map(repr, unknown))}; "
                                    f"known: {', '.join(BENCHMARKS)}")
    return [BENCHMARKS[n] for n in dict.fromkeys(wanted)]
