"""Read JSON Lines files whose every error names the file and line (`path:line: ...`), for data and run files."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator


class DataError(ValueError):
    """A malformed data file: the message names the file, the line and, where there is one, the field."""


def iter_jsonl(path: Path | str, what: str = "data file") -> Iterator[tuple[str, dict]]:
    """(where, row) for every non-blank line, where = "path:line"; each row must be a JSON object.

    A missing file is a FileNotFoundError that says which kind of file (`what`) was expected."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    with open(path, "rb") as handle:  # decoded line by line, so a bad byte is reported with its line
        for number, raw in enumerate(handle, 1):
            where = f"{path}:{number}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(f"{where}: not UTF-8 ({err.reason} at byte {err.start} of the line)") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{where}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
            yield where, row
