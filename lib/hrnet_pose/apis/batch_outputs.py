"""What batch inference writes under `--out-dir` and how a rerun finds where it stopped.

    manifest.json       what the run is: config, weights and inputs (SHA-256), the settings that change results, and
                        the shard plan; a rerun with --resume must match it
    shards/NNNNNN.jsonl one JSON line per image of the shard, in input order: index, image_id, file, width, height and
                        `persons` (COCO results entries), or `error`; published only when the whole shard is done, so
                        an existing shard file is a finished shard
    results.json        COCO keypoint results of all images (image_id, category_id, keypoints, score, bbox [x, y, w,
                        h]): the entries the demo's predictions.json has for the same images
    results.jsonl       one line per image: image_id, file, width, height, persons [{bbox, score, keypoints [[x, y,
                        score], ...]}] (with --jsonl)
    errors.jsonl        one line per image that failed: file, image_id and the reason (empty when none did)
    vis/                drawn images (with --draw)

Every file goes through `hrnet_pose.fileio` (temporary name, renamed when complete). The merge reads the shards in
shard order, so the outputs do not depend on which process or Ray actor wrote which shard.
"""

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from ..errors import UserError
from ..fileio import AtomicFile, write_json_atomic
from .batch_data import Chunk
from .batch_inputs import InputItem

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
RESULT_KEYS = ("config_sha256", "weights_sha256", "inputs_sha256", "num_inputs", "settings", "shard_size",
               "chunk_size")


class ResumeMismatchError(UserError):
    """--resume on an output folder whose run used another config, weights, inputs or settings."""


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def inputs_sha256(items: Sequence[InputItem]) -> str:
    h = hashlib.sha256()
    for item in items:
        h.update(f"{item.source}\t{item.image_id!r}\t".encode("utf-8"))
        if item.boxes is not None:
            h.update(item.boxes.tobytes())
    return h.hexdigest()


def make_manifest(config_sha256: str, weights_sha256: str, items: Sequence[InputItem], settings: Dict[str, Any],
                  shard_size: int, chunk_size: int, num_shards: int) -> Dict[str, Any]:
    return {"version": MANIFEST_VERSION, "config_sha256": config_sha256, "weights_sha256": weights_sha256,
            "inputs_sha256": inputs_sha256(items), "num_inputs": len(items), "settings": settings,
            "shard_size": shard_size, "chunk_size": chunk_size, "num_shards": num_shards}


def _differences(old: Dict[str, Any], new: Dict[str, Any]) -> List[str]:
    out = []
    for key in RESULT_KEYS:
        if key == "settings":
            a, b = old.get(key, {}), new[key]
            out += [f"{k}: {a.get(k)!r} then, {b.get(k)!r} now" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif old.get(key) != new[key]:
            what = {"config_sha256": "config", "weights_sha256": "weights", "inputs_sha256": "inputs"}.get(key, key)
            out.append(f"{what}: {str(old.get(key))[:12]} then, {str(new[key])[:12]} now")
    return out


def open_run(out_dir: str, manifest: Dict[str, Any], resume: bool) -> bool:
    """Check or start the run in `out_dir`: True when it resumes an earlier run. A folder with a manifest needs
    --resume and the same config, weights, inputs and settings (ResumeMismatchError listing what differs); a new
    run writes the manifest."""
    path = os.path.join(out_dir, MANIFEST)
    if os.path.isfile(path):
        if not resume:
            raise UserError(f"{out_dir} already holds a run ({MANIFEST}); add --resume to finish it (finished shards "
                            "are kept), or choose another --out-dir")
        with open(path, encoding="utf-8") as f:
            old = json.load(f)
        diff = _differences(old, manifest)
        if diff:
            raise ResumeMismatchError(f"--resume: the run in {out_dir} was made with other {'; '.join(diff)}; "
                                      "rerun with the same config, weights, inputs and settings, or use another "
                                      "--out-dir")
        return True
    if resume:
        logger.info("--resume: no earlier run in %s, starting one", out_dir)
    write_json_atomic(manifest, path, indent=1)
    return False


def shard_path(out_dir: str, shard: int) -> str:
    return os.path.join(out_dir, "shards", f"{shard:06d}.jsonl")


class ShardWriter:
    """Collects the output lines of chunks (in any order) and publishes a shard when all its chunks are in."""

    def __init__(self, out_dir: str, shards: Sequence[Sequence[Chunk]]) -> None:
        self.out_dir = out_dir
        self.shards = shards
        self._pending: Dict[int, Dict[int, List[Dict[str, Any]]]] = {}

    def done(self, shard: int) -> bool:
        return os.path.isfile(shard_path(self.out_dir, shard))

    def add(self, chunk: Chunk, lines: List[Dict[str, Any]]) -> Optional[int]:
        """Keep `lines` of `chunk`; returns the shard number when this completed (and published) its shard."""
        pending = self._pending.setdefault(chunk.shard, {})
        pending[chunk.start] = lines
        if len(pending) < len(self.shards[chunk.shard]):
            return None
        del self._pending[chunk.shard]
        with AtomicFile(shard_path(self.out_dir, chunk.shard)) as f:
            for start in sorted(pending):
                for line in pending[start]:
                    f.write(json.dumps(line) + "\n")
        return chunk.shard


@dataclass
class MergeStats:
    images: int = 0
    persons: int = 0
    failed: int = 0


def _jsonl_person(entry: Dict[str, Any]) -> Dict[str, Any]:
    k = entry["keypoints"]
    return {"bbox": entry["bbox"], "score": entry["score"],
            "keypoints": [k[i:i + 3] for i in range(0, len(k), 3)]}


def merge_shards(out_dir: str, shards: Sequence[Sequence[Chunk]], jsonl: bool = False) -> MergeStats:
    """results.json (+ results.jsonl) and errors.jsonl from every shard, in shard order (module docstring). The
    results json is streamed entry by entry, so a million images need no more memory than one shard."""
    stats = MergeStats()
    results = AtomicFile(os.path.join(out_dir, "results.json"))
    lines_out = AtomicFile(os.path.join(out_dir, "results.jsonl")) if jsonl else None
    errors = AtomicFile(os.path.join(out_dir, "errors.jsonl"))
    try:
        results.write("[")
        first = True
        for s, chunks in enumerate(shards):
            expected = sum(c.stop - c.start for c in chunks)
            with open(shard_path(out_dir, s), encoding="utf-8") as f:
                records = [json.loads(line) for line in f if line.strip()]
            if len(records) != expected or [r["index"] for r in records] != list(range(chunks[0].start,
                                                                                      chunks[-1].stop)):
                raise UserError(f"{shard_path(out_dir, s)} holds {len(records)} lines for {expected} images; "
                                "delete it and rerun with --resume to make it again")
            for r in records:
                stats.images += 1
                if "error" in r:
                    stats.failed += 1
                    errors.write(json.dumps({"file": r["file"], "image_id": r["image_id"], "reason": r["error"]})
                                 + "\n")
                    continue
                for entry in r["persons"]:
                    results.write(("" if first else ", ") + json.dumps(entry))
                    first = False
                stats.persons += len(r["persons"])
                if lines_out is not None:
                    lines_out.write(json.dumps({"image_id": r["image_id"], "file": r["file"], "width": r["width"],
                                                "height": r["height"],
                                                "persons": [_jsonl_person(e) for e in r["persons"]]}) + "\n")
        results.write("]")
    except BaseException:
        for f in (results, lines_out, errors):
            if f is not None:
                f.abort()
        raise
    for f in (results, lines_out, errors):
        if f is not None:
            f.commit()
    return stats
