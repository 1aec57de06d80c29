"""The sandbox's ordinary behaviour: exit status, stdin/stdout, minimal environment, limits, argument checks."""
import sys

import pytest

if not sys.platform.startswith("linux"):
    pytest.skip("the sandbox needs Linux", allow_module_level=True)

from mgrpo.evaluation.sandbox import SandboxResult, run_untrusted  # noqa: E402


def test_exit_zero_is_ok_and_stdout_is_captured():
    result = run_untrusted("print(6 * 7)")
    assert isinstance(result, SandboxResult)
    assert (result.status, result.returncode, result.stdout) == ("ok", 0, "42\n")


def test_stdin_reaches_the_program_and_nonzero_exit_is_an_error():
    result = run_untrusted("import sys\ndata = sys.stdin.read()\nprint(data[::-1])\nsys.exit(3)", stdin="abc")
    assert result.stdout == "cba\n"
    assert (result.status, result.returncode) == ("error", 3)


def test_exception_is_an_error_with_the_traceback_on_stderr():
    result = run_untrusted("raise KeyError('boom')")
    assert result.status == "error" and result.returncode == 1
    assert "KeyError: 'boom'" in result.stderr


def test_python_runs_isolated_in_a_fresh_working_directory():
    result = run_untrusted("import os, sys\nprint(sys.flags.isolated, os.listdir('.'))")
    assert result.stdout.strip() == "1 ['main.py']"


def test_environment_is_minimal(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "parent-secret")
    result = run_untrusted("import os\nprint(sorted(os.environ))")
    names = eval(result.stdout)  # a list literal of names printed by our own program
    assert "AWS_SECRET_ACCESS_KEY" not in names
    assert set(names) <= {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                          "MKL_NUM_THREADS"}


def test_files_are_placed_in_the_working_directory():
    result = run_untrusted("print(open('data.txt').read())", files={"data.txt": "hello"})
    assert result.stdout == "hello\n"


def test_file_names_must_be_plain():
    with pytest.raises(ValueError, match="plain names"):
        run_untrusted("pass", files={"../escape.txt": "x"})


def test_timeout_must_be_positive():
    with pytest.raises(ValueError, match="timeout_s"):
        run_untrusted("pass", timeout_s=0)


def test_cpu_limit_below_the_wall_limit_is_reported_as_timeout():
    result = run_untrusted("while True: pass", timeout_s=10, cpu_s=1)
    assert result.status == "timeout"
    assert result.wall_s < 5  # the CPU limit (1 s) ended it, not the 10 s wall clock


def test_output_over_the_cap_is_an_error_and_truncated():
    result = run_untrusted("print('x' * 5000)", max_output_bytes=1000)
    assert result.status == "error" and result.output_truncated
    assert len(result.stdout) <= 1000


def test_fallback_without_namespaces_still_kills_leftovers_and_times_out():
    import time

    daemon = ("import os, sys\nif os.fork() == 0:\n    os.setsid()\n    pid = os.fork()\n    if pid == 0:\n"
              "        while True:\n            pass\n    print(pid, flush=True)\n    os._exit(0)\nos.wait()\n")
    result = run_untrusted(daemon, namespaces=False)
    assert result.status == "ok" and "pid-namespace" not in result.isolation
    grandchild = int(result.stdout.split()[0])
    time.sleep(0.2)
    assert not _alive(grandchild), "the double-forked busy child survived the run"
    assert run_untrusted("while True: pass", timeout_s=1, namespaces=False).status == "timeout"


def _alive(pid):
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
