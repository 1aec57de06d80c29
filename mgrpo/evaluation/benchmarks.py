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

import jsonschema
import yaml

# Same system prompt as training (mgrpo.verl_backend.data.SYSTEM_PROMPT, the released code's template):
# the model is evaluated on the instruction it was trained to follow.
SYSTEM_PROMPT = "Let's think step by step and output the final answer within \\boxed{}."

# The paper samples at temperature 0.8; AIME24, AIME25 and GPQA-Diamond 8 times (avg@8), the rest once.
EVAL_TEMPERATURE = 0.8
DEFAULT_MAX_TOKENS = 3072

TASK_DIR = Path(__file__).parent / "lm_eval_tasks"
# A task file's document format -> how its responses are graded, and the base task file that grades so.
GRADING_OF_FORMAT = {"math": "math", "gpqa": "choice", "mmlu_pro": "choice"}
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
    label: str = ""                       # its name in tables and figures ("MATH500"); default: the name
    doc_format: str | None = None         # lm_eval: a key of GRADING_OF_FORMAT (mgrpo.evaluation.datasets normalises)
    columns: tuple[tuple[str, str], ...] = ()  # format "math": (document key, column) for id, problem, answer
    source: DatasetSource | None = None   # lm_eval: where prepare-data downloads the data from

    @property
    def title(self) -> str:
        return self.label or self.name

    @property
    def grading(self) -> str | None:
        return GRADING_OF_FORMAT.get(self.doc_format)


class TaskFileError(ValueError):
    pass


class _TaskLoader(yaml.SafeLoader):
    """Reads a task file's plain keys; lm-eval's own tags (``!function``) are left to lm-eval."""


_TaskLoader.add_multi_constructor("!", lambda loader, suffix, node: None)

_NAME = {"type": "string", "minLength": 1}
# What the registry reads from a task file (lm-eval reads all of it). Checked with jsonschema, as the workflow's
# config is; the checks across keys follow in benchmark_from_task_file.
TASK_FILE_SCHEMA = {
    "type": "object",
    "required": ["task", "include", "metadata"],
    "properties": {
        "task": _NAME,
        "include": {"enum": sorted(GRADING_BASES.values())},
        "metadata": {
            "type": "object",
            "required": ["benchmark", "description", "samples", "format", "source"],
            "additionalProperties": False,
            "properties": {
                "version": {"type": "number"},
                "benchmark": {"type": "string", "pattern": "^[a-z0-9_]+$"},
                "label": _NAME,
                "description": _NAME,
                "samples": {"type": "integer", "minimum": 1},
                "max_tokens": {"type": "integer", "minimum": 1},
                "format": {"enum": sorted(GRADING_OF_FORMAT)},
                "columns": {"type": "object", "required": ["problem", "answer"], "additionalProperties": False,
                            "properties": {key: _NAME for key in ("id", "problem", "answer")}},
                "source": {
                    "type": "object",
                    "required": ["hf_id", "split", "file", "fields"],
                    "additionalProperties": False,
                    "properties": {
                        "hf_id": _NAME, "config": {"type": ["string", "null"]}, "split": _NAME,
                        "revision": {"type": ["string", "null"]}, "file": _NAME,
                        "fields": {"type": "array", "items": _NAME, "minItems": 1},
                        "gated": {"type": "boolean"}, "license": {"type": "string"},
                    },
                },
            },
        },
    },
}


def benchmark_from_task_file(path: Path) -> Benchmark:
    """The registry entry a task file declares; a missing or wrong key fails naming the file and the key."""
    def fail(message: str):
        raise TaskFileError(f"{path}: {message}")

    try:
        task = yaml.load(path.read_text(), Loader=_TaskLoader)
    except yaml.YAMLError as err:
        fail(f"not valid YAML: {err}")
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(TASK_FILE_SCHEMA).iter_errors(task))
    if error is not None:
        fail(f"{'.'.join(map(str, error.absolute_path)) or 'the file'}: {error.message}")
    meta, source = task["metadata"], task["metadata"]["source"]
    name, doc_format, columns = meta["benchmark"], meta["format"], meta.get("columns", {})
    if name != path.stem:
        fail(f"metadata.benchmark {name!r} must be the file's name {path.stem!r}")
    if task["task"] != f"mgrpo_{name}":
        fail(f"task must be 'mgrpo_{name}' (got {task['task']!r})")
    base = GRADING_BASES[GRADING_OF_FORMAT[doc_format]]
    if task["include"] != base:
        fail(f"format {doc_format!r} is graded by {base}: set 'include: {base}' (got {task['include']!r})")
    if (doc_format == "math") != bool(columns):
        fail("metadata.columns (problem, answer, optionally id: the data's columns) is needed by format 'math' "
             f"and only by it; format {doc_format!r} " + ("needs it" if doc_format == "math" else "has fixed columns"))
    if missing := [column for key, column in columns.items() if key != "id" and column not in source["fields"]]:
        fail(f"metadata.columns {missing} must be among metadata.source.fields (the columns every row must have)")
    return Benchmark(
        name=name, runner="lm_eval", default_samples=meta["samples"],
        max_tokens=meta.get("max_tokens", DEFAULT_MAX_TOKENS), description=meta["description"],
        label=meta.get("label", ""), doc_format=doc_format, columns=tuple(columns.items()),
        source=DatasetSource(benchmark=name, hf_id=source["hf_id"], config=source.get("config"),
                             split=source["split"], revision=source.get("revision"), filename=source["file"],
                             fields=tuple(source["fields"]), gated=source.get("gated", False),
                             license=source.get("license", "")))


def task_file_benchmarks(task_dir: Path = TASK_DIR) -> list[Benchmark]:
    """Every benchmark declared in ``task_dir`` (files starting with ``_`` are shared bases, not benchmarks)."""
    return [benchmark_from_task_file(path) for path in sorted(task_dir.glob("*.yaml"))
            if not path.name.startswith("_")]


BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    Benchmark("toy", "toy", 1, 16, "toy chain-arithmetic test split (CPU trainer checkpoints), raw prompt",
              label="Toy test"),
    *task_file_benchmarks(),
    Benchmark("mbpp_plus", "code", 1, DEFAULT_MAX_TOKENS, "MBPP+ (evalplus), pass@1 in the sandbox", label="MBPP+"),
    Benchmark("livecodebench", "code", 1, DEFAULT_MAX_TOKENS, "LiveCodeBench code generation, pass@1 in the sandbox",
              label="LiveCodeBench"),
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
