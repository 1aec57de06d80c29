"""MBPP+ through evalplus 0.3.1, every candidate checked inside our sandbox.

evalplus traps (verified in evalplus 0.3.1's source, site-packages/evalplus):
- `evalplus/data/mbpp.py` reads `MBPP_OVERRIDE_PATH` from the environment AT IMPORT TIME; without it
  `get_mbpp_plus` downloads the dataset from GitHub. We set the variable and the module attribute to our local file.
- `evalplus/eval/__init__.py::untrusted_check` computes `min(os.getenv("EVALPLUS_TIMEOUT_PER_TASK", 60), ...)`: a set
  variable is a str, `min(str, float)` raises TypeError in a worker, and `evaluate()`'s non-daemon "stucking checker"
  thread then loops forever: the run hangs. We never set it (and drop it from the sandbox environment).
- `evalplus/evaluate.py::evaluate` silently reuses an existing `<samples>_eval_results.json`, and `get_groundtruth`
  loads a cached pickle `~/.cache/evalplus/<md5>.pkl`. We do not call `evaluate()`; the in-sandbox driver calls
  `get_groundtruth` and `check_correctness` with HOME set to the run's fresh, empty work dir.
- its `reliability_guard` is "NOT a security sandbox": each candidate runs in its own `run_untrusted` sandbox.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path

from mgrpo.evaluation.sandbox import run_untrusted
from mgrpo.jsonl import DataError, iter_jsonl

REQUIRED_FIELDS = ("task_id", "prompt", "canonical_solution", "entry_point", "base_input", "plus_input", "atol")
INSTRUCTION_PREFIX = ("Please provide a self-contained Python script that solves the following problem in a "
                      "markdown code block:")  # evalplus codegen's instruction for chat models
DRIVER_SOURCE = Path(__file__).with_name("_mbpp_driver.py")


def load_problems(data_path: str | Path) -> list[dict]:
    """The raw MbppPlus problems (JSON values, as in the file), validated, then loaded once through evalplus."""
    path = Path(data_path)
    problems = []
    for where, row in iter_jsonl(path, "MBPP+ data file"):
        missing = [f for f in REQUIRED_FIELDS if f not in row]
        if missing:
            raise DataError(f"{where}: missing field(s) {missing}")
        for field in ("base_input", "plus_input"):
            if not isinstance(row[field], list) or not all(isinstance(x, list) for x in row[field]):
                raise DataError(f"{where}: field '{field}' must be a list of argument lists")
        if not isinstance(row["atol"], (int, float)):
            raise DataError(f"{where}: field 'atol' must be a number, got {row['atol']!r}")
        for field in ("task_id", "prompt", "canonical_solution", "entry_point"):
            if not isinstance(row[field], str):
                raise DataError(f"{where}: field '{field}' must be a string")
        problems.append(row)
    if not problems:
        raise DataError(f"{path}: no problems")
    _check_with_evalplus(path, problems)
    return problems


def _check_with_evalplus(path: Path, problems: list[dict]) -> None:
    """Load the file through evalplus's own loader (MBPP_OVERRIDE_PATH), so what we score is what evalplus reads."""
    import evalplus.data.mbpp as evalplus_mbpp

    previous_env, previous_attr = os.environ.get("MBPP_OVERRIDE_PATH"), evalplus_mbpp.MBPP_OVERRIDE_PATH
    os.environ["MBPP_OVERRIDE_PATH"] = str(path)
    evalplus_mbpp.MBPP_OVERRIDE_PATH = str(path)  # read at import time: the env var alone may come too late
    try:
        loaded = evalplus_mbpp.get_mbpp_plus(err_incomplete=False)
    except Exception as error:  # noqa: BLE001 - e.g. a task_id evalplus cannot parse
        raise DataError(f"{path}: evalplus could not load it: {error!r}") from None
    finally:
        evalplus_mbpp.MBPP_OVERRIDE_PATH = previous_attr
        if previous_env is None:
            os.environ.pop("MBPP_OVERRIDE_PATH", None)
        else:
            os.environ["MBPP_OVERRIDE_PATH"] = previous_env
    if set(loaded) != {p["task_id"] for p in problems}:
        raise DataError(f"{path}: evalplus loaded other tasks than the file holds (duplicate task_id?)")


def dataset_hash(data_path: str | Path) -> str:
    """evalplus's dataset hash (md5 of the file bytes, as get_mbpp_plus_hash)."""
    return hashlib.md5(Path(data_path).read_bytes()).hexdigest()


def build_prompt(problem: dict) -> str:
    """evalplus's chat instruction (its assistant-side response prefix cannot be sent through a user message)."""
    return f"{INSTRUCTION_PREFIX}\n```\n{problem['prompt'].strip()}\n```\n"


def extract_solution(response: str, problem: dict) -> str:
    """evalplus's sanitizer: the code block's functions/imports the entry point needs."""
    from evalplus.sanitize import sanitize

    return sanitize(response, problem["entry_point"])


def score_solution(problem: dict, solution: str, timeout_s: float = 150.0, memory_mb: int = 4096,
                   min_time_limit: float | None = None, gt_time_limit_factor: float | None = None) -> dict:
    """Check one solution with evalplus's logic inside our sandbox; passes when base and plus tests pass."""
    from evalplus.config import DEFAULT_GT_TIME_LIMIT_FACTOR, DEFAULT_MIN_TIME_LIMIT

    if not solution.strip():
        return {"passed": False, "base_status": None, "plus_status": None, "message": "no code extracted",
                "sandbox_status": None}
    nonce = secrets.token_hex(16)
    task = {"nonce": nonce, "problem": problem, "solution": solution,
            "min_time_limit": DEFAULT_MIN_TIME_LIMIT if min_time_limit is None else min_time_limit,
            "gt_time_limit_factor": DEFAULT_GT_TIME_LIMIT_FACTOR if gt_time_limit_factor is None
            else gt_time_limit_factor}
    memory_bytes = memory_mb * 1024 * 1024
    result = run_untrusted(
        DRIVER_SOURCE.read_text(), timeout_s=timeout_s, memory_mb=memory_mb, files={"task.json": json.dumps(task)},
        # evalplus's guard lowers RLIMIT_AS to this; above our hard limit its setrlimit would fail (scored timeout)
        extra_env={"EVALPLUS_MAX_MEMORY_BYTES": str(memory_bytes), "HF_HUB_OFFLINE": "1",
                   "HF_DATASETS_OFFLINE": "1"},
        max_output_bytes=4_000_000,
    )
    verdict = None
    for line in reversed(result.stdout.splitlines()):
        if line.startswith(nonce + " "):
            try:
                verdict = json.loads(line[len(nonce) + 1:])
            except json.JSONDecodeError:
                verdict = None
            break
    if not isinstance(verdict, dict):
        return {"passed": False, "base_status": None, "plus_status": None, "sandbox_status": result.status,
                "message": f"no verdict (sandbox {result.status}): {result.stderr[-500:]}"}
    passed = verdict.get("base_status") == verdict.get("plus_status") == "pass"
    return {"passed": passed, "base_status": verdict.get("base_status"), "plus_status": verdict.get("plus_status"),
            "message": "passed" if passed else "failed", "sandbox_status": result.status}
