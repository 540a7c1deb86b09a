"""Atomic file writes: results, configs and checkpoints are written to a temporary file in the target folder, flushed
to disk, then renamed over the target, so a crash never leaves a half-written file behind."""

import json
import os
import tempfile
from typing import IO, Any, Callable


def atomic_write(path: str, write: Callable[[IO], None], binary: bool = False, fsync: bool = True) -> None:
    """Call `write(file)` on a temporary file beside `path`, fsync it and `os.replace` it onto `path`.

    `fsync=False` skips the flush to the disk, for files that can be made again and are checked when read (the
    image cache): a power loss may then leave an empty file under the final name, never a partial one mid-run."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_text(text: str, path: str) -> None:
    atomic_write(path, lambda f: f.write(text))


def write_json_atomic(obj: Any, path: str, indent=None) -> None:
    # one json.dumps call runs the C encoder (without indent); json.dump to a file runs the pure-Python one, ~3x slower
    text = json.dumps(obj, indent=indent)
    atomic_write(path, lambda f: f.write(text))
