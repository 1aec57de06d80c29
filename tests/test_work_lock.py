"""One trainer per work folder (mgrpo/work_lock.py): a live owner is refused, a gone one is taken over.

The owners here are real processes (a child that holds the lock, one that died holding it); the SLURM cases
run against a real cluster in test_workflow_slurm.py."""
import json
import socket
import subprocess
import sys

import pytest

from mgrpo.work_lock import LOCK_NAME, WorkDirInUse, work_lock

HOLD = """
import sys, time
from mgrpo.work_lock import work_lock
with work_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""
DIE_HOLDING = """
import os, sys
from mgrpo.work_lock import work_lock
with work_lock(sys.argv[1]):
    os._exit(0)  # no clean-up, as under SIGKILL
"""


@pytest.fixture
def holder(tmp_path):
    """A live process holding tmp_path/work's lock."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "work")], stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout.readline().strip() == "held"
    yield process
    process.kill()
    process.wait()


def test_a_live_owner_is_refused_naming_its_pid_and_the_lock_file(tmp_path, holder):
    work = tmp_path / "work"
    with pytest.raises(WorkDirInUse, match=rf"pid {holder.pid} is still running.*delete {work / LOCK_NAME}"):
        with work_lock(work):
            pass
    assert json.loads((work / LOCK_NAME).read_text())["pid"] == holder.pid  # the owner's lock is untouched


def test_a_dead_owners_lock_is_taken_over_and_released_after(tmp_path):
    work = tmp_path / "work"
    subprocess.run([sys.executable, "-c", DIE_HOLDING, str(work)], check=True)
    assert (work / LOCK_NAME).exists()
    with work_lock(work) as lock:
        assert json.loads(lock.read_text())["host"] == socket.gethostname()
    assert not (work / LOCK_NAME).exists()


def test_the_lock_is_released_when_training_fails(tmp_path):
    with pytest.raises(ValueError):
        with work_lock(tmp_path):
            raise ValueError("training failed")
    assert not (tmp_path / LOCK_NAME).exists()
    with work_lock(tmp_path):  # and the next trainer gets it
        pass


def test_the_same_slurm_job_restarted_takes_its_own_lock_over(tmp_path, monkeypatch):
    # A requeued job: the earlier start on another node, killed, left its lock.
    (tmp_path / LOCK_NAME).write_text(json.dumps({"host": "node-a", "pid": 1, "slurm_job": "4242"}))
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    with work_lock(tmp_path) as lock:
        assert json.loads(lock.read_text())["slurm_job"] == "4242"


@pytest.mark.parametrize("owner, reason", [
    ({"host": "node-b", "pid": 1, "slurm_job": None}, "it runs on another host \\(node-b\\)"),
    ("not json", "its owner cannot be read"),
])
def test_an_owner_that_cannot_be_checked_is_refused(tmp_path, monkeypatch, owner, reason):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    (tmp_path / LOCK_NAME).write_text(owner if isinstance(owner, str) else json.dumps(owner))
    with pytest.raises(WorkDirInUse, match=reason):
        with work_lock(tmp_path):
            pass


def test_mgrpo_train_on_a_work_folder_in_use_stops_before_training(tmp_path, holder):
    for folder in ("model", "data"):  # they pass the checks made first; the trainer never opens them
        (tmp_path / folder).mkdir()
    for name in ("model/config.json", "data/train.jsonl", "data/val.jsonl"):
        (tmp_path / name).write_text("{}\n")
    result = subprocess.run(
        [sys.executable, "-m", "mgrpo", "train", "--method", "srt", "--base-model", str(tmp_path / "model"),
         "--data", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"),
         "--G", "4", "--T", "1.0"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0
    assert f"mgrpo train: work folder {tmp_path / 'work'} is in use by another trainer" in result.stderr
    assert not (tmp_path / "out").exists()
