"""LiveCodeBench test driver. Runs INSIDE the sandbox after plain_data.py's source (prepended; standard library
only): it RUNS one candidate on every test input and reports what it produced. It never sees an expected output:
the host (livecodebench.py) compares, so nothing the candidate does in this process can change a comparison.

It runs code the way LiveCodeBench's lcb_runner/evaluation/testing_util.py does (re-implemented, not copied):
- stdin problems: drop a trailing `if __name__ == '__main__':` guard, wrap the module's statements in a function,
  run it per test with stdin replaced by the test input; the captured stdout (a string) is the test's output;
- call-based problems: prepend the common-imports prelude, instantiate `Solution` when the code defines it, call
  the method named by `fn_name` with the JSON-decoded input lines; a tuple result becomes a list (lcb_runner); the
  result is reported as plain data (a custom object is reported "unserialisable", a wrong answer on the host);
- a per-test time limit; the run stops at the first timeout (-3) or exception (-4). A wrong answer cannot be known
  here, so the other tests all run (bounded by the same per-test limit and the sandbox's wall limit).
Input: `task.json` in the cwd (code, fn_name, inputs, time limit, nonce). Output: one line `<nonce> <json>` on
stdout: {"outputs": [...], "stop": null | [-3 | -4, message]}. Anything else the candidate prints (a call-based
solution's debug prints, stderr, a child's output) goes to /dev/null, as lcb_runner ignores it: otherwise it would
count against the sandbox's output cap and a correct solution that prints a lot would be killed.
"""
import ast
import io
import json
import os
import signal
import sys

PRELUDE = "\n".join(
    [f"from {m} import *" for m in ("string", "re", "datetime", "collections", "heapq", "bisect", "copy", "math",
                                     "random", "statistics", "itertools", "functools", "operator", "io", "sys",
                                     "json", "builtins", "typing")]
    + [f"import {m}" for m in ("string", "re", "datetime", "collections", "heapq", "bisect", "copy", "math",
                               "random", "statistics", "itertools", "functools", "operator", "io", "sys", "json")]
    + ["sys.setrecursionlimit(50000)", ""]
)


class TestTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise TestTimeout()


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
    lines = iter(text.split("\n"))
    fake_stdin = io.StringIO(text)
    fake_stdin.readline = lambda *args: next(lines)
    fake_stdin.readlines = lambda *args: text.split("\n")
    fake_stdin.read = lambda *args: text
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


def compile_module(code, limit):
    namespace = {"__name__": "tmp_sol"}
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        exec(code, namespace)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return namespace


def run_tests(task):
    limit = float(task["timeout_s"])
    code = task["code"]
    outputs = []
    try:
        if task["fn_name"] is None:
            namespace = compile_module(wrap_in_function(strip_main_guard(code)), limit)
            method = namespace.get("wrapped_function")
        else:
            code = PRELUDE + "\n\n" + code
            namespace = compile_module(code, limit)
            holder = namespace["Solution"]() if "class Solution" in code else None
            method = getattr(holder, task["fn_name"]) if holder is not None else namespace.get(task["fn_name"])
    except BaseException as error:  # noqa: BLE001 - a candidate that does not compile fails every test
        return outputs, [-4, f"compile error: {error!r}"[:500]]
    if method is None:
        return outputs, [-4, "entry point not found"]
    for test_input in task["inputs"]:
        signal.setitimer(signal.ITIMER_REAL, limit)
        try:
            if task["fn_name"] is None:
                output = run_with_stdin(method, test_input)
            else:
                args = [json.loads(line) for line in test_input.split("\n")]
                prediction = method(*args)
                if isinstance(prediction, tuple):
                    prediction = list(prediction)
            signal.setitimer(signal.ITIMER_REAL, 0)
        except TestTimeout:
            return outputs, [-3, "time limit exceeded"]
        except BaseException as error:  # noqa: BLE001
            signal.setitimer(signal.ITIMER_REAL, 0)
            return outputs, [-4, f"runtime error: {error!r}"[:500]]
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        outputs.append(output if task["fn_name"] is None else encode(prediction))
    return outputs, None


def main():
    with open("task.json") as handle:
        task = json.load(handle)
    os.remove("task.json")  # the candidate runs in this process; the file holds inputs only, no expected outputs
    nonce = task.pop("nonce")
    signal.signal(signal.SIGALRM, _alarm)
    out = os.fdopen(os.dup(1), "w")  # the report's channel; the candidate's own output goes nowhere
    sink = os.open(os.devnull, os.O_WRONLY)
    os.dup2(sink, 1)
    os.dup2(sink, 2)
    sys.stdout = sys.stderr = open(os.devnull, "w")
    main_pid = os.getpid()
    outputs, stop = run_tests(task)
    if os.getpid() != main_pid:  # a process the candidate forked came back here: it must not report
        os._exit(0)
    out.write("\n" + nonce + " " + json.dumps({"outputs": outputs, "stop": stop}) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
