"""MBPP+ through evalplus 0.3.1, every candidate checked inside our sandbox.

evalplus traps (verified in evalplus 0.3.1's source, site-packages/evalplus):
- `evalplus/data/mbpp.py` reads `MBPP_OVERRIDE_PATH` from the environment AT IMPORT TIME; without it
  `get_mbpp_plus` downloads the dataset from GitHub. We set the variable and the module attribute to our local file.
- `evalplus/eval/__init__.py::untrusted_check` computes `min(os.getenv("EVALPLUS_TIMEOUT_PER_TASK", 60), ...)`: a set
  variable is a str, `min(str, float)` raises TypeError in a worker, and `evaluate()`'s non-daemon "stucking checker"
  thread then loops forever: the run hangs. We never set it (and drop it from the sandbox environment).
- `evalplus/evaluate.py::evaluate` silently reuses an existing `<samples>_eval_results.json`, and `get_groundtruth`
  loads a cached pickle `~/.cache/evalplus/<md5>.pkl`. We do not call `evaluate()`; a sandboxed driver calls
  `get_groundtruth` with HOME set to the run's fresh, empty work dir.
- its `reliability_guard` is "NOT a security sandbox": each candidate runs in its own `run_untrusted` sandbox.
- its `unsafe_execute` compares `out == exp` IN the candidate's process: a returned object whose __eq__ says True,
  or code that walks the stack to the result variables, passes. So the grading is split (see `score_solution`):
  the sandbox only runs code and reports plain-data outputs (plain_data.py); the comparison runs here, on the host,
  against expected outputs the candidate's process never had.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
from pathlib import Path

from mgrpo.evaluation.code import plain_data
from mgrpo.evaluation.sandbox import run_untrusted
from mgrpo.jsonl import DataError, iter_jsonl

REQUIRED_FIELDS = ("task_id", "prompt", "canonical_solution", "entry_point", "base_input", "plus_input", "atol")
INSTRUCTION_PREFIX = ("Please provide a self-contained Python script that solves the following problem in a "
                      "markdown code block:")  # evalplus codegen's instruction for chat models
DRIVER_SOURCE = Path(__file__).with_name("_mbpp_driver.py")
SUPERVISOR_SOURCE = Path(__file__).with_name("_supervisor.py")
MAX_REPORT_BYTES = 64_000_000  # the canonical solution's outputs of all base and plus inputs, as plain-data JSON
# A candidate's report: this floor plus 8x the size of the expected outputs' JSON (as LiveCodeBench sizes its
# output limit), never above MAX_REPORT_BYTES: a right answer fits, a flood of values does not reach the host.
CANDIDATE_REPORT_FLOOR_BYTES = 4_000_000
PHASES = ("base", "plus")
# The candidate's sandbox gets no more wall time than evalplus gives the phases it runs: per phase
# min(PHASE_TIMEOUT_CAP_S, sum of its per-input limits) + PHASE_GRACE_S (as _mbpp_driver.run_phase's deadline), plus
# STARTUP_ALLOWANCE_S for the interpreter, evalplus's import and the inputs' deserialisation (measured: ~1.5 s for a
# whole candidate run of a trivial solution on an idle 2-core machine; the allowance leaves room for a loaded one).
# The per-input limits and phase budgets are enforced by the driver's supervisor process, outside the candidate's
# worker (_supervisor.py; forking the workers adds ~0.1 s to a run); this bound is the outer one, should the
# supervisor itself be stopped (a worker can SIGSTOP it: same uid).
PHASE_TIMEOUT_CAP_S = 60
PHASE_GRACE_S = 2
STARTUP_ALLOWANCE_S = 5.0


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


def _run_driver(task: dict, timeout_s: float, memory_mb: int, max_report_bytes: int = MAX_REPORT_BYTES):
    """Run _mbpp_driver.py (after plain_data.py's and _supervisor.py's sources) on `task` in a fresh sandbox:
    (result, nonce)."""
    nonce = secrets.token_hex(16)
    program = "\n\n".join(source.read_text() for source in (Path(plain_data.__file__), SUPERVISOR_SOURCE,
                                                              DRIVER_SOURCE))
    result = run_untrusted(
        program, timeout_s=timeout_s, memory_mb=memory_mb, files={"task.json": json.dumps({**task, "nonce": nonce})},
        # evalplus's guard lowers RLIMIT_AS to this; above our hard limit its setrlimit would fail (scored timeout)
        extra_env={"EVALPLUS_MAX_MEMORY_BYTES": str(memory_mb * 1024 * 1024), "HF_HUB_OFFLINE": "1",
                   "HF_DATASETS_OFFLINE": "1"},
        max_output_bytes=max_report_bytes,
    )
    return result, nonce


class GroundTruthError(RuntimeError):
    """The canonical solution's outputs could not be computed (or are not plain data)."""


_ground_truth: dict[str, dict] = {}
_ground_truth_locks: dict[str, threading.Lock] = {}
_ground_truth_guard = threading.Lock()


