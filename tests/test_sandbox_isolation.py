"""Isolation layers: the allowlist root, the work dir's size cap, unprivileged users (user namespaces), failing closed
where no namespace can be made, and what an evaluation records about its sandbox.

Tests marked "as an unprivileged user" run the sandbox as uid 65534 (setpriv) when the test process is root, with a
copy of the `mgrpo` package and a world-executable Python (/usr/bin/python3: ~/.pyenv is not readable by others).
"""
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

if not sys.platform.startswith("linux"):
    pytest.skip("the sandbox needs Linux", allow_module_level=True)

import mgrpo.evaluation.sandbox as sandbox  # noqa: E402
from mgrpo.evaluation.code import evaluate_code  # noqa: E402
from mgrpo.evaluation.sandbox import STRONG_LAYERS, SandboxSetupError, run_untrusted  # noqa: E402
from test_eval_fixtures import ScriptedGenerator  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
IS_ROOT = os.geteuid() == 0
NOBODY = 65534
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root (as a user, tests below cover it)")
LCB_ROW = {"question_title": "sum", "question_content": "Print a+b.", "platform": "atcoder", "question_id": "abc1",
           "contest_id": "abc", "contest_date": "2024-05-01T00:00:00", "starter_code": "", "difficulty": "easy",
           "public_test_cases": json.dumps([{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]),
           "private_test_cases": json.dumps([]), "metadata": "{}"}
SOLUTION = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"


def _world_readable_dir(parent: str, prefix: str) -> Path:
    directory = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.chmod(directory, 0o755)
    return directory


# ------------------------------------------------------------------------------------------ as this process
@needs_root
def test_host_paths_outside_the_allowlist_are_not_there():
    # a top-level data dir, a cache, a results folder that no denylist named (/farm, /scratch, /var/cache, ...)
    if not os.path.isdir("/var/cache"):
        pytest.skip("no /var/cache here")
    data = _world_readable_dir("/var/cache", "mgrpo-test-data-")
    try:
        (data / "token").write_text("hf_mgrpo_test_allowlist")
        os.chmod(data / "token", 0o644)
        program = textwrap.dedent(f"""
            import os
            print(sorted(os.listdir('/')), sorted(os.listdir('/var')))
            for path in [{str(data / 'token')!r}, '/etc/shadow', '/etc/gshadow']:
                try:
                    print('READ', path, repr(open(path).read()))
                except OSError as e:
                    print('refused', path, e.errno)
            """)
        result = run_untrusted(program, timeout_s=10)
    finally:
        shutil.rmtree(data, ignore_errors=True)
    assert result.status == "ok", result
    assert "hf_mgrpo_test_allowlist" not in result.stdout
    top, var = eval(result.stdout.splitlines()[0].replace("] [", "], ["))  # two list literals we printed
    allowed = {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "dev", "proc", "tmp", "var"}
    allowed |= {Path(p).parts[1] for p in sandbox._dirs_to_keep()}  # the interpreter's prefix (here ~/.pyenv/...)
    assert set(top) <= allowed and "work" not in top and var == ["tmp"]
    assert "refused /etc/shadow 2" in result.stdout  # not in the sandbox's /etc at all (an allowlist: ENOENT)


@pytest.mark.slow
def test_the_work_dir_is_a_size_capped_tmpfs():
    # RLIMIT_FSIZE caps each file (16 MiB); the work dir used to be a host dir with no total cap (600 MB in 2 s)
    if "mount-namespace" not in sandbox.isolation_report():
        pytest.skip("no mount namespace here: only the per-file cap applies (documented)")
    program = textwrap.dedent("""
        total = 0
        try:
            for i in range(25):
                with open(f'part{i}', 'wb') as f:
                    f.write(b'x' * (8 << 20))
                total += 8
        except OSError as e:
            print('stopped', e.errno)
        print('MiB', total)
        """)
    result = run_untrusted(program, timeout_s=20, workdir_mb=32, files={"input.txt": "x" * 100_000})
    assert "stopped 28" in result.stdout, result.stdout  # ENOSPC
    assert int(result.stdout.split("MiB")[1]) <= 32
    assert "workdir-tmpfs" in result.isolation


def test_an_evaluation_refuses_weak_isolation_unless_allowed(tmp_path, monkeypatch):
    # where no namespace can be made, evaluate_code stops before generating anything, naming what is missing
    (tmp_path / "lcb").mkdir()
    (tmp_path / "lcb" / "test.jsonl").write_text(json.dumps(LCB_ROW) + "\n")
    from mgrpo.evaluation.code import livecodebench

    real = sandbox.run_untrusted
    for module in (sandbox, livecodebench):  # every run without namespaces, as on a host that has none
        monkeypatch.setattr(module, "run_untrusted", lambda *a, **k: real(*a, **{**k, "namespaces": False}))
    generator = ScriptedGenerator(lambda text, j: SOLUTION)
    settings = {"samples": 1, "workers": 1, "timeout_s": 2.0}
    with pytest.raises(SandboxSetupError, match="missing pid-namespace, net-namespace, mount-namespace.*"
                                                 "allow_weak_sandbox"):
        evaluate_code("livecodebench", generator, tmp_path / "lcb", tmp_path / "out", settings)
    assert generator.calls == [] and not (tmp_path / "out").exists()
    with pytest.warns(sandbox.SandboxWeakIsolationWarning):
        summary = evaluate_code("livecodebench", generator, tmp_path / "lcb", tmp_path / "out",
                                {**settings, "allow_weak_sandbox": True})
    assert summary["value"] == 1.0
    recorded = json.loads((tmp_path / "out" / "livecodebench.json").read_text())["sandbox"]
    assert recorded["allow_weak_isolation"] is True and recorded["weak"] is True and recorded["runs"] == 1
    assert "pid-namespace" not in recorded["isolation"] and recorded["limits"][0]["timeout_s"] == 8.0
    with pytest.raises(ValueError, match="allow_weak_sandbox"):
        evaluate_code("livecodebench", generator, tmp_path / "lcb", tmp_path / "out2",
                      {**settings, "allow_weak_sandbox": "yes"})


def test_the_cli_flag_allows_weak_isolation():
    import argparse

    from mgrpo.evaluation.cli import _code_options, add_subcommands

    parser = argparse.ArgumentParser()
    add_subcommands(parser.add_subparsers())
    base = ["evaluate", "--model", "m", "--benchmarks", "livecodebench", "--out", "o", "--code-option", "workers=2"]
    assert _code_options(parser.parse_args(base)) == {"workers": 2}
    assert _code_options(parser.parse_args([*base, "--allow-weak-sandbox"])) == {"workers": 2,
                                                                                 "allow_weak_sandbox": True}


# ------------------------------------------------------------------------------------------ as an unprivileged user
def test_the_sandbox_and_the_code_benchmarks_import_with_the_standard_library_only():
    # the unprivileged-user tests below run them with a Python that may have no site-packages (user_env, e.g. the
    # system's /usr/bin/python3); a third-party import here turned those tests into skips, silently
    run = subprocess.run([sys.executable, "-S", "-c", "import mgrpo.evaluation.code, mgrpo.evaluation.sandbox"],
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}, cwd="/", capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-3000:]


