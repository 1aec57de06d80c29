"""MBPP+ driver. Runs INSIDE the sandbox, after plain_data.py's source (prepended): it only RUNS code and reports
what it returned; it never sees an expected output and never judges one (the host does, in mbpp_plus.py).

Input: `task.json` in the cwd, removed before any solution code runs. Two modes, each in its own sandbox:
- "groundtruth": evalplus's `get_groundtruth` runs the canonical solution on the base and plus inputs (HOME is
  this run's fresh work dir, so evalplus's pickle cache is empty); reports its outputs and reference times.
- "candidate": the candidate's code under evalplus's `reliability_guard` and `swallow_io`, base then plus (a fresh
  exec for each, as evalplus runs them in separate processes), each call under evalplus's `time_limit`. A phase
  stops at the first exception or timeout, or when evalplus's whole-phase budget is spent; a wrong answer cannot be
  known here, so every other input is run. Reports the outputs and why a phase stopped.
Output: one line `<nonce> <json>` on stdout. The candidate runs in this process and can write such a line itself;
that only lets it claim outputs, which the host checks against expected outputs it never had.
"""
import json
import os
import time

# evalplus untrusted_check: min(EVALPLUS_TIMEOUT_PER_TASK=60, sum(time_limits)) + 1 (+1 join). These timers run in
# the candidate's process, which can cancel them: the host also bounds the whole sandbox's wall time by the same
# budgets (mbpp_plus.candidate_wall_budget, which must use these two numbers).
PHASE_TIMEOUT_CAP_S = 60
PHASE_GRACE_S = 2


def groundtruth(task, write):
    from evalplus.data.mbpp import mbpp_deserialize_inputs
    from evalplus.eval._special_oracle import MBPP_OUTPUT_NOT_NONE_TASKS
    from evalplus.evaluate import get_groundtruth

    problem = task["problem"]
    task_id = problem["task_id"]
    for phase in ("base", "plus"):
        problem[phase + "_input"] = mbpp_deserialize_inputs(task_id, problem[phase + "_input"])
    expected = get_groundtruth({task_id: problem}, "mgrpo-" + task["nonce"], MBPP_OUTPUT_NOT_NONE_TASKS)[task_id]
    write({phase: {"outputs": [encode(value) for value in expected[phase]], "times": expected[phase + "_time"]}
           for phase in ("base", "plus")})


def run_phase(code, entry_point, inputs, time_limits, time_limit, swallow_io, TimeoutException):
    """The candidate on each input, as evalplus's unsafe_execute calls it (fast_check): outputs and a stop reason."""
    deadline = time.monotonic() + min(PHASE_TIMEOUT_CAP_S, sum(time_limits)) + PHASE_GRACE_S
    outputs = []
    try:
        with time_limit(max(deadline - time.monotonic(), 0.001)):  # loading the code counts against the phase
            with swallow_io():
                namespace = {}
                exec(code, namespace)
                fn = namespace[entry_point]
    except TimeoutException:
        return outputs, ["phase_timeout", "loading the code took too long"]
    except BaseException as error:  # noqa: BLE001 - a candidate that does not load fails the phase
        return outputs, ["error", f"loading the code: {error!r}"[:500]]
    for i, args in enumerate(inputs):
        left = deadline - time.monotonic()
        if left <= 0:
            return outputs, ["phase_timeout", f"phase budget spent before input {i}"]
        try:
            with time_limit(min(time_limits[i], left)):
                with swallow_io():
                    out = fn(*args)
        except TimeoutException:
            reason = "test_timeout" if time_limits[i] <= left else "phase_timeout"
            return outputs, [reason, f"input {i}: time limit"]
        except BaseException as error:  # noqa: BLE001 - evalplus counts any exception as a failed test
            return outputs, ["error", f"input {i}: {error!r}"[:500]]
        outputs.append(encode(out))
    return outputs, None


def candidate(task, write):
    from evalplus.data.mbpp import mbpp_deserialize_inputs
    from evalplus.eval import query_maximum_memory_bytes
    from evalplus.eval.utils import TimeoutException, reliability_guard, swallow_io, time_limit

    task_id = task["task_id"]
    phases = {phase: mbpp_deserialize_inputs(task_id, task[phase + "_input"]) for phase in ("base", "plus")}
    limits, code, entry_point = task["time_limits"], task["solution"], task["entry_point"]
    del task  # nothing else the candidate could read; the expected outputs were never here
    reliability_guard(maximum_memory_bytes=query_maximum_memory_bytes())  # evalplus's guard: candidates see it
    report = {}
    for phase, inputs in phases.items():
        outputs, stop = run_phase(code, entry_point, inputs, limits[phase], time_limit, swallow_io,
                                  TimeoutException)
        report[phase] = {"outputs": outputs, "stop": stop}
    write(report)


def main():
    with open("task.json") as handle:
        task = json.load(handle)
    os.remove("task.json")
    nonce = task.pop("nonce")
    out_fd, dumps = os.dup(1), json.dumps  # evalplus's guard removes several os functions: keep what we need

    def write(report):
        data = ("\n" + nonce + " " + dumps(report) + "\n").encode()
        while data:  # a pipe may take a large write in parts
            data = data[os.write(out_fd, data):]

    if task.pop("mode") == "groundtruth":
        task["nonce"] = nonce  # names evalplus's cache file only
        groundtruth(task, write)
    else:
        candidate(task, write)


if __name__ == "__main__":
    main()
