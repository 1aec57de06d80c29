"""The sandbox's ordinary behaviour: exit status, stdin/stdout, minimal environment, limits, argument checks."""
import sys
from pathlib import Path

import pytest

if not sys.platform.startswith("linux"):
    pytest.skip("the sandbox needs Linux", allow_module_level=True)

import mgrpo.evaluation.sandbox as sandbox  # noqa: E402
from mgrpo.evaluation.sandbox import SandboxResult, SandboxSetupError, run_untrusted  # noqa: E402

needs_root = pytest.mark.skipif(sandbox.os.geteuid() != 0, reason="private uids and mount namespaces need root")


def test_exit_zero_is_ok_and_stdout_is_captured():
    result = run_untrusted("print(6 * 7)")
    assert isinstance(result, SandboxResult)
    assert (result.status, result.returncode, result.stdout) == ("ok", 0, "42\n")


def test_stdin_reaches_the_program_and_nonzero_exit_is_an_error():
    result = run_untrusted("import sys\ndata = sys.stdin.read()\nprint(data[::-1])\nsys.exit(3)", stdin="abc")
    assert result.stdout == "cba\n"
    assert (result.status, result.returncode) == ("error", 3)


def test_stdin_is_a_read_only_pipe():
    program = ("import os, stat, sys\n"
               "try:\n    os.write(0, b'x')\n    print('wrote')\nexcept OSError as e:\n    print('refused', e.errno)\n"
               "print(stat.S_ISFIFO(os.fstat(0).st_mode), len(sys.stdin.read()))\n")
    result = run_untrusted(program, stdin="y" * 3_000_000)  # more than a pipe holds: fed while the program reads
    assert result.status == "ok", result.stderr
    assert result.stdout.split("\n")[:2] == ["refused 9", "True 3000000"], result.stdout
    # a program that never reads its large stdin still ends at once
    quick = run_untrusted("print('done')", stdin="z" * 3_000_000)
    assert quick.stdout == "done\n" and quick.wall_s < 5


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


def test_a_sandbox_that_cannot_be_set_up_stops_the_caller_instead_of_failing_the_program():
    # required namespaces that are not there: nothing ran, so there is no verdict to give the candidate
    with pytest.raises(SandboxSetupError, match="namespaces required"):
        run_untrusted("print(1)", require_namespaces=True, namespaces=False)


@needs_root
def test_work_dir_under_a_hidden_dir_outside_tmp(monkeypatch):
    # $TMPDIR inside a dir the sandbox hides (a cluster's /scratch holding the repo, /srv, ...): the work dir's
    # mount point must exist before the hidden dir's tmpfs turns read-only. Under /var/tmp, not pytest's tmp_path:
    # the run's private uid must be able to walk down to its work dir, and pytest's base dir is 0700.
    import shutil
    import tempfile

    hidden = Path(tempfile.mkdtemp(prefix="mgrpo-test-hidden-", dir="/var/tmp"))
    try:
        (hidden / "tmpdir").mkdir()
        monkeypatch.setattr(sandbox, "PRIVATE_TMP_DIRS", ("/dev/shm",))  # no private tmpfs covers /var/tmp now
        monkeypatch.setattr(sandbox.tempfile, "tempdir", str(hidden / "tmpdir"))
        monkeypatch.setenv("MGRPO_SANDBOX_HIDE", str(hidden))
        result = run_untrusted("import os; open('x', 'w').write('1'); print(os.getcwd())", timeout_s=10)
        assert result.status == "ok", result.stderr
        assert result.stdout.strip().startswith(str(hidden / "tmpdir"))
        assert "allowlist-root" in result.isolation
    finally:
        shutil.rmtree(hidden, ignore_errors=True)


def test_concurrent_runs_never_share_a_uid(monkeypatch):
    picks = iter([5, 5, 5, 9, 5])
    monkeypatch.setattr(sandbox.secrets, "randbelow", lambda n: next(picks))
    low = sandbox.SANDBOX_UID_RANGE[0]
    first = sandbox._claim_uid()
    assert first == low + 5
    assert sandbox._claim_uid() == low + 9  # 5 is held by the first run: drawn again
    sandbox._release_uid(first)
    assert sandbox._claim_uid() == low + 5  # free again once that run has ended
    sandbox._release_uid(low + 5)
    sandbox._release_uid(low + 9)


def test_a_uid_some_host_process_runs_as_is_not_claimed(monkeypatch):
    low = sandbox.SANDBOX_UID_RANGE[0]
    picks = iter([3, 4])
    monkeypatch.setattr(sandbox.secrets, "randbelow", lambda n: next(picks))
    monkeypatch.setattr(sandbox, "_count_processes_of", lambda uid: int(uid == low + 3))
    assert sandbox._claim_uid() == low + 4
    sandbox._release_uid(low + 4)


@needs_root
def test_a_run_ending_does_not_kill_a_concurrent_run(monkeypatch):
    # before uids were claimed, two runs could draw the same one, and the first to end killed the other's program
    import threading
    import time

    picks = iter([7, 7, 8])
    monkeypatch.setattr(sandbox.secrets, "randbelow", lambda n: next(picks))
    slow = {}
    thread = threading.Thread(target=lambda: slow.update(
        result=run_untrusted("import time; time.sleep(2); print('done')", timeout_s=20)))
    thread.start()
    time.sleep(0.7)
    assert run_untrusted("print('hi')", timeout_s=20).stdout.strip() == "hi"
    thread.join()
    assert slow["result"].status == "ok" and slow["result"].stdout.strip() == "done"


def test_a_runs_cgroup_gets_a_cpu_quota(monkeypatch):
    seen = {}
    make = sandbox._make_cgroups

    def spy(*args, **kwargs):
        made = make(*args, **kwargs)
        for directory in made:
            for name in ("cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.max", "pids.max"):
                if (directory / name).exists():
                    seen[name] = (directory / name).read_text().strip()
        return made

    monkeypatch.setattr(sandbox, "_make_cgroups", spy)
    result = run_untrusted("print(1)")
    if "cgroup" not in result.isolation:
        pytest.skip("no cgroup here (not root and no delegated cgroup v2)")
    if "pids.max" in seen and "cpu.max" not in seen and "cpu.cfs_quota_us" not in seen and \
            not (sandbox._own_cgroup_path("cpu") or (None,))[0]:
        pytest.skip("no cpu controller here")
    assert seen.get("cpu.max") == "100000 100000" or (
        seen.get("cpu.cfs_quota_us"), seen.get("cpu.cfs_period_us")) == ("100000", "100000"), seen
    seen.clear()
    run_untrusted("print(1)", cpus=2.5)
    assert seen.get("cpu.max") == "250000 100000" or seen.get("cpu.cfs_quota_us") == "250000", seen
