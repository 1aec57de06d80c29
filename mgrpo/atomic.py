"""Write files and folders so that a reader sees the old version or the new one, never half of one.

Everything goes to a temp name beside the target (same folder, so the rename is atomic) and is renamed only when
complete; on any error the temp is removed and the target is left as it was. A crash (SIGKILL) can leave a
`.name.*` temp behind, never a truncated target; the trainers remove their run folder's at the next final write
(`remove_stale_temps`).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """A temp file path beside `target`; written by the caller, renamed onto `target` when the block succeeds.

    The temp keeps the target's suffix (for writers that infer the format from it) and gets ordinary
    permissions (mkstemp's 0600 would make results unreadable to the rest of a group)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=target.suffix or ".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(target: Path | str, replaceable: Iterable[str] | None = None) -> Iterator[Path]:
    """A temp folder beside `target`; filled by the caller, then it replaces `target` (removed if it exists).

    `replaceable`: the glob patterns that mark the writer's own earlier output (see check_replaceable); an existing
    non-empty `target` without them is refused, before the block runs and again before the replacement. None: an
    internal folder (a checkpoint, a staging folder) replaced whatever it holds."""
    target = Path(target)
    check_folder(target, "output folder")
    if replaceable is not None:
        check_replaceable(target, replaceable)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if replaceable is not None:
            check_replaceable(target, replaceable)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale_temps(target: Path | str) -> list[Path]:
    """Remove the temp folders that writers of `target` killed in mid-write left beside it (atomic_dir's
    `.name.XXXXXXXX`; a run folder's can hold two converted models). Only for the target's one writer (a trainer
    holding its work lock): another writer's temp in progress would go too. Returns what was removed."""
    target = Path(target)
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.[a-z0-9_]{{8}}$")
    stale = [p for p in target.parent.iterdir() if pattern.match(p.name) and p.is_dir() and not p.is_symlink()] \
        if target.parent.is_dir() else []
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def check_folder(path: Path | str, what: str) -> None:
    """A folder a job writes into or replaces: absent, or a folder (a file there is refused before any work)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {path} is a file, not a folder")


def check_replaceable(out: Path | str, markers: Iterable[str]) -> None:
    """An output folder that atomic_dir replaces whole is absent, empty, or the command's own earlier output: it
    holds a match of every glob pattern in `markers` (run.json for a run folder, pretrain.json for a base model,
    config.json and *.safetensors for an HF model). Anything else may be someone's unrelated folder."""
    out = Path(out)
    check_folder(out, "output folder")
    markers = [markers] if isinstance(markers, str) else list(markers)
    if not out.is_dir() or not any(out.iterdir()):
        return
    missing = [m for m in markers if not any(out.glob(m))]
    if missing:
        raise ValueError(f"output folder {out} is not empty and is not an earlier output of this command (it has no "
                         f"{', '.join(missing)}); it would be replaced whole: write the output elsewhere or remove it")


def check_out_apart(out: Path | str, **inputs: Path | str | None) -> None:
    """An output folder that atomic_dir replaces whole must be a folder or absent, and must not be, or hold, one of
    the job's inputs."""
    check_folder(out, "output folder")
    out = Path(out).resolve()
    for name, path in inputs.items():
        if path is None:
            continue
        path = Path(path).resolve()
        if path == out or out in path.parents:
            raise ValueError(f"output folder {out} would replace the {name} {path}, which it "
                             f"{'is' if path == out else 'holds'}: write the output elsewhere")


def write_text(path: Path | str, text: str) -> None:
    """`path` holds `text` (UTF-8) whole, or keeps what it had."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path | str, obj, **dump_options) -> None:
    """`json.dump(obj, **dump_options)` plus a final newline (default: indent=2)."""
    dump_options.setdefault("indent", 2)
    write_text(path, json.dumps(obj, **dump_options) + "\n")


def write_jsonl(path: Path | str, rows: Iterable[dict], **dump_options) -> int:
    """One JSON object per line (streamed, so large row sources are fine); returns the number of rows."""
    count = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, **dump_options) + "\n")
            count += 1
    return count
