"""One trainer per work folder (and one evaluation per cache folder: `mgrpo evaluate --cache`).

A second `mgrpo train` on the same ``--work`` would interleave two histories in one set of checkpoints and
metrics. On a cluster this happens when the Snakemake controller dies (a login node reboots, an ssh session
drops) and is started again while its SLURM job still runs: the new controller submits the job a second time.

The lock is a file, ``WORK/.train.lock``, created with O_EXCL (atomic on local disks, NFS v3+ and Lustre, where
flock is not dependable) and holding its owner: host, pid, SLURM job and how often SLURM has restarted
(requeued) that job (SLURM_RESTART_COUNT, else from scontrol; a lock without it counts as 0). It is stale, and
taken over, only when its owner is known to be gone:

* it names this SLURM job with another restart count: SLURM requeued the job, and the earlier start was killed
  before this one began;
* it names this SLURM job with the same restart count (or one SLURM could not tell), this host, and a pid that
  no longer exists. Two trainers in one allocation (two srun steps, `snakemake --cores all` in salloc) share
  the job id, so a live pid is refused, and so is this job on another host;
* it names another SLURM job that squeue no longer lists as pending, running, suspended or completing;
* it names no SLURM job, this host, and a pid that no longer exists.

Anything else fails, naming the owner and the file to delete once you are sure the owner is gone.

A stale lock is taken over by renaming it (atomic) and deleting it only if it still holds the owner judged
gone: two trainers that judged it stale together cannot both take it, nor delete a lock that the first of
them has just created.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

LOCK_NAME = ".train.lock"


class WorkDirInUse(RuntimeError):
    """Another trainer holds this work folder."""


def _slurm_restarts(job: str | None) -> int | None:
    """How often SLURM has requeued this job; None outside SLURM or when it cannot tell.

    SLURM_RESTART_COUNT is set in the batch step only, and the jobstep plugin strips SLURM_* before its srun,
    so a trainer started by Snakemake lacks it: then scontrol is asked."""
    if not job:
        return None
    count = os.environ.get("SLURM_RESTART_COUNT")
    if count:
        return int(count)
    try:
        result = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True,
                                timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"\bRestarts=(\d+)", result.stdout) if result.returncode == 0 else None
    return int(found.group(1)) if found else None


def _owner() -> dict:
    job = os.environ.get("SLURM_JOB_ID")
    return {"host": socket.gethostname(), "pid": os.getpid(), "slurm_job": job,
            "slurm_restart": _slurm_restarts(job)}


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


def _why_not_stale(owner: dict, mine: dict) -> str | None:
    """None if the owner is gone, else why it may still be running."""
    job = owner.get("slurm_job")
    same_host = owner.get("host") == mine["host"]
    if job and job == mine["slurm_job"]:
        theirs = owner.get("slurm_restart", 0)  # no key: a lock from before the count was kept
        ours = mine["slurm_restart"]
        if theirs is not None and ours is not None and theirs != ours:  # None: SLURM could not tell
            return None  # an earlier start of this requeued job: killed before this one began
        if not same_host:
            return f"SLURM job {job} (this same job) runs it on host {owner.get('host')}"
    elif job:
        active = _slurm_job_active(job)
        if active is False:
            return None
        return f"SLURM job {job} is still {'active' if active else 'possibly active (squeue could not tell)'}"
    if same_host:
        return f"pid {owner.get('pid')} is still running" if pid_alive(int(owner.get("pid", -1))) else None
    return f"it runs on another host ({owner.get('host')}), where this process cannot check it"


def _read(lock: Path) -> dict | None:
    try:
        return json.loads(lock.read_text())
    except FileNotFoundError:
        return None
    except (ValueError, OSError):
        return {}  # half-written or unreadable: treated as an unknown owner


def _remove_stale(lock: Path, stale: dict, me: dict) -> dict | None:
    """Remove the lock if it still holds the stale owner; else the lock's live owner, its lock left in place.

    Unlinking by name could delete a lock that another trainer, having judged the same owner stale, created
    in the meantime; a rename moves whichever lock is there, atomically, and its content tells which."""
    moved = lock.with_name(f"{LOCK_NAME}.stale.{me['host']}.{me['pid']}.{uuid.uuid4().hex}")
    try:
        os.rename(lock, moved)
    except FileNotFoundError:  # another trainer took it over first
        return None
    owner = _read(moved)
    if owner == stale:
        moved.unlink()
        return None
    try:
        os.link(moved, lock)  # put the live lock back; fails if a third trainer created one meanwhile
    except FileExistsError:
        pass
    moved.unlink()
    return owner or {}


def _in_use(work: Path, lock: Path, owner: dict, reason: str, holder: str) -> WorkDirInUse:
    return WorkDirInUse(
        f"work folder {work} is in use by another {holder} ({json.dumps(owner)}): {reason}. "
        f"Two {holder}s on one work folder would mix their files; if you are sure that one "
        f"has ended, delete {lock}")


@contextmanager
def work_lock(work: Path | str, holder: str = "trainer") -> Iterator[Path]:
    """Hold WORK/.train.lock for the block; WorkDirInUse if a live process holds it (`holder` names what it is in
    messages: a trainer, an evaluation keeping its results and responses in a cache folder)."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    lock = work / LOCK_NAME
    me = _owner()
    for _ in range(3):  # others may take the same stale lock over at the same time
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            owner = _read(lock)
            if owner is None:  # released meanwhile
                continue
            reason = _why_not_stale(owner, me) if owner else "its owner cannot be read"
            if reason:
                raise _in_use(work, lock, owner, reason, holder) from None
            live = _remove_stale(lock, owner, me)
            if live is not None:
                raise _in_use(work, lock, live, "it took the stale lock over first", holder) from None
            continue
        with os.fdopen(fd, "w") as out:
            json.dump(me, out)
        break
    else:
        raise WorkDirInUse(f"could not take {lock}: another {holder} took it at the same time")
    try:
        yield lock
    finally:
        if _read(lock) == me:
            lock.unlink(missing_ok=True)
