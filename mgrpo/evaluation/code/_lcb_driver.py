"""LiveCodeBench test driver. Runs INSIDE the sandbox after plain_data.py's and _supervisor.py's sources (prepended;
standard library only): it RUNS one candidate on every test input and reports what it produced. It never sees an
expected output: the host (livecodebench.py) compares, so nothing the candidate does can change a comparison.

It runs code the way LiveCodeBench's lcb_runner/evaluation/testing_util.py does (re-implemented, not copied):
- stdin problems: drop a trailing `if __name__ == '__main__':` guard, wrap the module's statements in a function,
  run it per test with stdin replaced by the test input; the captured stdout (a string) is the test's output;
- call-based problems: prepend the common-imports prelude, instantiate `Solution` when the code defines it, call
  the method named by `fn_name` with the JSON-decoded input lines; a tuple result becomes a list (lcb_runner); the
  result is reported as plain data (a custom object is reported "unserialisable", a wrong answer on the host);
- a per-test time limit (the compile step gets the same limit); the run stops at the first timeout (-3) or
  exception (-4). A wrong answer cannot be known here, so the other tests all run.
The candidate runs in ONE supervised worker process (_supervisor.py), forked before the task is read; this process
never runs candidate code: it sends the code, then each test input only when that test's clock starts, and times
the reply itself (a worker past the limit is SIGKILLed: -3; the compile step past it: -4, as an exception there).
Input: `task.json` in the cwd (code, fn_name, inputs, time limit, nonce, reply size limit). Output: one line
`<nonce> <json>` on stdout, written by this process only: {"outputs": [...], "stop": null | [-3 | -4, message]}.
Anything the candidate prints (a call-based solution's debug prints, stderr, a child's output) goes to /dev/null
(the worker's fds 1 and 2), as lcb_runner ignores it: otherwise it would count against the sandbox's output cap and
a correct solution that prints a lot would be killed.
"""
import ast
import io
import json
import os
import sys

PRELUDE = "\n".join(
    [f"from {m} import *" for m in ("string", "re", "datetime", "collections", "heapq", "bisect", "copy", "math",
                                     "random", "statistics", "itertools", "functools", "operator", "io", "sys",
                                     "json", "builtins", "typing")]
    + [f"import {m}" for m in ("string", "re", "datetime", "collections", "heapq", "bisect", "copy", "math",
                               "random", "statistics", "itertools", "functools", "operator", "io", "sys", "json")]
    + ["sys.setrecursionlimit(50000)", ""]
)


def strip_main_guard(code):
    try:
        tree = ast.parse(code)
        last = tree.body[-1]
        if isinstance(last, ast.If) and ast.unparse(last.test).strip() == "__name__ == '__main__'":
            return ast.unparse(tree.body[:-1]) + "\n" + ast.unparse(last.body)
    except Exception:
        pass
    return code


def wrap_in_function(code):
    try:
        tree = ast.parse(code)
        imports = [s for s in tree.body if isinstance(s, (ast.Import, ast.ImportFrom))]
        body = [s for s in tree.body if not isinstance(s, (ast.Import, ast.ImportFrom))] or [ast.Pass()]
        function = ast.FunctionDef(name="wrapped_function", args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[],
                                   kw_defaults=[], defaults=[]), body=body, decorator_list=[], lineno=1)
        return PRELUDE + "\n" + ast.unparse(imports) + "\n" + ast.unparse(function)
    except Exception:
        return code