def _as_user(argv: list[str]) -> list[str]:
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv] if IS_ROOT else argv


@pytest.fixture(scope="module")
def user_env():
    """(python, PYTHONPATH) that an unprivileged user can run: a world-readable copy of the package."""
    if IS_ROOT and shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to run the sandbox as an unprivileged user")
    home = _world_readable_dir("/tmp", "mgrpo-test-user-")
    try:
        shutil.copytree(REPO / "mgrpo", home / "mgrpo", ignore=shutil.ignore_patterns("__pycache__"))
        for path in [home, *home.rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        for python in ("/usr/bin/python3", os.path.realpath(sys.executable)):
            if not os.path.exists(python) or not sandbox._world_can_run(python):
                continue
            probe = subprocess.run(_as_user([python, "-c", "import sys, mgrpo.evaluation.code\n"
                                             "assert sys.version_info >= (3, 10)"]),
                                   env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(home)}, capture_output=True,
                                   cwd="/", timeout=60)
            if probe.returncode == 0:
                yield python, home
                return
        pytest.skip("no Python >= 3.10 that an unprivileged user can run with the package (tried /usr/bin/python3)")
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _run_as_user(user_env, script: str, env=None, prefix=()) -> dict:
    python, home = user_env
    run = subprocess.run(_as_user([*prefix, python, "-c", script]), capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(home), **(env or {})}, cwd="/")
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def _user_namespaces_for_users() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(_as_user(["unshare", "-Urnpm", "--fork", "true"]), capture_output=True).returncode == 0