def ground_truth(problem: dict, timeout_s: float = 150.0, memory_mb: int = 4096) -> dict:
    """Per phase: deserialised `inputs`, expected `outputs` and reference `times` of the canonical solution.

    evalplus's `get_groundtruth` runs in a sandbox of its own, never in a candidate's (there the candidate could read
    the outputs or call the canonical solution). Computed once per problem content in this process; samples of one
    problem scored in parallel threads wait for the first. A failure is not cached."""
    key = hashlib.sha256(json.dumps(problem, sort_keys=True).encode()).hexdigest()
    with _ground_truth_guard:
        lock = _ground_truth_locks.setdefault(key, threading.Lock())
    with lock:
        if key not in _ground_truth:
            _ground_truth[key] = _compute_ground_truth(problem, timeout_s, memory_mb)
        return _ground_truth[key]


def _compute_ground_truth(problem: dict, timeout_s: float, memory_mb: int) -> dict:
    from evalplus.data.mbpp import mbpp_deserialize_inputs

    result, nonce = _run_driver({"mode": "groundtruth", "problem": problem}, timeout_s, memory_mb)
    if result.status != "ok":
        raise GroundTruthError(f"canonical solution: sandbox {result.status}: {result.stderr[-500:]}")
    try:
        report = plain_data.read_report(result.stdout, nonce)
        truth = {}
        for phase in PHASES:
            inputs = mbpp_deserialize_inputs(problem["task_id"], problem[phase + "_input"])
            part = report[phase]
            outputs, times = part["outputs"], part["times"]
            if not (isinstance(outputs, list) and isinstance(times, list) and len(outputs) == len(times) == len(inputs)
                    and all(type(t) in (int, float) and 0 <= t < 1e6 for t in times)):
                raise plain_data.MalformedData(f"{phase}: outputs and times must match the inputs")
            output_bytes = len(json.dumps(outputs))
            outputs = [plain_data.decode(value) for value in outputs]
            if any(isinstance(value, plain_data.Unserialisable) for value in outputs):
                raise plain_data.MalformedData(f"{phase}: an expected output is not plain data")
            truth[phase] = {"inputs": inputs, "outputs": outputs, "times": times, "output_bytes": output_bytes}
    except (plain_data.MalformedData, KeyError, TypeError) as error:
        raise GroundTruthError(f"canonical solution: bad report: {error!r}"[:500]) from None
    return truth


def score_solution(problem: dict, solution: str, timeout_s: float = 150.0, memory_mb: int = 4096,
                   min_time_limit: float | None = None, gt_time_limit_factor: float | None = None) -> dict:
    """Run one solution on the base and plus inputs in a sandbox, then compare on the host as evalplus does.

    The sandbox gets the inputs, per-input time limits (evalplus's max(min_time_limit, factor x reference time))
    and the solution; never the canonical solution or an expected output. It reports the outputs as plain data,
    and a verdict is read only from a run whose status is "ok" (a killed or crashed run proves nothing, whatever it
    printed). Passes when base and plus both pass."""
    from evalplus.config import DEFAULT_GT_TIME_LIMIT_FACTOR, DEFAULT_MIN_TIME_LIMIT

    def failed(message, sandbox_status=None, base=None, plus=None):
        return {"passed": False, "base_status": base, "plus_status": plus, "message": message,
                "sandbox_status": sandbox_status}

    if not solution.strip():
        return failed("no code extracted")
    min_time_limit = DEFAULT_MIN_TIME_LIMIT if min_time_limit is None else min_time_limit
    factor = DEFAULT_GT_TIME_LIMIT_FACTOR if gt_time_limit_factor is None else gt_time_limit_factor
    truth = ground_truth(problem, timeout_s, memory_mb)  # GroundTruthError: nothing to grade against, not a fail
    task = {"mode": "candidate", "task_id": problem["task_id"], "entry_point": problem["entry_point"],
            "base_input": problem["base_input"], "plus_input": problem["plus_input"], "solution": solution,
            "time_limits": {phase: [max(min_time_limit, factor * t) for t in truth[phase]["times"]]
                            for phase in PHASES}}
    report_bytes = candidate_report_bytes(truth)
    task["max_reply_bytes"] = report_bytes  # one output over the whole report's limit stops the phase (an error)
    wall_s = min(timeout_s, candidate_wall_budget(task["time_limits"]))
    result, nonce = _run_driver(task, wall_s, memory_mb, report_bytes)
    if result.status == "timeout":
        return failed(f"sandbox timeout: the run took longer than the phases' time budgets ({wall_s:.1f} s)",
                      result.status)
    if result.status != "ok":
        return failed(f"sandbox {result.status}: {result.stderr[-500:]}", result.status)
    try:
        report = plain_data.read_report(result.stdout, nonce)
        statuses, notes = {}, []
        for phase in PHASES:
            outputs, stop = _phase_report(report, phase, len(truth[phase]["inputs"]))
            statuses[phase] = evalplus_phase_status(problem["entry_point"], problem["atol"], truth[phase]["inputs"],
                                                    truth[phase]["outputs"], outputs, stop)
            if stop is not None:
                notes.append(f"{phase} stopped: {stop[1]}")
    except plain_data.MalformedData as error:
        return failed(f"malformed report: {error}", result.status)
    passed = statuses["base"] == statuses["plus"] == "pass"
    return {"passed": passed, "base_status": statuses["base"], "plus_status": statuses["plus"],
            "message": "passed" if passed else "; ".join(["failed"] + notes), "sandbox_status": result.status}


