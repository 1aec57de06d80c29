"""Hostile programs: each is contained, scored as a failure, the evaluation finishes, nothing outside changes.

Every limit is set before the program starts, so even the fork bomb is contained by construction (pids cgroup,
RLIMIT_NPROC of a private uid, PID namespace, CPU and wall limits). docs/sandbox.md lists these with their results.
"""
import hashlib
import os
import socket
import sys
from pathlib import Path

import pytest

if not sys.platform.startswith("linux"):
    pytest.skip("the sandbox needs Linux", allow_module_level=True)

from mgrpo.evaluation.code import evaluate_code  # noqa: E402
from mgrpo.evaluation.sandbox import SANDBOX_UID_RANGE, isolation_report, run_untrusted  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SECRET = "mgrpo-test-secret-7f3a9c"


@pytest.fixture(scope="module")
def isolation():
    return isolation_report()


@pytest.fixture
def sentinel(tmp_path):
    directory = tmp_path / "sentinel"
    directory.mkdir()
    (directory / "keep.txt").write_text("do not touch")
    os.chmod(directory, 0o777)  # world-writable: only the sandbox's own layers can protect it
    os.chmod(directory / "keep.txt", 0o666)
    return directory


def snapshot(directory: Path) -> dict:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(directory.rglob("*"))}


def sandbox_processes() -> list[int]:
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                uid = entry.stat().st_uid
            except OSError:
                continue
            if SANDBOX_UID_RANGE[0] <= uid < SANDBOX_UID_RANGE[1]:
                pids.append(int(entry.name))
    return pids


def hostile_programs(sentinel: Path, port: int) -> dict[str, tuple[str, dict]]:
    """name -> (program, run_untrusted limits). Programs print what they managed to do."""
    return {
        "fork_bomb": ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
                      {"max_processes": 16, "timeout_s": 2}),
        "infinite_loop": ("while True:\n    pass\n", {"timeout_s": 2}),
        "memory_bomb": ("blocks = []\nwhile True:\n    blocks.append(bytearray(64 * 1024 * 1024))\n",
                        {"memory_mb": 512}),
        "fork_memory_bomb": (
            "import os, time\nfor _ in range(8):\n    if os.fork() == 0:\n        b = bytearray(150 * 2**20)\n"
            "        for i in range(0, len(b), 4096):\n            b[i] = 1\n        time.sleep(5)\n        os._exit(0)\n"
            "time.sleep(5)\n", {"memory_mb": 256, "timeout_s": 3}),
        "daemonised_busy_child": (
            "import os\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        while True:\n"
            "            pass\n    os._exit(0)\nprint('parent leaves')\n", {}),
        "write_outside_workdir": (
            f"import os\nfor path in [{str(sentinel / 'new.txt')!r}, {str(sentinel / 'keep.txt')!r},\n"
            f"             {str(REPO / 'PWNED')!r}, '/etc/pwned', '/pwned', '/usr/pwned']:\n"
            "    try:\n        open(path, 'a').write('x')\n        print('WROTE', path)\n"
            "    except OSError:\n        pass\n", {}),
        "delete_outside_workdir": (
            f"import shutil, os\ntry:\n    shutil.rmtree({str(sentinel)!r})\n    print('DELETED')\n"
            f"except OSError:\n    pass\ntry:\n    os.remove({str(REPO / 'pyproject.toml')!r})\n    print('DELETED')\n"
            "except OSError:\n    pass\n", {}),
        "read_secrets": (
            "import os\nprint(os.environ.get('MGRPO_TEST_SECRET'))\n"
            f"for path in ['/etc/shadow', {str(REPO / 'pyproject.toml')!r}, os.path.expanduser('~root/.ssh/id_rsa'),\n"
            f"             {str(sentinel / 'keep.txt')!r}, '/proc/1/environ']:\n"
            "    try:\n        print('READ', path, open(path).read()[:40])\n    except OSError:\n        pass\n", {}),
        "socket_loopback": (
            f"import socket\ns = socket.socket()\ns.settimeout(1)\ntry:\n    s.connect(('127.0.0.1', {port}))\n"
            "    s.sendall(b'hello')\n    print('CONNECTED')\nexcept OSError as e:\n    print('refused', e)\n", {}),
        "socket_external": (
            # 192.0.2.1 is TEST-NET-1 (RFC 5737): never routed, so even without a network namespace nothing leaves
            "import socket\ntry:\n    s = socket.create_connection(('192.0.2.1', 53), timeout=1)\n    print('CONNECTED')\n"
            "except OSError as e:\n    print('failed', e)\n", {}),
        "kill_parent": (
            "import os, signal\nfor target in [os.getppid(), -1, 1]:\n    try:\n        os.kill(target, signal.SIGKILL)\n"
            "    except OSError:\n        pass\nprint('still here')\n", {}),
        "huge_output": ("import sys\nwhile True:\n    sys.stdout.write('x' * 100000)\n", {"max_output_bytes": 100_000}),
        "sigterm_ignored_sleep": ("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                                  "time.sleep(60)\n", {"timeout_s": 1.5}),
        "raise_rlimit": ("import resource\nresource.setrlimit(resource.RLIMIT_CPU, (10**6, 10**6))\n"
                         "while True:\n    pass\n", {"timeout_s": 2}),
        "fill_dev_shm": ("f = open('/dev/shm/fill', 'wb')\nwhile True:\n    f.write(b'x' * 2**20)\n", {}),
        "fill_disk_in_workdir": ("f = open('big', 'wb')\nwhile True:\n    f.write(b'x' * 2**20)\n", {}),
    }


