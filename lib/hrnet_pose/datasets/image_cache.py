"""A disk cache of decoded images (DATASET.IMAGE_CACHE_DIR): decode each JPEG once, memory-map it afterwards.

Decoding is most of the cost of a training sample on a CPU: 3.4-4 ms of 6.4 ms per sample for the real COCO fixture
images on one core, and reduced decoding (`datasets.fast_decode`) only helps boxes several times larger than the
network input, which few COCO persons are at 256x192. Every epoch decodes the same files again. This cache stores
each image the first time it is read, exactly as the official reader decodes it (`cv2.imread` with EXIF orientation
ignored, BGR uint8), as an uncompressed `.npy` file, and later reads memory-map it: a read costs ~0.15 ms and the
warp touches only the pages it samples. Samples are therefore bit-identical to the plain path's. DataLoader
workers share the files through the operating system's page cache, so there is one copy in RAM, not one per worker.

The cost is disk space: height x width x 3 bytes per image (0.9 MB for a 640x480 COCO image; about 52 GB for the
56,599 person images of COCO train2017, 2.4 GB for val2017). `ImageCache.reserve` checks the free space before a
run starts and says how much is needed. Entries are named by a hash of the absolute path, the file's size and its
modification time, so an edited or replaced image is decoded again; delete the folder to reclaim the space.
Writes go to a temporary file renamed into place, so concurrent workers and crashes never leave a partial entry; an
entry that cannot be read back (a crash without a flush, a full disk) is decoded again with a warning.
"""

import hashlib
import logging
import os
import shutil
from typing import Iterable, Optional, Tuple

import numpy as np

from ..errors import UserError
from ..fileio import atomic_write
from .image_io import read_image_reduced

logger = logging.getLogger(__name__)

NPY_HEADER_BYTES = 128  # numpy's .npy header for a 3-d uint8 array


class ImageCacheError(UserError):
    """The image cache folder cannot be used (not writable, or too little free space)."""


def image_bytes(width: int, height: int) -> int:
    """Bytes of one cache entry for a width x height colour image."""
    return int(width) * int(height) * 3 + NPY_HEADER_BYTES


class ImageCache:
    """Decoded images under `folder`, keyed by (absolute path, size, mtime). `read(path)` -> BGR uint8 [H, W, 3]
    (a read-only memory map) or None when the image itself cannot be read."""

    def __init__(self, folder: str):
        self.folder = os.path.abspath(os.path.expanduser(folder))
        try:
            os.makedirs(self.folder, exist_ok=True)
        except OSError as err:
            raise ImageCacheError(f"DATASET.IMAGE_CACHE_DIR {self.folder!r} cannot be created: {err.strerror}; "
                                  "set it to a writable folder, or '' to decode every time") from err
        if not os.access(self.folder, os.W_OK):
            raise ImageCacheError(f"DATASET.IMAGE_CACHE_DIR {self.folder!r} is not writable; set it to a writable "
                                  "folder, or '' to decode every time")
        self.hits = 0
        self.misses = 0
        self._store_failed = False

    def entry_path(self, path: str) -> Optional[str]:
        """The cache file of image `path` in its current version, or None when the image does not exist."""
        path = os.path.abspath(path)
        try:
            st = os.stat(path)
        except OSError:
            return None
        key = hashlib.sha1(f"{path}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()
        return os.path.join(self.folder, key[:2], key + ".npy")

    def read(self, path: str) -> Optional[np.ndarray]:
        """The image as the official reader decodes it (BGR uint8 [H, W, 3]); None when it cannot be read."""
        entry = self.entry_path(path)
        if entry is None:
            return None
        if os.path.exists(entry):
            image = _load_entry(entry)
            if image is not None:
                self.hits += 1
                return image
            logger.warning("image cache entry %s for %s is unreadable (an interrupted write?): decoding again",
                           entry, path)
        image = read_image_reduced(path, 1)  # the official decode (BGR, EXIF orientation ignored)
        if image is None:
            return None
        self.misses += 1
        try:
            _store_entry(entry, image)
        except OSError as err:
            if not self._store_failed:  # e.g. a full disk: say it once, then keep decoding without storing
                logger.warning("image cache: could not store %s (%s); such images stay uncached", entry, err)
            self._store_failed = True
        return image

    def reserve(self, sizes: Iterable[Tuple[str, int, int]]) -> Tuple[int, int]:
        """Check that the entries still missing for (path, width, height) fit on the disk -> (bytes missing, bytes
        free). Raises ImageCacheError with both figures when they do not."""
        missing = 0
        for path, width, height in sizes:
            entry = self.entry_path(path)
            if entry is not None and not os.path.exists(entry):
                missing += image_bytes(width, height)
        free = shutil.disk_usage(self.folder).free
        check_space(missing, free, self.folder)
        return missing, free


def check_space(needed: int, free: int, folder: str, margin: float = 1.05) -> None:
    """Raise ImageCacheError when `needed` bytes (+5%) do not fit in the `free` bytes of `folder`."""
    if needed * margin > free:
        raise ImageCacheError(
            f"DATASET.IMAGE_CACHE_DIR {folder!r}: the decoded images need {needed / 1e9:.2f} GB more but only "
            f"{free / 1e9:.2f} GB are free; point it at a larger disk, free space, or set it to '' to decode "
            "every time")


def _load_entry(entry: str) -> Optional[np.ndarray]:
    try:
        image = np.load(entry, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        return None
    return image


def _store_entry(entry: str, image: np.ndarray) -> None:
    """Write `image` to `entry` through a temporary file and a rename (no partial entry is ever visible); not
    flushed to the disk: an entry lost to a power cut is decoded again."""
    atomic_write(entry, lambda f: np.save(f, np.ascontiguousarray(image), allow_pickle=False), binary=True,
                 fsync=False)