def run_with_stdin(function, text):
    # What lcb_runner's call_method gives the program: `sys.stdin` is a plain StringIO of the input. Its stacked
    # @patch decorators also name sys.stdin.readline / readlines / read, but mock enters stacked patches bottom-up,
    # so those three land on the process's own stdin before sys.stdin is swapped, not on the StringIO: readline
    # keeps its newline and returns "" at the end, read() and readlines() give what is left.
    fake_stdin = io.StringIO(text)
    import builtins

    real_stdin, real_stdout, real_open = sys.stdin, sys.stdout, builtins.open
    captured = io.StringIO()
    sys.stdin, sys.stdout = fake_stdin, captured
    builtins.open = lambda *args, **kwargs: io.StringIO(text)  # LCB serves the input to open() too
    try:
        function()
    except SystemExit:
        pass
    finally:
        sys.stdin, sys.stdout, builtins.open = real_stdin, real_stdout, real_open
    return captured.getvalue()


def load(code, fn_name):
    """lcb_runner's compile step (in the worker): the function to call per test, or None without one."""
    namespace = {"__name__": "tmp_sol"}
    if fn_name is None:
        exec(wrap_in_function(strip_main_guard(code)), namespace)
        return namespace.get("wrapped_function")
    code = PRELUDE + "\n\n" + code
    exec(code, namespace)
    holder = namespace["Solution"]() if "class Solution" in code else None
    return getattr(holder, fn_name) if holder is not None else namespace.get(fn_name)


def run_one(method, fn_name, test_input):
    """One test, as lcb_runner runs it (in the worker): a stdin program's captured stdout, or a call's result."""
    if fn_name is None:
        return run_with_stdin(method, test_input)
    args = [json.loads(line) for line in test_input.split("\n")]
    prediction = method(*args)
    if isinstance(prediction, tuple):
        prediction = list(prediction)
    return encode(prediction)


def candidate_worker(receive, reply):
    """The worker (forked before the task was read): load the code when told, then run each test it is sent."""
    sys.stdout = sys.stderr = open(os.devnull, "w")  # fds 1 and 2 are /dev/null already (_supervisor)
    method = fn_name = None
    while True:
        message = receive()
        if message is None:
            return
        try:
            if message["op"] == "load":
                fn_name = message["fn_name"]
                method = load(message["code"], fn_name)
                value = method is not None
            else:
                value = run_one(method, fn_name, message["input"])
        except BaseException as error:  # noqa: BLE001 - lcb_runner: an exception fails the test (-4)
            reply(message, "error", describe_error(error))
            continue
        reply(message, "ok", value)


def run_tests(worker, task):
    """The worker on each test, timed HERE: outputs and a stop reason. The code is sent with the compile limit,
    each test input only when its own clock starts."""
    limit = float(task["timeout_s"])
    max_reply_bytes = task.get("max_reply_bytes", DEFAULT_MAX_REPLY_BYTES)
    outputs = []
    kind, value = worker.call({"op": "load", "code": task["code"], "fn_name": task["fn_name"]}, limit,
                              max_reply_bytes)
    if kind == "timeout":
        return outputs, [-4, "compile error: time limit exceeded"]
    if kind != "ok":
        return outputs, [-4, f"compile error: {value}"[:500]]
    if value is not True:
        return outputs, [-4, "entry point not found"]
    for test_input in task["inputs"]:
        kind, value = worker.call({"op": "call", "input": test_input}, limit, max_reply_bytes)
        if kind == "timeout":
            return outputs, [-3, "time limit exceeded"]
        if kind != "ok":
            return outputs, [-4, f"runtime error: {value}"[:500]]
        outputs.append(value)
    return outputs, None


def main():
    make_undumpable()  # before anything else: no process of ours can read this one's memory or fds via /proc
    become_subreaper()  # before the first fork: every process the candidate starts stays in this one's tree (sweep)
    worker = fork_worker(candidate_worker)  # before the task is read: it never holds an input or the nonce
    try:
        with open("task.json") as handle:
            task = json.load(handle)
        os.remove("task.json")
        nonce = task.pop("nonce")
        outputs, stop = run_tests(worker, task)
    finally:
        worker.kill()
    sweep()  # nothing the candidate started runs on past its tests (one that survives: no report, the run fails)
    sys.stdout.write("\n" + nonce + " " + json.dumps({"outputs": outputs, "stop": stop}) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
