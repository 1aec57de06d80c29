"""Atomic writes: a temp file in the target's folder, then a rename, so a reader never sees half a file."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def write_text(path: Path, text: str) -> None:
    write_with(path, lambda tmp: Path(tmp).write_text(text))


def write_with(path: Path, writer: Callable[[str], None]) -> None:
    """Call writer(temp_path) (same suffix as path), then move the result onto path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        writer(tmp)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are ordinary files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