@pytest.mark.slow
def test_an_unprivileged_user_gets_namespaces_and_the_evaluators_secrets_stay_out(user_env):
    # the review's finding: as a user, the old fallback (rlimits only) let the program read HF_TOKEN from
    # /proc/<pid>/environ of the evaluator (same uid), read any file the user can, and connect to host loopback
    if not _user_namespaces_for_users():
        pytest.skip("unprivileged user namespaces are not available here (see the fail-closed test)")
    data = _world_readable_dir("/var/tmp", "mgrpo-test-userdata-")
    try:
        (data / "token").write_text("hf_mgrpo_user_file_secret")
        os.chmod(data / "token", 0o644)
        script = textwrap.dedent(f"""
            import json, os, socket
            from mgrpo.evaluation.sandbox import run_untrusted
            server = socket.socket()
            server.bind(("127.0.0.1", 0))
            server.listen(1)
            server.settimeout(0.3)
            program = '''
            import os, socket
            os.kill(1, 2)  # SIGINT to the PID namespace's init (same uid): must not end the run
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        print("ENV", pid, open(f"/proc/{{pid}}/environ", "rb").read())
                    except OSError:
                        pass
            try:
                print("READ", open({str(data / 'token')!r}).read())
            except OSError as e:
                print("refused", e.errno)
            s = socket.socket()
            s.settimeout(1)
            try:
                s.connect(("127.0.0.1", %d))
                print("CONNECTED")
            except OSError as e:
                print("net", e.errno)
            print("uid", os.getuid(), sorted(os.listdir("/")))
            ''' % server.getsockname()[1]
            result = run_untrusted(program, timeout_s=10)
            try:
                server.accept()
                connected = True
            except socket.timeout:
                connected = False
            print(json.dumps({{"status": result.status, "stdout": result.stdout, "stderr": result.stderr,
                              "isolation": result.isolation, "connected": connected}}))
            """)
        out = _run_as_user(user_env, script, env={"HF_TOKEN": "hf_mgrpo_evaluator_secret"})
    finally:
        shutil.rmtree(data, ignore_errors=True)
    assert out["status"] == "ok", out
    assert "hf_mgrpo_evaluator_secret" not in out["stdout"] and "hf_mgrpo_user_file_secret" not in out["stdout"]
    assert not out["connected"] and "CONNECTED" not in out["stdout"] and "net 101" in out["stdout"]
    for layer in ("user-namespace", *STRONG_LAYERS, "read-only-fs", "workdir-tmpfs", "no-nested-userns", "rlimits"):
        assert layer in out["isolation"], out["isolation"]
    assert "private-uid" not in out["isolation"]


