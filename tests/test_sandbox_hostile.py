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
import mgrpo.evaluation.sandbox as sandbox  # noqa: E402
from mgrpo.evaluation.sandbox import SANDBOX_UID_RANGE, STRONG_LAYERS, isolation_report, run_untrusted  # noqa: E402
from hostile_programs import EXPECTED, FORBIDDEN_OUTPUT, REPO, SECRET, hostile_programs  # noqa: E402


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


def sandbox_processes(uids=None) -> list[int]:
    """Processes of the given sandbox uids (default: of any sandbox uid, which includes other test workers' and other
    users' live runs: use it only with the uids of this test's own runs)."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                uid = entry.stat().st_uid
            except OSError:
                continue
            if (uid in uids) if uids is not None else SANDBOX_UID_RANGE[0] <= uid < SANDBOX_UID_RANGE[1]:
                pids.append(int(entry.name))
    return pids


@pytest.fixture
def claimed_uids(monkeypatch):
    """The private uids of the runs this test makes (from any thread of this process)."""
    uids = set()
    claim = sandbox._claim_uid

    def recording_claim():
        uid = claim()
        uids.add(uid)
        return uid

    monkeypatch.setattr(sandbox, "_claim_uid", recording_claim)
    return uids


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
        if "private-uid" in isolation:  # only this run's uid: other runs on the host may be alive now
            assert result.uid is not None and sandbox_processes({result.uid}) == [], f"{name} left processes behind"
        assert snapshot(sentinel) == before, name
    assert sorted(os.listdir(REPO)) == repo_before
    with pytest.raises(socket.timeout):  # nothing ever connected to the parent's loopback listener
        listener.accept()


def test_the_isolation_layers_this_machine_offers_are_reported(isolation):
    assert "rlimits" in isolation
    if os.geteuid() != 0:
        pytest.skip("as root only (the unprivileged-user tests of tests/test_sandbox_isolation.py cover users)")
    for layer in (*STRONG_LAYERS, "read-only-fs", "workdir-tmpfs", "private-uid", "cgroup"):
        assert layer in isolation


def test_the_leftover_check_looks_only_at_the_runs_own_uid(claimed_uids):
    # a concurrent run (another xdist worker, another user's evaluation) holds a live sandbox uid: the check after a
    # hostile program must not count it (it used to, and failed "fork_bomb left processes behind" under -n)
    import threading
    import time

    if os.geteuid() != 0:
        pytest.skip("private uids need root")
    slow = threading.Thread(target=run_untrusted, args=("import time; time.sleep(4)",), kwargs={"timeout_s": 10})
    slow.start()
    try:
        deadline = time.monotonic() + 5
        while not sandbox_processes(set(claimed_uids)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sandbox_processes(set(claimed_uids)), "the concurrent run never started"
        result = run_untrusted("import os\nfor _ in range(3):\n    os.fork()\n", timeout_s=5)
        assert result.uid in claimed_uids and sandbox_processes({result.uid}) == []
        assert sandbox_processes() != []  # the global scan sees the other, live run
    finally:
        slow.join()


def test_a_run_killed_at_its_limit_still_reports_its_layers(isolation):
    # the layers are known before the program starts; a timeout must not lose them
    result = run_untrusted("while True:\n    pass\n", timeout_s=1)
    assert result.status == "timeout" and result.isolation == isolation


class ScriptedGenerator:
    """Answers every prompt with the scripted responses (one per sample)."""

    def __init__(self, responses):
        self.responses = responses
        self.prompts = None

    def apply_chat_template(self, messages, add_generation_prompt=True):
        return f"<user>{messages[-1]['content']}</user>"

    def generate(self, prompts, n, params):
        self.prompts = prompts
        assert n == len(self.responses)
        return [list(self.responses) for _ in prompts]


@pytest.mark.slow
def test_hostile_candidates_score_zero_and_the_evaluation_finishes(tmp_path, sentinel, listener, monkeypatch,
                                                                  claimed_uids, isolation):
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
    assert sandbox_processes(set(claimed_uids)) == []
    # the results record the layers every run had, the limits, and that weak isolation was not allowed
    recorded = json.loads((tmp_path / "out" / "livecodebench.json").read_text())["sandbox"]
    assert recorded["allow_weak_isolation"] is False and recorded["runs"] == len(programs)
    assert recorded["isolation"] == list(isolation) and not recorded["weak"]
    assert recorded["limits"][0]["memory_mb"] == 512 and recorded["limits"][0]["workdir_mb"] == 64


def test_the_benchmark_script_answers_help_without_running_any_program():
    # `python bench/sandbox_hostile.py --help` used to ignore its arguments and run every hostile program
    import subprocess

    done = subprocess.run([sys.executable, str(REPO / "bench" / "sandbox_hostile.py"), "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: sandbox_hostile.py") and "| program |" not in done.stdout
