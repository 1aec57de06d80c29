"""MBPP+ driver. Runs INSIDE the sandbox, after plain_data.py's source (prepended): it only RUNS code and reports
what it returned; it never sees an expected output and never judges one (the host does, in mbpp_plus.py).

Input: `task.json` in the cwd, removed before any solution code runs. Two modes, each in its own sandbox:
- "groundtruth": evalplus's `get_groundtruth` runs the canonical solution on the base and plus inputs (HOME is
  this run's fresh work dir, so evalplus's pickle cache is empty); reports its outputs and reference times.
- "candidate": the candidate's code in supervised worker processes (_supervisor.py, prepended before this file):
  one per phase, base then plus (a fresh process and exec for each, as evalplus runs them), forked before the task
  is read, each under evalplus's `reliability_guard` and `swallow_io`. This process never runs candidate code: it
  sends the code when the phase's clock starts and each input only when that input's clock starts, and times the
  reply itself (evalplus's per-input limit and whole-phase budget); a worker past its deadline is SIGKILLed. A phase
  stops at the first exception or timeout, or when the phase budget is spent; a wrong answer cannot be known here,
  so every other input is run. When a phase ends, `sweep` kills every process left of it (a background process the
  candidate forked) before the next phase starts; one that survives the sweep fails the run (no report).
  Reports the outputs and why a phase stopped.
Output: one line `<nonce> <json>` on stdout, written by this process only (a worker's fds 1 and 2 are /dev/null,
and it never holds the nonce). What a worker replies only claims outputs, which the host checks against expected
outputs that never entered the sandbox.
"""
import json
import os
import time

PHASES = ("base", "plus")
# Outputs of a set-equality task that are reported as they are (plain data, or a subclass of it, for `encode`); any
# other output is an iterable whose items evalplus's set(out) takes, and is reported as their list.
SET_EQ_AS_IS = (str, bytes, list, tuple, set, frozenset, dict)

# evalplus untrusted_check: min(EVALPLUS_TIMEOUT_PER_TASK=60, sum(time_limits)) + 1 (+1 join). Enforced here, outside
# the candidate's process; the host also bounds the whole sandbox's wall time by the same budgets
# (mbpp_plus.candidate_wall_budget, which must use these two numbers) as an outer bound.
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


def candidate_worker(receive, reply):
    """A worker's life (forked before the task was read): evalplus's guard, then load the code when told and call
    it on each input it is sent, under evalplus's `swallow_io`; each reply is the plain-data output or the error."""
    from evalplus.eval import query_maximum_memory_bytes
    from evalplus.eval._special_oracle import MBPP_OUTPUT_SET_EQ_TASKS
    from evalplus.eval.utils import reliability_guard, swallow_io

    reliability_guard(maximum_memory_bytes=query_maximum_memory_bytes())  # evalplus's guard: candidates see it
    fn, set_eq = None, False
    while True:
        message = receive()
        if message is None:
            return
        try:
            with swallow_io():
                if message["op"] == "load":
                    namespace = {}
                    exec(message["code"], namespace)
                    fn = namespace[message["entry_point"]]
                    set_eq = message["entry_point"] in MBPP_OUTPUT_SET_EQ_TASKS
                    value = True
                else:
                    value = fn(*message["args"])
                    if set_eq and not isinstance(value, SET_EQ_AS_IS):
                        # evalplus grades these tasks by set(out): any iterable (a generator, map, filter, dict
                        # view) passes there. Its items are taken here, on the call's clock (a non-iterable raises,
                        # as set(out) does in evalplus: a failed test); the host builds the set.
                        value = list(value)
                    value = encode(value)
        except BaseException as error:  # noqa: BLE001 - evalplus counts any exception as a failed test
            reply(message, "error", describe_error(error))
            continue
        reply(message, "ok", value)


def run_phase(worker, code, entry_point, inputs, time_limits, max_reply_bytes):
    """The candidate on each input, as evalplus's unsafe_execute calls it (fast_check), in `worker`, timed HERE:
    outputs (plain-data JSON, as the worker encoded them) and a stop reason. The code is sent when the phase's
    clock starts (loading counts against it), each input when its own clock starts."""
    deadline = time.monotonic() + min(PHASE_TIMEOUT_CAP_S, sum(time_limits)) + PHASE_GRACE_S
    outputs = []
    try:
        kind, value = worker.call({"op": "load", "code": code, "entry_point": entry_point},
                                  deadline - time.monotonic(), max_reply_bytes)
        if kind == "timeout":
            return outputs, ["phase_timeout", "loading the code took too long"]
        if kind != "ok":
            return outputs, ["error", f"loading the code: {value}"[:500]]
        for i, args in enumerate(inputs):
            left = deadline - time.monotonic()
            if left <= 0:
                return outputs, ["phase_timeout", f"phase budget spent before input {i}"]
            kind, value = worker.call({"op": "call", "args": args}, min(time_limits[i], left), max_reply_bytes)
            if kind == "timeout":
                reason = "test_timeout" if time_limits[i] <= left else "phase_timeout"
                return outputs, [reason, f"input {i}: time limit"]
            if kind != "ok":
                return outputs, ["error", f"input {i}: {value}"[:500]]
            outputs.append(value)
        return outputs, None
    finally:
        worker.kill()  # a fresh process per phase, as evalplus runs them


def candidate(task, workers, write):
    from evalplus.data.mbpp import mbpp_deserialize_inputs

    task_id = task["task_id"]
    phases = {phase: mbpp_deserialize_inputs(task_id, task[phase + "_input"]) for phase in PHASES}
    limits, code, entry_point = task["time_limits"], task["solution"], task["entry_point"]
    max_reply_bytes = task.get("max_reply_bytes", DEFAULT_MAX_REPLY_BYTES)
    report = {}
    for phase, inputs in phases.items():
        outputs, stop = run_phase(workers[phase], code, entry_point, inputs, limits[phase], max_reply_bytes)
        report[phase] = {"outputs": outputs, "stop": stop}
        # the phase's worker is dead: nothing it started may run on into the next phase (or past the report)
        sweep(keep=[workers[later] for later in PHASES[PHASES.index(phase) + 1:]])
    write(report)


def main():
    make_undumpable()  # before anything else: no process of ours can read this one's memory or fds via /proc
    become_subreaper()  # before the first fork: every process the candidate starts stays in this one's tree (sweep)
    import evalplus.eval.utils  # noqa: F401 - imported once here, before the fork, rather than in each worker
    from evalplus.eval import query_maximum_memory_bytes  # noqa: F401

    # the workers are forked before the task is read: they never hold an input, the nonce or the code
    workers = {phase: fork_worker(candidate_worker) for phase in PHASES}
    with open("task.json") as handle:
        task = json.load(handle)
    os.remove("task.json")
    nonce = task.pop("nonce")
    out_fd, dumps = os.dup(1), json.dumps

    def write(report):
        data = ("\n" + nonce + " " + dumps(report) + "\n").encode()
        while data:  # a pipe may take a large write in parts
            data = data[os.write(out_fd, data):]

    try:
        if task.pop("mode") == "groundtruth":
            for worker in workers.values():
                worker.kill()  # no candidate here
            task["nonce"] = nonce  # names evalplus's cache file only
            groundtruth(task, write)
        else:
            candidate(task, workers, write)
    finally:
        for worker in workers.values():
            worker.kill()


if __name__ == "__main__":
    main()
