"""One trainer per work folder.

A second `mgrpo train` on the same ``--work`` would interleave two histories in one set of checkpoints and
metrics. On a cluster this happens when the Snakemake controller dies (a login node reboots, an ssh session
drops) and is started again while its SLURM job still runs: the new controller submits the job a second time.

The lock is a file, ``WORK/.train.lock``, created with O_EXCL (atomic on local disks, NFS v3+ and Lustre, where
flock is not dependable) and holding its owner: host, pid, SLURM job. It is stale, and taken over, only when its
owner is known to be gone:

* it names this SLURM job: SLURM requeued the job, and the earlier start was killed before this one began;
* it names another SLURM job that squeue no longer lists as pending, running, suspended or completing;
* it names no SLURM job, this host, and a pid that no longer exists.

Anything else fails, naming the owner and the file to delete once you are sure the owner is gone.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

LOCK_NAME = ".train.lock"


class WorkDirInUse(RuntimeError):
    """Another trainer holds this work folder."""


def _owner() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "slurm_job": os.environ.get("SLURM_JOB_ID")}


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def _slurm_job_active(job_id: str) -> bool | None:
    """True/False from squeue; None when squeue cannot tell (not installed, controller unreachable)."""
    try:
        result = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True,
                                timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode == 0:
        return bool(result.stdout.strip())  # squeue lists only pending/running/suspended/completing jobs
    if "Invalid job id" in result.stderr:  # finished and purged
        return False
    return None


def _why_not_stale(owner: dict) -> str | None:
    """None if the owner is gone, else why it may still be running."""
    mine = _owner()
    job = owner.get("slurm_job")
    if job:
        if job == mine["slurm_job"]:
            return None
        active = _slurm_job_active(job)
        if active is False:
            return None
        return f"SLURM job {job} is still {'active' if active else 'possibly active (squeue could not tell)'}"
    if owner.get("host") == mine["host"]:
        return f"pid {owner.get('pid')} is still running" if pid_alive(int(owner.get("pid", -1))) else None
    return f"it runs on another host ({owner.get('host')}), where this process cannot check it"


def _read(lock: Path) -> dict | None:
    try:
        return json.loads(lock.read_text())
    except FileNotFoundError:
        return None
    except (ValueError, OSError):
        return {}  # half-written or unreadable: treated as an unknown owner


@contextmanager
def work_lock(work: Path | str) -> Iterator[Path]:
    """Hold WORK/.train.lock for the block; WorkDirInUse if a live trainer holds it."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    lock = work / LOCK_NAME
    me = _owner()
    for _ in range(2):  # a stale lock is removed once, then created again
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            owner = _read(lock)
            if owner is None:  # released meanwhile
                continue
            reason = _why_not_stale(owner) if owner else "its owner cannot be read"
            if reason:
                raise WorkDirInUse(
                    f"work folder {work} is in use by another trainer ({json.dumps(owner)}): {reason}. "
                    f"Two trainers on one work folder would mix their checkpoints; if you are sure that one "
                    f"has ended, delete {lock}") from None
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as out:
            json.dump(me, out)
        break
    else:
        raise WorkDirInUse(f"could not take {lock}: another trainer took it at the same time")
    try:
        yield lock
    finally:
        if _read(lock) == me:
            lock.unlink(missing_ok=True)
