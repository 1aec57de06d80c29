"""What a work folder was started from, so that a resume never continues another run.

A trainer resumes from the checkpoints in ``--work``. That is right after a preemption, and wrong when the run's
arguments or its inputs changed since: a rebuilt base model or data set under the same paths would be trained on
from the old run's checkpoints, and its results published as new. ``WORK/run_inputs.json`` records the run's
arguments (not where it writes; its backend settings as resolved, every default filled in, so that spelling out a
default changes nothing) and the identity of every file of the base model and the data (path, size, modification
time; dot-files excluded). A later start with a different record refuses, naming what changed, or,
with ``restart=True`` (what the workflow asks for: Snakemake reruns a job only because something changed), moves
the old contents to ``WORK/superseded/<UTC time>/`` and starts afresh. Nothing is deleted. A folder holding nothing
but its record (a start refused by the trainer's own checks) is simply recorded again. A record written before
the resolved settings were recorded (it holds the settings as given) is the same run when it equals the present
record with the settings as given, and so is one that differs only in a momentum m or IQR k that the run's method
does not use (the workflow passed those to every method until 2026-12-07); it is then rewritten in the present
form.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Mapping

from mgrpo.atomic import write_json
from mgrpo.work_lock import LOCK_NAME

STAMP = "run_inputs.json"
SUPERSEDED = "superseded"


def files_identity(root: Path) -> str:
    """A digest of every file under ``root`` (relative path, size, mtime), dot-files and dot-dirs excluded."""
    root = Path(root)
    entries = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            stat = path.stat()
            entries.append((str(relative), stat.st_size, stat.st_mtime_ns))
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


def run_identity(spec, settings: Mapping[str, Any]) -> dict:
    arguments = {k: v for k, v in spec.to_json().items() if k not in ("out", "work")} | {"settings": dict(settings)}
    return {"arguments": arguments, "base_model": files_identity(spec.base_model), "data": files_identity(spec.data)}


def _with_settings_as_given(identity: dict, spec) -> dict:
    as_given = json.loads(json.dumps(spec.to_json()["settings"]))
    return identity | {"arguments": identity["arguments"] | {"settings": as_given}}


def _same_run_but_unused(recorded, identity: dict) -> bool:
    """The record differs only in a momentum m or IQR k that the run's method does not use (run_spec.unused_at_default)."""
    from mgrpo.run_spec import unused_at_default

    if not isinstance(recorded, dict) or not isinstance(recorded.get("arguments"), dict):
        return False
    return (recorded | {"arguments": unused_at_default(recorded["arguments"])}
            == identity | {"arguments": unused_at_default(identity["arguments"])})


def _differences(old: dict, new: dict, prefix: str) -> list[str]:
    """Names of the keys whose values differ; the settings are named one by one."""
    names = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            both_dicts = isinstance(old.get(key), dict) and isinstance(new.get(key), dict)
            names += _differences(old[key], new[key], f"{prefix}{key}.") if both_dicts else [prefix + key]
    return names


def _read_record(stamp: Path) -> tuple[dict | None, str]:
    """The recorded identity, or None and why not (a record emptied or cut short, e.g. by a full disk)."""
    try:
        recorded = json.loads(stamp.read_text())
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError both are
        return None, str(err)
    return (recorded, "") if isinstance(recorded, dict) else (None, "not a JSON object")


def check_work_dir(spec, settings: Mapping[str, Any], restart: bool = False, log=print) -> None:
    """Record the run in ``spec.work``, or compare with the record there; call while holding the work lock.

    ``settings``: the backend's settings as resolved (``trainer.resolved_settings(spec)``)."""
    work = Path(spec.work)
    stamp = work / STAMP
    identity = json.loads(json.dumps(run_identity(spec, settings)))  # as it reads back from the file
    holds_a_run = work.is_dir() and any(e.name not in (LOCK_NAME, STAMP, SUPERSEDED) for e in work.iterdir())
    if stamp.is_file() and holds_a_run:  # a start that failed before writing anything has nothing to protect
        recorded, unreadable = _read_record(stamp)
        if recorded == identity:
            return
        if recorded == _with_settings_as_given(identity, spec) or _same_run_but_unused(recorded, identity):
            write_json(stamp, identity, sort_keys=True)  # an older record of this same run: keep its progress
            return
        if recorded is None:  # no telling what the run there was started from: as if it were another run
            held = f"a run whose record {stamp} cannot be read ({unreadable})"
        else:
            changed = _differences(recorded.get("arguments", {}), identity["arguments"], "arguments.")
            changed += [f"{name} files ({spec.base_model if name == 'base_model' else spec.data})"
                        for name in ("base_model", "data") if recorded.get(name) != identity[name]]
            held = f"a run started from other inputs ({', '.join(changed)})"
        if not restart:
            raise ValueError(f"{work} holds {held}; use another --work, or --restart-on-change to move its "
                             f"contents to {work / SUPERSEDED} and start afresh")
        target = work / SUPERSEDED / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target.mkdir(parents=True)
        for entry in work.iterdir():
            if entry.name not in (LOCK_NAME, SUPERSEDED):
                entry.rename(target / entry.name)
        log(f"mgrpo train: {work} held {held}; its contents moved to {target}, starting afresh")
    work.mkdir(parents=True, exist_ok=True)
    write_json(stamp, identity, sort_keys=True)
