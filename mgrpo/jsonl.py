"""Read JSON Lines files whose every error names the file and line (`path:line: ...`), for data and run files
(and single JSON files, named the same way); and the step logs a trainer appends to (metrics.jsonl), with their
resume rule."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Iterator

from mgrpo.atomic import write_jsonl


class DataError(ValueError):
    """A malformed data file: the message names the file, the line and, where there is one, the field."""


def is_finite_number(value) -> bool:
    """A JSON number that means a number: an int or a finite float, not a boolean (JSON's true is Python's 1)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_json(path: Path | str):
    """A JSON file's value; bytes that are not UTF-8 or not JSON are a DataError naming the file and where."""
    try:
        return json.loads(Path(path).read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 ({err.reason} at byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err.msg} at line {err.lineno} column {err.colno})") from None


def iter_jsonl(path: Path | str, what: str = "data file") -> Iterator[tuple[str, dict]]:
    """(where, row) for every non-blank line, where = "path:line"; each row must be a JSON object.

    A missing file is a FileNotFoundError that says which kind of file (`what`) was expected."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{what} {path} is a folder, not a file")
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    with open(path, "rb") as handle:  # decoded line by line, so a bad byte is reported with its line
        for number, raw in enumerate(handle, 1):
            where = f"{path}:{number}"
            row = _parse_line(raw, where)
            if row is not None:
                yield where, row


def _parse_line(raw: bytes, where: str) -> dict | None:
    """The JSON object on one line, None for a blank line; a DataError naming `where` for anything else."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{where}: not UTF-8 ({err.reason} at byte {err.start} of the line)") from None
    if not line.strip():
        return None
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataError(f"{where}: not valid JSON ({err.msg})") from None
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    return row


# ------------------------------------------------------------------------------------------------ step logs

def append_row(path: Path | str, row: dict) -> None:
    """Append one step's row to a log, on disk before the step's checkpoint is written."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_log(path: Path | str) -> list[dict]:
    """The rows of a step log ([] if there is none yet).

    A last line cut short (no newline, not a JSON object: the trainer was killed while appending it) is left out:
    it is a step after the last checkpoint, which the resumed run does again. Any other bad line is a DataError."""
    path = Path(path)
    if not path.is_file():
        return []
    *complete, last = path.read_bytes().split(b"\n")  # last is b"" unless the final line lacks its newline
    rows = [_parse_line(raw, f"{path}:{number}") for number, raw in enumerate(complete, 1)]
    try:
        rows.append(_parse_line(last, f"{path}:{len(complete) + 1}"))
    except DataError:
        pass  # cut short
    return [row for row in rows if row is not None]


def truncate_log(path: Path | str, step: int) -> list[dict]:
    """Resume rule: keep the rows of steps <= ``step`` (later ones belong to lost work), each step once, in order.
    The log is rewritten whole (atomically); returns its rows.

    The checkpoint at ``step`` was written after its row, so the log holds every step 1..``step`` (step 0, the
    base model's validation, only where it ran): a log emptied or cut short since is refused, untouched, rather
    than resumed into a run whose metrics miss those steps."""
    kept: dict[int, dict] = {}
    for row in read_log(path):
        if not isinstance(row.get("step"), int):
            raise DataError(f"{path}: a row without an integer 'step': {json.dumps(row)[:200]}")
        if row["step"] <= step:
            kept[row["step"]] = row  # a repeated step (killed between its row and its checkpoint) keeps the last
    missing = [s for s in range(1, step + 1) if s not in kept]
    if missing:
        shown = ", ".join(map(str, missing[:5])) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DataError(f"{path} has no row for step(s) {shown}, though the checkpoint it resumes from is at step "
                        f"{step}: the log was emptied or cut since; restore it, or start afresh with another --work")
    rows = [kept[s] for s in sorted(kept)]
    write_jsonl(path, rows)
    return rows
