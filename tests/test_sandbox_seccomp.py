"""The seccomp filter: the system calls it denies fail inside the sandbox (tried by hostile programs, through the
real sandbox), ordinary programs (multiprocessing, subprocesses, threads, sockets) still work, and an evaluation
fails closed where no filter can be installed (docs/sandbox.md, "The seccomp filter")."""
import ctypes
import json
import os
import sys
import textwrap

import pytest

if not sys.platform.startswith("linux"):
    pytest.skip("the sandbox needs Linux", allow_module_level=True)

import mgrpo.evaluation.sandbox as sandbox  # noqa: E402
from hostile_programs import SECCOMP_PROBES, SECCOMP_PROGRAMS, hostile_programs  # noqa: E402
from mgrpo.evaluation.code import evaluate_code  # noqa: E402
from mgrpo.evaluation.sandbox import SandboxSetupError, run_untrusted  # noqa: E402
from test_eval_fixtures import ScriptedGenerator  # noqa: E402


def _libseccomp_here() -> bool:
    try:
        ctypes.CDLL("libseccomp.so.2")
        return True
    except OSError:
        return False


# the filter's own availability (not the layer the sandbox reports): without libseccomp the sandbox cannot filter,
# and the fail-closed test below covers that
needs_libseccomp = pytest.mark.skipif(not _libseccomp_here(), reason="libseccomp.so.2 is not installed here")


@needs_libseccomp
@pytest.mark.parametrize("program", sorted(SECCOMP_PROGRAMS))
def test_denied_system_calls_fail_in_the_sandbox(program, tmp_path):
    source, limits = hostile_programs(tmp_path, 9)[program]
    result = run_untrusted(source, timeout_s=20, **limits)
    assert result.status == "ok", result.stderr[-2000:]
    seen = {}
    for line in result.stdout.splitlines():
        word, name, *rest = line.split()
        seen[name] = "escaped" if word == "ESCAPED" else int(rest[0])
    # each probe ran and failed with the filter's errno (EPERM; clone3: ENOSYS), not the kernel's own answer
    assert seen == {name: SECCOMP_PROBES[name][1] for name in SECCOMP_PROGRAMS[program]}, result.stdout
    assert "seccomp" in result.isolation, result.isolation


@needs_libseccomp
@pytest.mark.skipif(os.geteuid() != 0, reason="needs CAP_NET_RAW, which only the filter may then refuse")
def test_the_filter_refuses_packet_sockets_asked_for_as_af_inet():
    # the kernel makes socket(AF_INET, SOCK_PACKET) an AF_PACKET socket (raw frames of every interface): the family
    # rule alone let it through. In the sandbox the program also lacks CAP_NET_RAW; here, as root, only the
    # filter stands in the way. Each attempt in a child of this process (a filter cannot be removed).
    def attempt(install: bool) -> int:
        pid = os.fork()
        if pid == 0:
            code = 99
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                if install:
                    sandbox._install_seccomp(libc)
                fd = libc.socket(2, 10, 0x0300)  # AF_INET, SOCK_PACKET, htons(ETH_P_ALL)
                code = 0 if fd >= 0 else ctypes.get_errno()
            finally:
                os._exit(code)
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

    if attempt(install=False) != 0:
        pytest.skip("this root cannot open packet sockets (no CAP_NET_RAW): nothing for the filter to refuse")
    assert attempt(install=True) == 1  # EPERM