def candidate_wall_budget(time_limits: dict) -> float:
    """The candidate sandbox's wall timeout: the phases' evalplus budgets plus the start-up allowance."""
    return STARTUP_ALLOWANCE_S + sum(min(PHASE_TIMEOUT_CAP_S, sum(limits)) + PHASE_GRACE_S
                                     for limits in time_limits.values())


def candidate_report_bytes(truth: dict) -> int:
    """The most output a candidate's run may write: sized from the expected outputs (see CANDIDATE_REPORT_FLOOR_BYTES)."""
    expected = sum(truth[phase]["output_bytes"] for phase in PHASES)
    return min(MAX_REPORT_BYTES, CANDIDATE_REPORT_FLOOR_BYTES + 8 * expected)


def _phase_report(report: dict, phase: str, n_inputs: int) -> tuple[list, list | None]:
    """The decoded outputs and the stop reason ([kind, message] or None) of one phase; MalformedData if invalid."""
    part = report.get(phase)
    if not isinstance(part, dict) or not isinstance(part.get("outputs"), list):
        raise plain_data.MalformedData(f"{phase}: no outputs")
    outputs, stop = part["outputs"], part.get("stop")
    if stop is None:
        if len(outputs) != n_inputs:
            raise plain_data.MalformedData(f"{phase}: {len(outputs)} outputs for {n_inputs} inputs")
    elif not (isinstance(stop, list) and len(stop) == 2 and stop[0] in ("error", "test_timeout", "phase_timeout")
              and isinstance(stop[1], str) and len(outputs) < n_inputs):
        raise plain_data.MalformedData(f"{phase}: bad stop {stop!r}"[:300])
    return [plain_data.decode(value) for value in outputs], stop


def evalplus_phase_status(entry_point: str, atol: float, inputs: list, expected: list, outputs: list,
                          stop: list | None) -> str:
    """evalplus 0.3.1's verdict for one phase (`unsafe_execute` + `untrusted_check`, dataset "mbpp",
    fast_check=True), evaluated here on plain-data outputs instead of inside the candidate's process.

    evalplus has no importable function for this check (it is inline in `unsafe_execute`), so its loop is
    restated here line for line, importing its helpers (`is_floats`, the special oracles and task lists) rather
    than copying them. Outputs come in input order; the first mismatch fails the phase, as fast_check does. When
    all reported outputs match, the phase's stop reason decides: an exception or a per-input timeout is evalplus's
    "fail" (its fast_check re-raises both), the whole-phase budget running out is its "timeout"."""
    import numpy as np
    from evalplus.eval import FAIL, PASS, TIMEOUT, is_floats
    from evalplus.eval._special_oracle import (MBPP_OUTPUT_NOT_NONE_TASKS, MBPP_OUTPUT_SET_EQ_TASKS,
                                               _digit_distance_nums, _surface_Area)

    for inp, exp, out in zip(inputs, expected, outputs):
        try:
            exact_match = out == exp
            # ============== special oracles (dataset "mbpp"), as in unsafe_execute ==============
            if "are_equivalent" == entry_point:  # Mbpp/164 special oracle
                exact_match = exact_match or True
            elif "sum_div" == entry_point:  # Mbpp/295 special oracle
                exact_match = exact_match or out == 0
            elif "surface_Area" == entry_point:  # Mbpp/581 special oracle
                exact_match = exact_match or abs(out - _surface_Area(*inp)) <= atol
            elif "digit_distance_nums" == entry_point:  # Mbpp/558 special oracle
                exact_match = exact_match or out == _digit_distance_nums(*inp)
            elif entry_point in MBPP_OUTPUT_SET_EQ_TASKS:
                plain_data.check_hash_spread(out)  # the set is built here, on the host: no hash flooding
                exact_match = set(out) == set(exp)
            elif entry_point in MBPP_OUTPUT_NOT_NONE_TASKS:
                # exp is True if not None, False if None (an unserialisable output is not None)
                if isinstance(out, bool):
                    exact_match = out == exp
                else:
                    exact_match = exp == (out is not None)
            if atol == 0 and is_floats(exp):
                atol = 1e-6  # enforce atol for float comparison (evalplus keeps it for the phase's later inputs)
            if not exact_match and atol != 0:
                assert type(out) == type(exp)
                if isinstance(exp, (list, tuple)):
                    assert len(out) == len(exp)
                assert np.allclose(out, exp, rtol=1e-07, atol=atol)
            else:
                assert exact_match
        except Exception:  # noqa: BLE001 - as evalplus: any failure of the check is a failed test
            return FAIL
    if stop is not None:
        return TIMEOUT if stop[0] == "phase_timeout" else FAIL
    return PASS
