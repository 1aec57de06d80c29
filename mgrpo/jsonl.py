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
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{where}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
            yield where, row
