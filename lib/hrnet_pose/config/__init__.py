"""Configuration: `get_cfg()` defaults (official keys, strict MODEL.EXTRA), yaml/CLI merging with clear errors, and
the keypoint set that DATASET.DATASET implies (MPII-16 for the MPII format)."""

import argparse
import difflib
import os
from typing import Iterable, Optional, Sequence

from yacs.config import CfgNode as CN

from ..errors import UserError
from .defaults import get_cfg

__all__ = ["CN", "ConfigError", "get_cfg", "check_config", "load_config", "merge_opts", "update_config",
           "add_official_args", "apply_dataset_defaults", "MPII_DATASETS"]

FUSE_METHODS = ("SUM",)  # the only fusion HRNet builds (the official code reads FUSE_METHOD and always sums)
DATA_FORMATS = ("jpg", "jpeg", "png")  # images are read as files by the annotation's file_name


class ConfigError(UserError, ValueError):
    """A config file or override names a key that does not exist, gives a value of the wrong type, or a value the
    code does not implement."""


def _valid_keys(cfg: CN, dotted: str) -> list:
    node = cfg
    for part in dotted.split(".")[:-1]:
        if not isinstance(node, CN) or part not in node:
            return sorted(node.keys()) if isinstance(node, CN) else []
        node = node[part]
    return sorted(node.keys()) if isinstance(node, CN) else []


def _explain(cfg: CN, err: Exception, source: str) -> ConfigError:
    msg = str(err).strip("'\"")
    if "Non-existent" in msg and ":" in msg:
        key = msg.split(":", 1)[1].strip()
        valid = _valid_keys(cfg, key)
        close = difflib.get_close_matches(key.split(".")[-1], valid, n=1)
        guess = f" (did you mean '{'.'.join(key.split('.')[:-1] + close)}'?)" if close else ""
        return ConfigError(f"{source}: unknown config key '{key}'{guess}. Valid keys at that level: {valid}")
    return ConfigError(f"{source}: {msg}")


def merge_file(cfg: CN, path: str) -> None:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        cfg.merge_from_file(path)
    except (KeyError, ValueError, AssertionError) as err:
        raise _explain(cfg, err, path) from err


def merge_opts(cfg: CN, opts: Optional[Sequence[str]]) -> None:
    """Merge trailing `KEY VALUE` pairs (official CLI semantics)."""
    if not opts:
        return
    if len(opts) % 2:
        raise ConfigError(f"command-line overrides must be KEY VALUE pairs, got an odd number: {list(opts)}")
    try:
        cfg.merge_from_list(list(opts))
    except (KeyError, ValueError, AssertionError) as err:
        raise _explain(cfg, err, "command line") from err


def check_config(cfg: CN) -> None:
    """Values the yaml may spell but the code does not implement are errors, not silently ignored:
    MODEL.EXTRA.STAGE{2,3,4}.FUSE_METHOD must be 'SUM' and DATASET.DATA_FORMAT one of `DATA_FORMATS`."""
    for stage in ("STAGE2", "STAGE3", "STAGE4"):
        method = cfg.MODEL.EXTRA[stage].FUSE_METHOD
        if str(method).upper() not in FUSE_METHODS:
            raise ConfigError(f"MODEL.EXTRA.{stage}.FUSE_METHOD is {method!r}; valid: {list(FUSE_METHODS)} (HRNet "
                              "fuses branches by summing; no other method is built)")
    fmt = str(cfg.DATASET.DATA_FORMAT)
    if fmt.lower() == "zip":
        raise ConfigError(
            "DATASET.DATA_FORMAT is 'zip', but images are read from folders, not from zip archives: extract "
            f"images/<set>.zip into images/<set>/ and set DATASET.DATA_FORMAT jpg; valid: {list(DATA_FORMATS)}")
    if fmt.lower() not in DATA_FORMATS:
        raise ConfigError(f"DATASET.DATA_FORMAT is {fmt!r}; valid: {list(DATA_FORMATS)} (images are read by the "
                          "file_name in the annotations)")


MPII_DATASETS = ("mpii", "synthetic_mpii")  # DATASET.DATASET values in the MPII format (16 joints, PCKh)


def apply_dataset_defaults(cfg: CN) -> None:
    """Fill in what DATASET.DATASET implies: DATASET.KEYPOINT_SET '' becomes 'mpii' for the MPII-format datasets, so
    the official MPII yamls (which do not have the key) build a 16-joint model and dataset. Other values stay."""
    if not cfg.DATASET.KEYPOINT_SET and str(cfg.DATASET.DATASET).lower() in MPII_DATASETS:
        cfg.DATASET.KEYPOINT_SET = "mpii"


def load_config(path: Optional[str] = None, opts: Optional[Iterable[str]] = None, freeze: bool = True) -> CN:
    """Defaults, then `path`, then `opts`, then `check_config`; no DATA_DIR prefixing (see `update_config` for the
    official CLI flow)."""
    cfg = get_cfg()
    if path:
        merge_file(cfg, path)
    merge_opts(cfg, list(opts or []))
    check_config(cfg)
    apply_dataset_defaults(cfg)
    if freeze:
        cfg.freeze()
    return cfg


def update_config(cfg: CN, args: argparse.Namespace) -> CN:
    """Official `update_config`: merge `--cfg` and trailing opts, `check_config`, `apply_dataset_defaults`, apply
    `--modelDir/--logDir/--dataDir`, then join DATA_DIR onto DATASET.ROOT, MODEL.PRETRAINED and TEST.MODEL_FILE, and
    freeze."""
    cfg.defrost()
    merge_file(cfg, args.cfg)
    merge_opts(cfg, getattr(args, "opts", None))
    check_config(cfg)
    apply_dataset_defaults(cfg)
    if getattr(args, "modelDir", ""):
        cfg.OUTPUT_DIR = args.modelDir
    if getattr(args, "logDir", ""):
        cfg.LOG_DIR = args.logDir
    if getattr(args, "dataDir", ""):
        cfg.DATA_DIR = args.dataDir
    cfg.DATASET.ROOT = os.path.join(cfg.DATA_DIR, cfg.DATASET.ROOT)
    cfg.MODEL.PRETRAINED = os.path.join(cfg.DATA_DIR, cfg.MODEL.PRETRAINED) if cfg.MODEL.PRETRAINED else ""
    if cfg.TEST.MODEL_FILE:
        cfg.TEST.MODEL_FILE = os.path.join(cfg.DATA_DIR, cfg.TEST.MODEL_FILE)
    cfg.freeze()
    return cfg


def add_official_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The official train/test arguments: --cfg, trailing opts, --modelDir, --logDir, --dataDir, --prevModelDir."""
    parser.add_argument("--cfg", required=True, type=str, help="experiment config yaml")
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=None, help="KEY VALUE overrides")
    parser.add_argument("--modelDir", type=str, default="", help="overrides OUTPUT_DIR")
    parser.add_argument("--logDir", type=str, default="", help="overrides LOG_DIR")
    parser.add_argument("--dataDir", type=str, default="", help="overrides DATA_DIR")
    parser.add_argument("--prevModelDir", type=str, default="", help="official argument, unused")
    return parser