# what run_untrusted must report for each, and what must not appear in its output
EXPECTED = {
    "fork_bomb": {"timeout"}, "infinite_loop": {"timeout"}, "memory_bomb": {"error"},
    "fork_memory_bomb": {"timeout", "error"}, "daemonised_busy_child": {"ok"}, "write_outside_workdir": {"ok"},
    "delete_outside_workdir": {"ok"}, "read_secrets": {"ok"}, "socket_loopback": {"ok"}, "socket_external": {"ok"},
    "kill_parent": {"ok"}, "huge_output": {"error"}, "sigterm_ignored_sleep": {"timeout"},
    "raise_rlimit": {"error"}, "fill_dev_shm": {"error"}, "fill_disk_in_workdir": {"error"},
}
FORBIDDEN_OUTPUT = ("WROTE", "DELETED", "READ", "CONNECTED", SECRET, "do not touch", "[tool.")


@pytest.fixture
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.2)
    yield server
    server.close()


@pytest.mark.slow
def test_each_hostile_program_is_contained(sentinel, listener, monkeypatch, isolation):
    monkeypatch.setenv("MGRPO_TEST_SECRET", SECRET)
    programs = hostile_programs(sentinel, listener.getsockname()[1])
    assert len(programs) >= 12
    before, repo_before = snapshot(sentinel), sorted(os.listdir(REPO))
    for name, (program, limits) in programs.items():
        result = run_untrusted(program, **{"timeout_s": 5, **limits})
        assert result.status in EXPECTED[name], (name, result)
        for forbidden in FORBIDDEN_OUTPUT:
            assert forbidden not in result.stdout, (name, result.stdout[:300])
        if "private-uid" in isolation:
            assert sandbox_processes() == [], f"{name} left processes behind"
        assert snapshot(sentinel) == before, name
    assert sorted(os.listdir(REPO)) == repo_before
    with pytest.raises(socket.timeout):  # nothing ever connected to the parent's loopback listener
        listener.accept()


def test_the_isolation_layers_this_machine_offers_are_reported(isolation):
    assert "rlimits" in isolation
    if os.geteuid() != 0:
        pytest.skip("namespaces and cgroups need root here; the rlimits-only fallback is documented")
    for layer in ("pid-namespace", "net-namespace", "mount-namespace", "read-only-fs", "private-uid", "cgroup"):
        assert layer in isolation


class ScriptedGenerator:
    """Answers every prompt with the scripted responses (one per sample)."""

    def __init__(self, responses):
        self.responses = responses
        self.prompts = None

    def apply_chat_template(self, user_message):
        return f"<user>{user_message}</user>"

    def generate(self, prompts, n, params):
        self.prompts = prompts
        assert n == len(self.responses)
        return [list(self.responses) for _ in prompts]


@pytest.mark.slow
def test_hostile_candidates_score_zero_and_the_evaluation_finishes(tmp_path, sentinel, listener, monkeypatch):
    import json

    monkeypatch.setenv("MGRPO_TEST_SECRET", SECRET)
    data = tmp_path / "lcb"
    data.mkdir()
    row = {"question_title": "sum", "question_content": "Print a+b.", "platform": "atcoder", "question_id": "abc1",
           "contest_id": "abc", "contest_date": "2024-05-01T00:00:00", "starter_code": "", "difficulty": "easy",
           "public_test_cases": json.dumps([{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]),
           "private_test_cases": json.dumps([]), "metadata": "{}"}
    (data / "test.jsonl").write_text(json.dumps(row) + "\n")
    programs = hostile_programs(sentinel, listener.getsockname()[1])
    responses = [f"```python\n{program}```" for program, _ in programs.values()]
    before = snapshot(sentinel)
    summary = evaluate_code("livecodebench", ScriptedGenerator(responses), data, tmp_path / "out",
                            {"samples": len(responses), "timeout_s": 1.0, "memory_mb": 512, "workers": 2})
    assert summary["value"] == 0.0 and summary["n_problems"] == 1
    verdicts = json.loads((tmp_path / "out" / "livecodebench.samples.jsonl").read_text())["verdicts"]
    assert [v["passed"] for v in verdicts] == [False] * len(programs)
    assert snapshot(sentinel) == before
    assert sandbox_processes() == []