@pytest.mark.slow
def test_an_unprivileged_run_cannot_take_its_users_inotify_and_mqueue_limits(user_env):
    # not as root the program runs as the evaluator's own uid, and these limits count per uid across user
    # namespaces (fs.inotify.max_user_instances = 128, RLIMIT_MSGQUEUE): a program that held them all made every
    # process of that user on the host (the evaluator, its other runs, an editor) fail inotify_init and mq_open
    # with EMFILE until its run ended. The seccomp filter now refuses both in the sandbox.
    if not _user_namespaces_for_users():
        pytest.skip("unprivileged user namespaces are not available here")
    script = textwrap.dedent("""
        import ctypes, json, os, platform, threading, time
        from mgrpo.evaluation.sandbox import run_untrusted
        NR = {"x86_64": (294, 240), "aarch64": (26, 180)}[platform.machine()]  # inotify_init1, mq_open
        program = '''
        import ctypes, time
        libc = ctypes.CDLL(None, use_errno=True)
        held = {"inotify": 0, "mqueue": 0}
        while libc.syscall(ctypes.c_long(%d), 0) >= 0:
            held["inotify"] += 1
        attr = (ctypes.c_long * 8)(0, 10, 8192, 0)
        while libc.syscall(ctypes.c_long(%d), b"q%%d" %% held["mqueue"], 0o102, 0o600, attr) >= 0:
            held["mqueue"] += 1
        print(held, flush=True)
        time.sleep(4)
        ''' % NR
        libc = ctypes.CDLL(None, use_errno=True)
        result, refused = {}, set()
        run = threading.Thread(target=lambda: result.update(r=run_untrusted(program, timeout_s=20)))
        run.start()
        name = b"mgrpo-host-%d" % os.getpid()
        while run.is_alive():  # this process has the sandboxed program's uid
            fd = libc.syscall(ctypes.c_long(NR[0]), 0)
            if fd < 0:
                refused.add("inotify")
            else:
                os.close(fd)
            attr = (ctypes.c_long * 8)(0, 10, 8192, 0)
            fd = libc.syscall(ctypes.c_long(NR[1]), name, 0o102, 0o600, attr)
            if fd < 0:
                refused.add("mqueue")
            else:
                os.close(fd)
                libc.syscall(ctypes.c_long(NR[1] + 1), name)  # mq_unlink
            time.sleep(0.1)
        r = result["r"]
        print(json.dumps({"status": r.status, "stdout": r.stdout, "isolation": r.isolation,
                          "refused_on_the_host": sorted(refused)}))
        """)
    out = _run_as_user(user_env, script)
    assert out["status"] == "ok" and "user-namespace" in out["isolation"], out
    assert out["refused_on_the_host"] == [], out
    assert "{'inotify': 0, 'mqueue': 0}" in out["stdout"], out


@pytest.mark.slow
def test_an_unprivileged_run_cannot_take_its_users_pending_signals(user_env):
    # RLIMIT_SIGPENDING counts per uid, and a sandbox's real-time signals are charged to the evaluator's uid on the
    # host too (security review): with the inherited limit a program queued the user's whole quota (96 367 here) to
    # itself, and this process (same uid) got EAGAIN from sigqueue until the run ended. The program's limit is now
    # sandbox.MAX_PENDING_SIGNALS (the kernel checks the receiving task's limit): the host keeps the rest.
    if not _user_namespaces_for_users():
        pytest.skip("unprivileged user namespaces are not available here")
    script = textwrap.dedent("""
        import ctypes, json, os, signal, threading, time
        from mgrpo.evaluation.sandbox import run_untrusted
        program = '''
        import ctypes, os, signal, time
        class Value(ctypes.Union):
            _fields_ = [("int", ctypes.c_int), ("ptr", ctypes.c_void_p)]
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGRTMIN])  # blocked: each signal stays queued
        libc, queued = ctypes.CDLL(None, use_errno=True), 0
        while queued < 10**6 and libc.sigqueue(os.getpid(), signal.SIGRTMIN, Value(0)) == 0:
            queued += 1
        print("queued", queued, flush=True)
        time.sleep(3)
        '''
        class Value(ctypes.Union):
            _fields_ = [("int", ctypes.c_int), ("ptr", ctypes.c_void_p)]
        libc = ctypes.CDLL(None, use_errno=True)
        result, refused = {}, 0
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGRTMIN + 1])
        run = threading.Thread(target=lambda: result.update(r=run_untrusted(program, timeout_s=20)))
        run.start()
        while run.is_alive():  # this process has the sandboxed program's uid
            if libc.sigqueue(os.getpid(), signal.SIGRTMIN + 1, Value(0)) != 0:
                refused += 1
            else:
                signal.sigtimedwait([signal.SIGRTMIN + 1], 0)
            time.sleep(0.05)
        r = result["r"]
        print(json.dumps({"status": r.status, "stdout": r.stdout, "isolation": r.isolation,
                          "refused_on_the_host": refused}))
        """)
    out = _run_as_user(user_env, script)
    assert out["status"] == "ok" and "user-namespace" in out["isolation"], out
    assert out["refused_on_the_host"] == 0, out
    assert f"queued {sandbox.MAX_PENDING_SIGNALS}" in out["stdout"], out


