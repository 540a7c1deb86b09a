"""Configuration: `get_cfg()` defaults (official keys, strict MODEL.EXTRA), yaml/CLI merging with clear errors, and
the keypoint set that DATASET.DATASET implies (MPII-16 for the MPII format)."""

import argparse
import difflib
import os
from typing import Iterable, Optional, Sequence, Union

import yaml
from yacs.config import CfgNode as CN

from ..errors import ConfigError
from .defaults import default, get_cfg

__all__ = ["CN", "ConfigError", "default", "get_cfg", "check_config", "load_config", "merge_opts", "update_config",
           "add_official_args", "apply_dataset_defaults", "MPII_DATASETS", "PUBLIC_SET_DATASETS"]

FUSE_METHODS = ("SUM",)  # the only fusion HRNet builds (the official code reads FUSE_METHOD and always sums)
DATA_FORMATS = ("jpg", "jpeg", "png")  # images are read as files by the annotation's file_name


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


def check_fuse_method(stage: str, method: str) -> None:
    """MODEL.EXTRA.<stage>.FUSE_METHOD must be one of `FUSE_METHODS` (any case): checked for every config and by the
    HRNet constructor, which may be built without one."""
    if str(method).upper() not in FUSE_METHODS:
        raise ConfigError(f"MODEL.EXTRA.{stage}.FUSE_METHOD is {method!r}; valid: {list(FUSE_METHODS)} (HRNet fuses "
                          "branches by summing, as in the official model; no other method is built)")


def check_config(cfg: CN) -> None:
    """Values the yaml may spell but the code does not implement are errors, not silently ignored:
    MODEL.EXTRA.STAGE{2,3,4}.FUSE_METHOD must be 'SUM' and DATASET.DATA_FORMAT one of `DATA_FORMATS`."""
    for stage in ("STAGE2", "STAGE3", "STAGE4"):
        check_fuse_method(stage, cfg.MODEL.EXTRA[stage].FUSE_METHOD)
    fmt = str(cfg.DATASET.DATA_FORMAT)
    if fmt.lower() == "zip":
        raise ConfigError(
            "DATASET.DATA_FORMAT is 'zip', but images are read from folders, not from zip archives: extract "
            f"images/<set>.zip into images/<set>/ and set DATASET.DATA_FORMAT jpg; valid: {list(DATA_FORMATS)}")
    if fmt.lower() not in DATA_FORMATS:
        raise ConfigError(f"DATASET.DATA_FORMAT is {fmt!r}; valid: {list(DATA_FORMATS)} (images are read by the "
                          "file_name in the annotations)")


MPII_DATASETS = ("mpii", "synthetic_mpii")  # DATASET.DATASET values in the MPII format (16 joints, PCKh)
# DATASET.DATASET values of the built-in public keypoint sets (datasets.public_sets), each with its own keypoint set
PUBLIC_SET_DATASETS = ("coco_wholebody", "crowdpose", "ap10k", "ochuman")


def _sets_dataset(path: Optional[str], opts: Sequence[str]) -> bool:
    """True when the yaml file or the `KEY VALUE` overrides write DATASET.DATASET themselves (its default, 'mpii', is
    only the official default kept for type compatibility and says nothing about the data)."""
    if any(key == "DATASET.DATASET" for key in list(opts)[::2]):
        return True
    if not path:
        return False
    with open(path) as f:
        spec = yaml.safe_load(f) or {}
    return isinstance(spec, dict) and isinstance(spec.get("DATASET"), dict) and "DATASET" in spec["DATASET"]


def apply_dataset_defaults(cfg: CN, dataset_given: bool = True) -> None:
    """Fill in what DATASET.DATASET implies: DATASET.KEYPOINT_SET '' becomes 'mpii' for the MPII-format datasets, so
    the official MPII yamls (which do not have the key) build a 16-joint model and dataset. Only when the config
    names its dataset (`dataset_given`): configs that leave DATASET.DATASET at its default keep COCO-17."""
    if dataset_given and not cfg.DATASET.KEYPOINT_SET and str(cfg.DATASET.DATASET).lower() in MPII_DATASETS:
        cfg.DATASET.KEYPOINT_SET = "mpii"
    if not cfg.DATASET.KEYPOINT_SET and str(cfg.DATASET.DATASET).lower() in PUBLIC_SET_DATASETS:
        cfg.DATASET.KEYPOINT_SET = str(cfg.DATASET.DATASET).lower()  # the public dataset's own keypoint set


def _join_data_dir(cfg: CN) -> None:
    """Official semantics: DATA_DIR is a prefix joined onto DATASET.ROOT, MODEL.PRETRAINED and TEST.MODEL_FILE."""
    cfg.DATASET.ROOT = os.path.join(cfg.DATA_DIR, cfg.DATASET.ROOT)
    cfg.MODEL.PRETRAINED = os.path.join(cfg.DATA_DIR, cfg.MODEL.PRETRAINED) if cfg.MODEL.PRETRAINED else ""
    if cfg.TEST.MODEL_FILE:
        cfg.TEST.MODEL_FILE = os.path.join(cfg.DATA_DIR, cfg.TEST.MODEL_FILE)


def load_config(source: Union[str, os.PathLike, CN, None] = None, opts: Optional[Iterable[str]] = None,
                freeze: bool = True, *, data_dir: str = "", output_dir: str = "", log_dir: str = "") -> CN:
    """The one way to build a config: defaults, then `source`, then `opts` (trailing `KEY VALUE` pairs), then the
    `output_dir` / `log_dir` / `data_dir` overrides (the official --modelDir/--logDir/--dataDir), then DATA_DIR joined
    onto DATASET.ROOT, MODEL.PRETRAINED and TEST.MODEL_FILE, then `check_config` and `apply_dataset_defaults`; frozen
    unless `freeze` is False.

    `source` is a yaml path, or a CfgNode that is already a resolved config (one made by this function, a zoo entry's,
    the one stored in an exported .onnx file): its DATA_DIR was joined already and is not joined again.
    """
    cfg = get_cfg()
    resolved = isinstance(source, CN)
    if resolved:
        try:
            cfg.merge_from_other_cfg(source)
        except (KeyError, ValueError, AssertionError) as err:
            raise _explain(cfg, err, "the given config") from err
    elif source:
        merge_file(cfg, os.fspath(source))
    merge_opts(cfg, list(opts or []))
    if output_dir:
        cfg.OUTPUT_DIR = output_dir
    if log_dir:
        cfg.LOG_DIR = log_dir
    if data_dir:
        cfg.DATA_DIR = data_dir
    if not resolved or data_dir:
        _join_data_dir(cfg)
    check_config(cfg)
    if not resolved:  # a resolved config had its keypoint set filled in when it was made
        apply_dataset_defaults(cfg, _sets_dataset(os.fspath(source) if source else None, list(opts or [])))
    if freeze:
        cfg.freeze()
    return cfg


def update_config(cfg: CN, args: argparse.Namespace) -> CN:
    """Official `update_config(cfg, args)`: `cfg` becomes `load_config(--cfg, opts, --dataDir/--modelDir/--logDir)`."""
    loaded = load_config(args.cfg, getattr(args, "opts", None), data_dir=getattr(args, "dataDir", ""),
                         output_dir=getattr(args, "modelDir", ""), log_dir=getattr(args, "logDir", ""))
    cfg.defrost()
    cfg.merge_from_other_cfg(loaded)
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