ORDINARY = textwrap.dedent("""
    import asyncio, ctypes, errno, json, multiprocessing, multiprocessing.connection, os, socket, subprocess, sys
    import threading

    def square(x):
        return x * x

    if __name__ == "__main__":
        report = {}
        with multiprocessing.Pool(3) as pool:
            report["pool"] = pool.map(square, range(6))
        with multiprocessing.get_context("spawn").Pool(2) as pool:  # fresh interpreters (fork + exec)
            report["spawn_pool"] = pool.map(square, range(3))
        report["python_child"] = subprocess.run([sys.executable, "-c", "print(6 * 7)"], capture_output=True,
                                                text=True).stdout.strip()
        if os.path.exists("/usr/bin/true"):
            report["true"] = subprocess.run(["/usr/bin/true"]).returncode
        results = []
        # pthread_create: glibc tries clone3 first, gets ENOSYS from the filter and uses clone
        threads = [threading.Thread(target=lambda i=i: results.append(square(i))) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        report["threads"] = sorted(results)
        a, b = socket.socketpair()
        a.sendall(b"ping")
        report["socketpair"] = b.recv(4).decode()
        with multiprocessing.connection.Listener("listener.sock", family="AF_UNIX") as listener:
            client = multiprocessing.connection.Client("listener.sock", family="AF_UNIX")
            server = listener.accept()
            client.send([1, 2])
            report["unix_listener"] = server.recv()
        for name, family in (("inet", socket.AF_INET), ("inet6", socket.AF_INET6)):
            with socket.socket(family) as s:
                s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
                s.listen(1)
                report[name] = "listening"
        with socket.socket() as s:
            try:
                s.connect(("127.0.0.1", 9))
                report["connect"] = "connected"
            except OSError as e:
                report["connect"] = e.errno
        report["getaddrinfo"] = len(socket.getaddrinfo("localhost", 80, flags=socket.AI_ADDRCONFIG)) >= 0
        async def main():
            await asyncio.sleep(0)
            return "ran"
        report["asyncio"] = asyncio.run(main())
        libc = ctypes.CDLL(None, use_errno=True)
        report["unshare_files"] = libc.unshare(0x00000400)  # CLONE_FILES: not a namespace
        report["personality_query"] = libc.personality(ctypes.c_ulong(0xFFFFFFFF)) >= 0
        report["personality_linux"] = libc.personality(ctypes.c_ulong(0))
        status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\\t" in line)
        report["status"] = [status.get("NoNewPrivs"), status.get("Seccomp")]
        print(json.dumps(report))
    """)


@needs_libseccomp
def test_ordinary_programs_still_work_under_the_filter():
    result = run_untrusted(ORDINARY, timeout_s=60)
    assert result.status == "ok", result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    status = report.pop("status")
    if "net-namespace" in result.isolation:
        assert report.pop("connect") == 101  # ENETUNREACH: the empty network namespace, not the filter
    expected = {"pool": [0, 1, 4, 9, 16, 25], "spawn_pool": [0, 1, 4], "python_child": "42", "threads": [0, 1, 4, 9],
                "socketpair": "ping", "unix_listener": [1, 2], "inet": "listening", "inet6": "listening",
                "getaddrinfo": True, "asyncio": "ran", "unshare_files": 0, "personality_query": True,
                "personality_linux": 0}
    if os.path.exists("/usr/bin/true"):
        expected["true"] = 0
    assert {k: v for k, v in report.items() if k != "connect"} == expected
    assert status == ["1", "2"] and "seccomp" in result.isolation  # no_new_privs; seccomp mode 2 (a filter)


def test_an_evaluation_without_the_filter_fails_closed_unless_allowed(tmp_path, monkeypatch):
    # where no filter can be installed (seccomp=False stands for a host without libseccomp), the evaluation stops
    # before generating, naming the layer; allowed explicitly, it runs and records what was missing
    from mgrpo.evaluation.code import livecodebench

    row = {"question_title": "sum", "question_content": "Print a+b.", "platform": "atcoder", "question_id": "abc1",
           "contest_id": "abc", "contest_date": "2024-05-01T00:00:00", "starter_code": "", "difficulty": "easy",
           "public_test_cases": json.dumps([{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]),
           "private_test_cases": json.dumps([]), "metadata": "{}"}
    (tmp_path / "lcb").mkdir()
    (tmp_path / "lcb" / "test.jsonl").write_text(json.dumps(row) + "\n")
    real = sandbox.run_untrusted
    for module in (sandbox, livecodebench):
        monkeypatch.setattr(module, "run_untrusted", lambda *a, **k: real(*a, **{**k, "seccomp": False}))
    solution = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    generator = ScriptedGenerator(lambda text, j: solution)
    settings = {"samples": 1, "workers": 1, "timeout_s": 2.0}
    with pytest.raises(SandboxSetupError, match=r"missing seccomp .*no seccomp filter.*libseccomp.*"
                                                 "allow_weak_sandbox"):
        evaluate_code("livecodebench", generator, tmp_path / "lcb", tmp_path / "out", settings)
    assert generator.calls == [] and not (tmp_path / "out").exists()
    with pytest.warns(sandbox.SandboxWeakIsolationWarning, match="seccomp"):
        summary = evaluate_code("livecodebench", generator, tmp_path / "lcb", tmp_path / "out",
                                {**settings, "allow_weak_sandbox": True})
    assert summary["value"] == 1.0
    recorded = json.loads((tmp_path / "out" / "livecodebench.json").read_text())["sandbox"]
    assert recorded["weak"] is True and recorded["allow_weak_isolation"] is True
    assert "seccomp" not in recorded["isolation"] and "no seccomp filter" in recorded["weak_reason"]
    # a run that requires strong isolation refuses to start without the filter
    with pytest.raises(SandboxSetupError, match="seccomp filter required"):
        real("print(1)", require_namespaces=True, seccomp=False)
