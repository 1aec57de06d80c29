"""One trainer per work folder (mgrpo/work_lock.py): a live owner is refused, a gone one is taken over.

The owners here are real processes (a child that holds the lock, one that died holding it); the SLURM cases
run against a real cluster in test_workflow_slurm.py."""
import json
import os
import socket
import subprocess
import sys
from contextlib import contextmanager

import pytest

from mgrpo import work_lock as work_lock_module
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


@contextmanager
def holding(work, **env):
    """A live process holding work's lock, with env added to its environment."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(work)], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, **env})
    try:
        assert process.stdout.readline().strip() == "held"
        yield process
    finally:
        process.kill()
        process.wait()


@pytest.fixture
def holder(tmp_path):
    """A live process holding tmp_path/work's lock."""
    with holding(tmp_path / "work") as process:
        yield process


@pytest.fixture
def slurm_job(monkeypatch):
    """This process runs in SLURM job 4242, not restarted; another process can be told so with SAME_JOB."""
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")
    return monkeypatch


SAME_JOB = {"SLURM_JOB_ID": "4242", "SLURM_RESTART_COUNT": "0"}


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


@pytest.mark.parametrize("restarts", [{"slurm_restart": 0}, {}], ids=["restart 0", "no restart count"])
def test_the_same_slurm_job_restarted_takes_its_own_lock_over(tmp_path, slurm_job, restarts):
    # A requeued job: the earlier start on another node, killed, left its lock.
    (tmp_path / LOCK_NAME).write_text(json.dumps({"host": "node-a", "pid": 1, "slurm_job": "4242", **restarts}))
    slurm_job.setenv("SLURM_RESTART_COUNT", "1")
    with work_lock(tmp_path) as lock:
        owner = json.loads(lock.read_text())
        assert (owner["slurm_job"], owner["slurm_restart"]) == ("4242", 1)


def test_a_trainer_of_the_same_slurm_job_and_start_on_this_host_is_refused(tmp_path, slurm_job):
    # Two trainers in one allocation (two srun steps, or snakemake --cores all inside salloc) share the job id.
    work = tmp_path / "work"
    with holding(work, **SAME_JOB) as other:
        with pytest.raises(WorkDirInUse, match=rf"pid {other.pid} is still running"):
            with work_lock(work):
                pass
        assert json.loads((work / LOCK_NAME).read_text())["pid"] == other.pid


def test_a_trainer_of_the_same_slurm_job_and_start_on_another_host_is_refused_naming_it(tmp_path, slurm_job):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"host": "node-a", "pid": 1, "slurm_job": "4242",
                                                  "slurm_restart": 0}))
    with pytest.raises(WorkDirInUse, match=r"SLURM job 4242 \(this same job\) runs it on host node-a"):
        with work_lock(tmp_path):
            pass


def test_a_dead_trainer_of_the_same_slurm_job_and_start_on_this_host_is_taken_over(tmp_path, slurm_job):
    work = tmp_path / "work"
    subprocess.run([sys.executable, "-c", DIE_HOLDING, str(work)], check=True, env={**os.environ, **SAME_JOB})
    dead = json.loads((work / LOCK_NAME).read_text())
    assert (dead["slurm_job"], dead["slurm_restart"]) == ("4242", 0)
    with work_lock(work) as lock:
        assert json.loads(lock.read_text())["pid"] == os.getpid()


def test_the_restart_count_comes_from_scontrol_where_the_environment_lacks_it(tmp_path, slurm_job):
    # Snakemake's jobstep plugin strips SLURM_RESTART_COUNT before the srun that starts the trainer.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text('#!/bin/sh\n[ "$*" = "show job -o 4242" ] && '
                                      'echo "JobId=4242 JobName=train Requeue=1 Restarts=2 BatchFlag=1"\n')
    (bin_dir / "scontrol").chmod(0o755)
    slurm_job.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    slurm_job.delenv("SLURM_RESTART_COUNT")
    (tmp_path / LOCK_NAME).write_text(json.dumps({"host": "node-a", "pid": 1, "slurm_job": "4242",
                                                  "slurm_restart": 1}))
    with work_lock(tmp_path) as lock:  # the start before this one's lock
        assert json.loads(lock.read_text())["slurm_restart"] == 2


def test_a_stale_lock_another_trainer_took_over_first_is_left_to_it(tmp_path, monkeypatch):
    # Two trainers judge the same dead owner stale; the other one removes its lock and creates its own
    # between this one's judging and taking over.
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    lock = tmp_path / LOCK_NAME
    subprocess.run([sys.executable, "-c", DIE_HOLDING, str(tmp_path)], check=True)
    live = {"host": socket.gethostname(), "pid": os.getpid(), "slurm_job": None, "slurm_restart": None}
    judge = work_lock_module._why_not_stale

    def judged_stale_then_taken_over(owner, *args):
        assert judge(owner, *args) is None
        lock.unlink()
        lock.write_text(json.dumps(live))
        return None

    monkeypatch.setattr(work_lock_module, "_why_not_stale", judged_stale_then_taken_over)
    with pytest.raises(WorkDirInUse, match="took the stale lock over first"):
        with work_lock(tmp_path):
            pass
    assert json.loads(lock.read_text()) == live
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_NAME]


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


def test_mgrpo_evaluate_on_a_cache_folder_in_use_stops_before_evaluating(tmp_path):
    # a restarted Snakemake controller resubmits an evaluation whose first job still runs: the second must not
    # generate the same responses again into the same partial store
    cache = tmp_path / "cache"
    with holding(cache) as process:
        result = subprocess.run(
            [sys.executable, "-m", "mgrpo", "evaluate", "--model", str(tmp_path / "model"), "--benchmarks", "toy",
             "--out", str(tmp_path / "out"), "--cache", str(cache)], capture_output=True, text=True, timeout=120,
            check=False)
        assert json.loads((cache / LOCK_NAME).read_text())["pid"] == process.pid  # still the first job's
    assert result.returncode != 0
    assert f"mgrpo evaluate: work folder {cache} is in use by another evaluation" in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()
