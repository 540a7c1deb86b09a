"""Downloads that cannot hang: the one helper that fetches a file (model zoo checkpoints, detector weights).

`download(url, path, hash_prefix=...)` streams the file into a temporary file beside `path` (`fileio.atomic_write`),
checks the start of its SHA-256 where the caller knows it (torch.hub's and MMPose's `name-<hash prefix>.pth`
convention) and renames it onto `path` only then: an interrupted, failed or corrupted download never stays at the
final path. Every network operation (connect, each read) has its own timeout, given to urllib (`timeout=`), not set
process-wide with `socket.setdefaulttimeout`: a blocked network or a server that accepts and never answers fails in
seconds, a large file on a slow link still arrives.

Any failure (no network, refused connection, timeout, HTTP error, hash mismatch) and `HRNET_POSE_OFFLINE=1` raise
`DownloadError`, a `UserError` whose one-line message names the URL and whose hint says where to put the file by hand.
"""

import hashlib
import http.client
import logging
import os
import urllib.request
from typing import IO, Optional

from .errors import UserError
from .fileio import atomic_write

__all__ = ["DownloadError", "download", "is_offline", "OFFLINE_ENV", "DOWNLOAD_TIMEOUT_S"]

logger = logging.getLogger(__name__)

OFFLINE_ENV = "HRNET_POSE_OFFLINE"
# Per socket operation, not for the whole download: a 167 MB file on a slow link still arrives, a blocked network
# fails in seconds instead of hanging forever (urllib's default is no timeout).
DOWNLOAD_TIMEOUT_S = 30.0
_CHUNK = 1 << 20
# urllib's default "Python-urllib/x.y" is refused by some CDNs; torch.hub sends its own name for the same reason
_USER_AGENT = "hrnet_pose"


class DownloadError(UserError):
    """A file could not be downloaded (offline, refused, timed out, HTTP error, hash mismatch); nothing was saved.

    `url` and `path` are the source and the final path, `reason` what went wrong (the message without the URL and
    path); the hint says how to put the file there by hand."""

    def __init__(self, url: str, path: str, reason: str, hint: Optional[str] = None) -> None:
        super().__init__(f"cannot download {url} to {path} ({reason})", hint=hint or _by_hand(url, path))
        self.url, self.path, self.reason = url, path, reason


def _by_hand(url: str, path: str) -> str:
    return f"download {url} yourself (e.g. on a machine with internet) and put it at {path}"


def is_offline() -> bool:
    """True when `HRNET_POSE_OFFLINE` forbids downloads."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _progress_bar(total: Optional[int], enabled: bool, name: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name, dynamic_ncols=True)


def download(url: str, path: str, hash_prefix: Optional[str] = None, timeout: float = DOWNLOAD_TIMEOUT_S,
             progress: bool = True, hint: Optional[str] = None) -> str:
    """Fetch `url` to `path` (folders created) and return `path`.

    hash_prefix: the first hex digits of the file's SHA-256; a file whose hash starts otherwise is refused.
    timeout: seconds for each network operation (connect, each read), not for the whole transfer.
    hint: the `DownloadError`'s hint (default: download the URL by hand and put it at `path`).
    Raises `DownloadError` on any failure, with nothing left at `path` or beside it.
    """
    if is_offline():
        raise DownloadError(url, path, f"{OFFLINE_ENV} forbids downloads", hint)
    logger.info("downloading %s to %s", url, path)
    digest = hashlib.sha256()
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": _USER_AGENT}),
                                          timeout=timeout)
    except (OSError, ValueError) as err:  # URLError, HTTPError, timeouts, refused connections are OSErrors
        raise DownloadError(url, path, f"{type(err).__name__}: {err}", hint) from err

    def write(f: IO) -> None:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        received = 0
        bar = _progress_bar(total, progress, os.path.basename(path))
        try:
            while True:
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                digest.update(chunk)
                f.write(chunk)
                received += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
        if total is not None and received != total:
            # http.client's read(n) returns b"" when the server hangs up early instead of raising IncompleteRead
            raise DownloadError(url, path, f"the connection closed after {received} of {total} bytes; nothing was "
                                           f"saved", hint)
        if hash_prefix and not digest.hexdigest().startswith(hash_prefix.lower()):
            got = digest.hexdigest()[:len(hash_prefix)]
            raise DownloadError(url, path, f"the file fails the hash check: its SHA-256 should start with "
                                           f"{hash_prefix}, it starts with {got}; nothing was saved",
                                "retry; if it persists the server's file changed. " + (hint or _by_hand(url, path)))

    try:
        with response:
            atomic_write(path, write, binary=True)
    except DownloadError:
        raise
    except (OSError, ValueError, http.client.HTTPException) as err:  # a read timed out, a connection cut short
        raise DownloadError(url, path, f"{type(err).__name__}: {err}", hint) from err
    return path
