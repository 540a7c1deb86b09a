"""Atomic file writes: every file the project writes (results, configs, checkpoints, videos, caches, JSON lines) is
written under a temporary name in the target folder, flushed to disk, then renamed over the target, so a crash, an
error or a kill never leaves a half-written file under the final name.

Three shapes of the same rule:
- `atomic_write(path, write)`: the whole content written by one call;
- `atomic_path(path)`: a context manager yielding a temporary path beside `path` (same extension, for writers that
  open the file themselves and pick the format from its name: OpenCV's video writer, onnx.save, np.save); the file is
  published on a normal exit and removed on an exception;
- `AtomicFile(path)`: a file written bit by bit (a stream's JSON lines), published by `commit()`, dropped by `abort()`.

Published files get the ordinary permissions of a new file (0666 less the umask), not mkstemp's owner-only 0600, so a
shared cache or output folder stays readable by the group.
"""

import contextlib
import json
import os
import tempfile
import uuid
from typing import IO, Any, Callable, Iterator, Optional


def _read_umask() -> int:
    # os.umask can only be read by setting it: done once at import, before any thread of ours writes files
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _publish(tmp: str, path: str, fsync: bool = False) -> None:
    """Give `tmp` a new file's ordinary permissions and rename it onto `path` (atomic within one file system)."""
    os.chmod(tmp, 0o666 & ~_UMASK)
    if fsync:
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
    os.replace(tmp, path)


def temp_path_beside(path: str) -> str:
    """A fresh hidden name in `path`'s folder that keeps its extension: `dir/.name.<pid>-<rand>.partial.ext`. The
    folder is created if needed; the file itself is not."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    stem, ext = os.path.splitext(os.path.basename(path))
    return os.path.join(folder, f".{stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial{ext}")


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def atomic_write(path: str, write: Callable[[IO], None], binary: bool = False, fsync: bool = True) -> None:
    """Call `write(file)` on a temporary file beside `path`, fsync it and `os.replace` it onto `path`.

    `fsync=False` skips the flush to the disk, for files that can be made again and are checked when read (the
    image cache): a power loss may then leave an empty file under the final name, never a partial one mid-run."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        _publish(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str, fsync: bool = True) -> Iterator[str]:
    """`with atomic_path(out) as tmp: writer(tmp)`: `tmp` is published onto `out` when the block ends normally (and
    the writer created it), and removed when the block raises, Ctrl-C included."""
    tmp = temp_path_beside(path)
    try:
        yield tmp
        if os.path.exists(tmp):
            _publish(tmp, path, fsync=fsync)
    except BaseException:
        _remove_quietly(tmp)
        raise


class AtomicFile:
    """A text (or binary) file written incrementally under a temporary name: `write()` as often as needed, then
    `commit()` to publish it under `path` or `abort()` to drop it. Used as a context manager it commits on a normal
    exit and aborts on an exception. Both are idempotent; `closed` says whether either has run."""

    def __init__(self, path: str, binary: bool = False, fsync: bool = True) -> None:
        self.path = os.fspath(path)
        self.tmp_path = temp_path_beside(self.path)
        self._fsync = fsync
        self._file: Optional[IO] = open(self.tmp_path, "wb" if binary else "w")

    @property
    def closed(self) -> bool:
        return self._file is None

    def write(self, data: Any) -> None:
        if self._file is None:
            raise ValueError(f"{self.path}: already committed or aborted")
        self._file.write(data)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def commit(self) -> str:
        """Publish what was written under `path`; returns `path`."""
        if self._file is None:
            return self.path
        f, self._file = self._file, None
        try:
            f.flush()
            if self._fsync:
                os.fsync(f.fileno())
            f.close()
            _publish(self.tmp_path, self.path)
        except BaseException:
            f.close()
            _remove_quietly(self.tmp_path)
            raise
        return self.path

    def abort(self) -> None:
        """Drop the temporary file; the final name is not touched."""
        if self._file is None:
            return
        f, self._file = self._file, None
        f.close()
        _remove_quietly(self.tmp_path)

    def __enter__(self) -> "AtomicFile":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def atomic_write_text(text: str, path: str) -> None:
    atomic_write(path, lambda f: f.write(text))


def write_json_atomic(obj: Any, path: str, indent=None) -> None:
    # one json.dumps call runs the C encoder (without indent); json.dump to a file runs the pure-Python one, ~3x slower
    text = json.dumps(obj, indent=indent)
    atomic_write(path, lambda f: f.write(text))