@pytest.mark.slow
def test_without_user_namespaces_an_unprivileged_evaluation_fails_closed(user_env, tmp_path):
    # a user in a user namespace whose nested limit is 0: no namespace can be made (as with user namespaces disabled)
    if shutil.which("unshare") is None or not _user_namespaces_for_users():
        pytest.skip("needs unshare and user namespaces to simulate a host without them")
    work = _world_readable_dir("/tmp", "mgrpo-test-weak-")
    try:
        os.chmod(work, 0o777)
        (work / "lcb").mkdir(mode=0o755)
        (work / "lcb" / "test.jsonl").write_text(json.dumps(LCB_ROW) + "\n")
        os.chmod(work / "lcb" / "test.jsonl", 0o644)
        script = textwrap.dedent(f"""
            import json, warnings
            from pathlib import Path
            from mgrpo.evaluation.code import evaluate_code
            from mgrpo.evaluation.sandbox import SandboxSetupError, SandboxWeakIsolationWarning, run_untrusted

            class Generator:
                def apply_chat_template(self, messages, add_generation_prompt=True):
                    return messages[-1]["content"]
                def generate(self, prompts, n, params):
                    return [[{SOLUTION!r}] for _ in prompts]

            work = Path({str(work)!r})
            settings = {{"samples": 1, "workers": 1, "timeout_s": 2.0}}
            try:
                evaluate_code("livecodebench", Generator(), work / "lcb", work / "out1", settings)
                refused = ""
            except SandboxSetupError as error:
                refused = str(error)
            summary = evaluate_code("livecodebench", Generator(), work / "lcb", work / "out2",
                                    {{**settings, "allow_weak_sandbox": True}})
            recorded = json.loads((work / "out2" / "livecodebench.json").read_text())["sandbox"]
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                plain = run_untrusted("print('hi')")
            print(json.dumps({{"refused": refused, "value": summary["value"], "recorded": recorded,
                              "warned": [str(w.message) for w in caught
                                         if issubclass(w.category, SandboxWeakIsolationWarning)],
                              "plain": [plain.status, plain.isolation]}}))
            """)
        no_userns = ["unshare", "-Ur", "sh", "-c", 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"', "sh"]
        out = _run_as_user(user_env, script, prefix=no_userns)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert "missing pid-namespace, net-namespace, mount-namespace, allowlist-root" in out["refused"]
    assert "user namespaces unavailable" in out["refused"] and "--allow-weak-sandbox" in out["refused"]
    assert out["value"] == 1.0  # allowed explicitly: the run happens, and says how it was isolated
    recorded = out["recorded"]
    assert recorded["allow_weak_isolation"] is True and recorded["weak"] is True
    assert "pid-namespace" not in recorded["isolation"] and "rlimits" in recorded["isolation"]
    assert "user namespaces unavailable" in recorded["weak_reason"]
    assert out["plain"][0] == "ok" and out["warned"], out  # a plain run_untrusted falls back, but warns


@needs_root
def test_etc_is_an_allowlist(tmp_path):
    # a file created under /etc now (a secret the denylist could not know) is not in the sandbox; what programs
    # need is (the loader's cache, passwd, certificates, the interpreter's links)
    secret = Path(f"/etc/mgrpo-test-secret-{secrets.token_hex(4)}")
    secret.write_text("hf_mgrpo_etc_secret")
    try:
        program = textwrap.dedent(f"""
            import os, ssl
            print(os.path.exists({str(secret)!r}), sorted(os.listdir('/etc')))
            print(os.path.exists('/etc/ld.so.cache'), open('/etc/passwd').read().startswith('root:'))
            print(bool(ssl.create_default_context().get_ca_certs() or os.listdir('/etc/ssl/certs')))
            """)
        result = run_untrusted(program, timeout_s=20)
    finally:
        secret.unlink()
    assert result.status == "ok", result.stderr
    first, second, third = result.stdout.splitlines()
    assert first.startswith("False") and "mgrpo-test-secret" not in first and "shadow" not in first
    assert second == "True True" and third == "True"
