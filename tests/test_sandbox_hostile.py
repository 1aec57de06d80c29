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


def test_a_run_killed_at_its_limit_still_reports_its_layers(isolation):
    # the layers are known before the program starts; a timeout must not lose them
    result = run_untrusted("while True:\n    pass\n", timeout_s=1)
    assert result.status == "timeout" and result.isolation == isolation


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
