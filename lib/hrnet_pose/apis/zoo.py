"""Model zoo: names for the released HRNet and Lite-HRNet top-down COCO checkpoints and HRNet MPII checkpoints,
each with the config it must run with.

`PoseEstimator.from_pretrained(name)`, `tools/demo.py --weights NAME`, `tools/export.py --weights NAME` and
`tools/test.py ... TEST.MODEL_FILE NAME` take these names. An entry carries everything needed to run its checkpoint:
architecture (width, input size, heatmap sigma) and test settings (flip test, flip alignment, decoder, UDP), embedded
here so that the zoo works from a pip install without the repository's experiments/ folder.

Sources (HRNet W32/W48 and Lite-HRNet 18/30 x 256x192/384x288; reported AP on COCO val2017 with the detector boxes
of AP_H 56.4, flip test):
- MMPose (open-mmlab/mmpose, 1.x model zoo pages configs/body_2d_keypoint/topdown_heatmap/coco/hrnet{,_dark,_udp}
  _coco.md): plain (`MSRAHeatmap`, shift_heatmap=True), DARK (Zhang et al., CVPR 2020; `MSRAHeatmap(unbiased=True)`,
  blur kernel 11, shift_heatmap=True) and UDP (Huang et al., CVPR 2020; `UDPHeatmap`, whose decoder refines the
  argmax DARK-style with blur kernel 11, in MMPose 1.x's form: CODEC.DECODER dark_udp_mmpose; shift_heatmap=False).
  Direct URLs; the 8 hex digits after the last '-' of each file name are the start of its SHA-256 (MMPose's
  publish_model), checked after download as torch.hub does.
  The plain and UDP files are MMPose 1.x checkpoints, the DARK files MMPose 0.x ones; both layouts load
  (`models.foreign_layouts`).
- MMPose's Lite-HRNet-18/30 (Yu et al., CVPR 2021; 1.x model zoo page configs/body_2d_keypoint/topdown_heatmap/
  coco/litehrnet_coco.md, MMPose 0.x files under download.openmmlab.com/mmpose/top_down/litehrnet/): `MSRAHeatmap`,
  shift_heatmap=True, the plain decoder (argmax + quarter offset), as the HRNet plain entries.
- The official release (Sun et al., CVPR 2019; leoxiaobin/deep-high-resolution-net.pytorch README): files behind
  Google Drive / OneDrive folders that cannot be downloaded by a script; the entry names the file and where to get it.
- MPII (W32/W48 256x256; reported PCKh@0.5 Mean and Mean@0.1 on MPII val, flip test, in percent): MMPose 0.x plain
  and DARK files (configs/body/2d_kpt_sview_rgb_img/topdown_heatmap/mpii/hrnet{,_dark}_mpii.md, which give them as
  fractions: 0.900 is 90.0 here) and the official W32 file (README "Results on MPII val"; the official W48 MPII file
  has no reported number, so it has no entry).

Downloads go to `torch.hub.get_dir()/checkpoints` with a progress bar, through `hrnet_pose.download` (a timeout per
network operation, hash-checked, never a partial file); `HRNET_POSE_OFFLINE=1` forbids them.
"""

import logging
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple, Union

from ..config import CN, load_config, merge_opts
from ..download import OFFLINE_ENV, DownloadError, download  # noqa: F401 - OFFLINE_ENV is re-exported
from ..errors import UserError

logger = logging.getLogger(__name__)

OFFICIAL_DRIVE = ("Google Drive https://drive.google.com/drive/folders/1hOTihvbyIxsm5ygDpbUuJ7O_tzv4oXjC or "
                  "OneDrive https://1drv.ms/f/s!AhIXJn_J-blW231MH2krnmLq5kkQ, folder models/pytorch/pose_coco/")
OFFICIAL_AP_SOURCE = ("https://github.com/leoxiaobin/deep-high-resolution-net.pytorch#results-on-coco-val2017-with-"
                      "detector-having-human-ap-of-564-on-coco-val2017-dataset")
_MMPOSE_PAGE = "https://github.com/open-mmlab/mmpose/blob/main/configs/body_2d_keypoint/topdown_heatmap/coco/"
_MMPOSE_V1 = "https://download.openmmlab.com/mmpose/v1/body_2d_keypoint/topdown_heatmap/coco/"
_MMPOSE_V0 = "https://download.openmmlab.com/mmpose/top_down/hrnet/"


class ZooDownloadError(UserError):
    """A zoo checkpoint could not be fetched (offline, server error, hash mismatch) or is not where it should be."""


@dataclass(frozen=True)
class ZooEntry:
    """One released checkpoint and how to run it.

    `opts` holds every config key the checkpoint needs (architecture, input size, decoder) over the defaults.
    `url` is '' for manual downloads; `hash_prefix` is the start of the file's SHA-256 ('' when unknown);
    `reported_ap` is the reported main number (x100) of `dataset`: COCO val2017 AP with detector boxes, or MPII val
    PCKh@0.5 Mean (then `reported_mean_at_01` is its Mean@0.1).
    """

    name: str
    opts: Tuple[str, ...]
    url: str
    hash_prefix: str
    filename: str
    source: str
    reported_ap: float
    ap_source: str
    note: str = ""
    dataset: str = "coco"
    reported_mean_at_01: Optional[float] = None
    reported_parts: Tuple[Tuple[str, float], ...] = ()  # COCO-WholeBody: (part, AP x100) beside the whole-body AP

    def opt(self, key: str) -> Optional[str]:
        """The value `opts` gives `key`, or None."""
        pairs = dict(zip(self.opts[::2], self.opts[1::2]))
        return pairs.get(key)

    @property
    def input_size(self) -> Tuple[int, int]:
        """Network input (width, height)."""
        w, h = self.opt("MODEL.IMAGE_SIZE").strip("[]").split(",")
        return int(w), int(h)

    @property
    def decoder(self) -> str:
        """'default', 'dark', 'udp+dark' or 'udp+dark (MMPose 1.x)' as the README table says it."""
        decoder = self.opt("CODEC.DECODER")
        if self.opt("CODEC.UDP") == "True":
            return {"dark": "udp+dark", "dark_udp_mmpose": "udp+dark (MMPose 1.x)"}.get(decoder, "udp")
        return {"dark": "dark", "mmpose": "default (MMPose 1.x)"}.get(decoder, "default")


_WIDTHS = {
    32: ("[32, 64]", "[32, 64, 128]", "[32, 64, 128, 256]"),
    48: ("[48, 96]", "[48, 96, 192]", "[48, 96, 192, 384]"),
}
_SIZES = {"256x192": ("[192, 256]", "[48, 64]", "2"), "384x288": ("[288, 384]", "[72, 96]", "3")}

# Test settings per variant (see the module docstring for their sources). POST_PROCESS is the official quarter offset
# of the default decoder (DARK replaces it; UDP never adds it). UNBIASED_ENCODING is how the DARK files were trained
# (MMPose `unbiased_encoding=True`), which matters only when fine-tuning from them.
_VARIANT_OPTS = {
    "plain": ("CODEC.UDP", "False", "CODEC.DECODER", "default", "TEST.POST_PROCESS", "True",
              "TEST.SHIFT_HEATMAP", "True"),
    "dark": ("CODEC.UDP", "False", "CODEC.DECODER", "dark", "CODEC.DARK_BLUR_KERNEL", "11",
             "CODEC.UNBIASED_ENCODING", "True", "TEST.POST_PROCESS", "True", "TEST.SHIFT_HEATMAP", "True"),
    "udp": ("CODEC.UDP", "True", "CODEC.DECODER", "dark_udp_mmpose", "CODEC.DARK_BLUR_KERNEL", "11",
            "TEST.POST_PROCESS", "False", "TEST.SHIFT_HEATMAP", "False"),
}


def _opts(width: int, size: str, variant: str) -> Tuple[str, ...]:
    image, heatmap, sigma = _SIZES[size]
    s2, s3, s4 = _WIDTHS[width]
    return ("MODEL.NUM_JOINTS", "17", "MODEL.IMAGE_SIZE", image, "MODEL.HEATMAP_SIZE", heatmap, "MODEL.SIGMA", sigma,
            "MODEL.EXTRA.STAGE2.NUM_CHANNELS", s2, "MODEL.EXTRA.STAGE3.NUM_CHANNELS", s3,
            "MODEL.EXTRA.STAGE4.NUM_CHANNELS", s4, "DATASET.COLOR_RGB", "True", "TEST.FLIP_TEST", "True") \
        + _VARIANT_OPTS[variant]


def _mmpose(width: int, size: str, variant: str, url: str, ap: float, note: str = "") -> ZooEntry:
    name = f"hrnet_w{width}_{size}" + ("" if variant == "plain" else f"_{variant}")
    filename = url.rsplit("/", 1)[1]
    page = {"plain": "hrnet_coco.md", "dark": "hrnet_dark_coco.md", "udp": "hrnet_udp_coco.md"}[variant]
    return ZooEntry(
        name=name, opts=_opts(width, size, variant), url=url, hash_prefix=filename.rsplit("-", 1)[1].split("_")[0],
        filename=filename,
        source="MMPose " + ("0.x" if "/top_down/" in url else "1.x") + " model zoo", reported_ap=ap,
        ap_source=_MMPOSE_PAGE + page, note=note)


def _official(width: int, size: str, ap: float) -> ZooEntry:
    return ZooEntry(
        name=f"hrnet_w{width}_{size}_official", opts=_opts(width, size, "plain"), url="", hash_prefix="",
        filename=f"pose_hrnet_w{width}_{size}.pth",
        source="official HRNet release (manual download from " + OFFICIAL_DRIVE + ")", reported_ap=ap,
        ap_source=OFFICIAL_AP_SOURCE)


_MMPOSE_MPII_PAGE = ("https://github.com/open-mmlab/mmpose/blob/0.x/configs/body/2d_kpt_sview_rgb_img/topdown_heatmap/"
                     "mpii/")
OFFICIAL_MPII_SOURCE = "https://github.com/leoxiaobin/deep-high-resolution-net.pytorch#results-on-mpii-val"


def _mpii_opts(width: int, variant: str) -> Tuple[str, ...]:
    s2, s3, s4 = _WIDTHS[width]
    return ("DATASET.KEYPOINT_SET", "mpii", "MODEL.NUM_JOINTS", "16", "MODEL.IMAGE_SIZE", "[256, 256]",
            "MODEL.HEATMAP_SIZE", "[64, 64]", "MODEL.SIGMA", "2", "MODEL.EXTRA.STAGE2.NUM_CHANNELS", s2,
            "MODEL.EXTRA.STAGE3.NUM_CHANNELS", s3, "MODEL.EXTRA.STAGE4.NUM_CHANNELS", s4, "DATASET.COLOR_RGB", "True",
            "TEST.FLIP_TEST", "True") + _VARIANT_OPTS[variant]


def _mmpose_mpii(width: int, variant: str, url: str, mean: float, mean_at_01: float) -> ZooEntry:
    filename = url.rsplit("/", 1)[1]
    return ZooEntry(
        name=f"hrnet_w{width}_mpii_256x256" + ("" if variant == "plain" else f"_{variant}"),
        opts=_mpii_opts(width, variant), url=url,
        hash_prefix=filename.rsplit("-", 1)[1].split("_")[0], filename=filename, source="MMPose 0.x model zoo",
        reported_ap=mean, ap_source=_MMPOSE_MPII_PAGE + ("hrnet_mpii.md" if variant == "plain" else
                                                        "hrnet_dark_mpii.md"),
        dataset="mpii", reported_mean_at_01=mean_at_01)
_MMPOSE_LITEHRNET = "https://download.openmmlab.com/mmpose/top_down/litehrnet/"


def _litehrnet(depth: int, size: str, filename: str, ap: float) -> ZooEntry:
    """MMPose 0.x Lite-HRNet file; AP from the MMPose 1.x page (0.x's page gives 64.3 / 67.7 / 67.5 / 70.0)."""
    image, heatmap, sigma = _SIZES[size]
    modules = {18: "[2, 4, 2]", 30: "[3, 8, 3]"}[depth]
    opts = ("MODEL.NAME", "lite_hrnet", "MODEL.NUM_JOINTS", "17", "MODEL.IMAGE_SIZE", image, "MODEL.HEATMAP_SIZE",
            heatmap, "MODEL.SIGMA", sigma, "MODEL.EXTRA.LITE_HRNET.STAGES.NUM_MODULES", modules,
            "DATASET.COLOR_RGB", "True", "TEST.FLIP_TEST", "True") + _VARIANT_OPTS["plain"]
    return ZooEntry(
        name=f"litehrnet_{depth}_{size}", opts=opts,
        url=_MMPOSE_LITEHRNET + filename, hash_prefix=filename.rsplit("-", 1)[1].split("_")[0], filename=filename,
        source="MMPose 0.x model zoo", reported_ap=ap, ap_source=_MMPOSE_PAGE + "litehrnet_coco.md")


_MMPOSE_WB_PAGE = ("https://github.com/open-mmlab/mmpose/blob/main/configs/wholebody_2d_keypoint/topdown_heatmap/"
                   "coco-wholebody/")


def _wholebody(width: int, size: str, variant: str, filename: str, parts: Tuple[float, ...], note: str = "") -> ZooEntry:
    """MMPose's HRNet on COCO-WholeBody (133 keypoints; MMPose 0.x files, which both MMPose versions distribute).
    `parts`: body, foot, face, hand, whole-body AP x100 of the MMPose 1.x page (COCO-WholeBody v1.0 val, detector
    boxes of AP_H 56.4, flip test). MMPose tests them with OKS-NMS at 0.9 (its CocoWholeBodyMetric / 0.x oks_thr).
    The plain ones decode as MMPose 1.x does (CODEC.DECODER mmpose: its quarter-offset border rule), so that their
    keypoints are MMPose's `inference_topdown`'s (tests/apis/test_zoo_wholebody.py)."""
    base = _opts(width, size, variant)
    opts = tuple("133" if i and base[i - 1] == "MODEL.NUM_JOINTS" else
                 "mmpose" if i and base[i - 1] == "CODEC.DECODER" and v == "default" else v for i, v in enumerate(base))
    opts += ("DATASET.KEYPOINT_SET", "coco_wholebody", "TEST.OKS_THRE", "0.9")
    body, foot, face, hand, whole = parts
    return ZooEntry(
        name=f"hrnet_w{width}_wholebody_{size}" + ("" if variant == "plain" else f"_{variant}"), opts=opts,
        url=_MMPOSE_V0 + filename, hash_prefix=filename.rsplit("-", 1)[1].split("_")[0], filename=filename,
        source="MMPose 0.x model zoo", reported_ap=whole,
        ap_source=_MMPOSE_WB_PAGE + ("hrnet_coco-wholebody.md" if variant == "plain" else
                                     "hrnet_dark_coco-wholebody.md"),
        note=note, dataset="coco_wholebody",
        reported_parts=(("body", body), ("foot", foot), ("face", face), ("hand", hand)))


_WB_W32_NOTE = "the MMPose 0.x page reports whole-body AP 55.3 for the same file (body 70.0, foot 56.7, face 63.7)"
_WB_DARK_NOTE = ("pre-trained on COCO, then fine-tuned on COCO-WholeBody; MMPose 0.x tested it with blur kernel 17, "
                 "MMPose 1.x with the default 11 (the entry uses 11)")

_DARK_384_NOTE = ("MMPose 0.x tested it with blur kernel 17 (modulate_kernel), MMPose 1.x with the default 11 (the "
                  "same reported AP); the entry uses 11")

_ENTRIES: List[ZooEntry] = [
    _mmpose(32, "256x192", "plain", _MMPOSE_V1 + "td-hm_hrnet-w32_8xb64-210e_coco-256x192-81c58e40_20220909.pth", 74.9),
    _mmpose(32, "384x288", "plain", _MMPOSE_V1 + "td-hm_hrnet-w32_8xb64-210e_coco-384x288-ca5956af_20220909.pth", 76.1),
    _mmpose(48, "256x192", "plain", _MMPOSE_V1 + "td-hm_hrnet-w48_8xb32-210e_coco-256x192-0e67c616_20220913.pth", 75.6),
    _mmpose(48, "384x288", "plain", _MMPOSE_V1 + "td-hm_hrnet-w48_8xb32-210e_coco-384x288-c161b7de_20220915.pth", 76.7),
    _mmpose(32, "256x192", "dark", _MMPOSE_V0 + "hrnet_w32_coco_256x192_dark-07f147eb_20200812.pth", 75.7),
    _mmpose(32, "384x288", "dark", _MMPOSE_V0 + "hrnet_w32_coco_384x288_dark-307dafc2_20210203.pth", 76.6,
            _DARK_384_NOTE),
    _mmpose(48, "256x192", "dark", _MMPOSE_V0 + "hrnet_w48_coco_256x192_dark-8cba3197_20200812.pth", 76.4),
    _mmpose(48, "384x288", "dark", _MMPOSE_V0 + "hrnet_w48_coco_384x288_dark-e881a4b6_20210203.pth", 77.2,
            _DARK_384_NOTE),
    _mmpose(32, "256x192", "udp",
            _MMPOSE_V1 + "td-hm_hrnet-w32_udp-8xb64-210e_coco-256x192-73ede547_20220914.pth", 76.2),
    _mmpose(32, "384x288", "udp",
            _MMPOSE_V1 + "td-hm_hrnet-w32_udp-8xb64-210e_coco-384x288-9a3f7c85_20220914.pth", 76.8),
    _mmpose(48, "256x192", "udp",
            _MMPOSE_V1 + "td-hm_hrnet-w48_udp-8xb32-210e_coco-256x192-3feaef8f_20220913.pth", 76.8),
    _mmpose(48, "384x288", "udp",
            _MMPOSE_V1 + "td-hm_hrnet-w48_udp-8xb32-210e_coco-384x288-70d7ab01_20220913.pth", 77.3),
    _official(32, "256x192", 74.4),
    _official(32, "384x288", 75.8),
    _official(48, "256x192", 75.1),
    _official(48, "384x288", 76.3),
    _mmpose_mpii(32, "plain", _MMPOSE_V0 + "hrnet_w32_mpii_256x256-6c4f923f_20200812.pth", 90.0, 33.4),
    _mmpose_mpii(48, "plain", _MMPOSE_V0 + "hrnet_w48_mpii_256x256-92cab7bd_20200812.pth", 90.1, 33.7),
    _mmpose_mpii(32, "dark", _MMPOSE_V0 + "hrnet_w32_mpii_256x256_dark-f1601c5b_20200927.pth", 90.4, 35.4),
    _mmpose_mpii(48, "dark", _MMPOSE_V0 + "hrnet_w48_mpii_256x256_dark-0decd39f_20200927.pth", 90.5, 36.0),
    ZooEntry(
        name="hrnet_w32_mpii_256x256_official",
        opts=_mpii_opts(32, "plain"), url="", hash_prefix="", filename="pose_hrnet_w32_256x256.pth",
        source="official HRNet release (manual download from " + OFFICIAL_DRIVE.replace("pose_coco", "pose_mpii")
               + ")", reported_ap=90.3, ap_source=OFFICIAL_MPII_SOURCE, dataset="mpii", reported_mean_at_01=37.7),
    _litehrnet(18, "256x192", "litehrnet18_coco_256x192-6bace359_20211230.pth", 64.2),
    _litehrnet(18, "384x288", "litehrnet18_coco_384x288-8d4dac48_20211230.pth", 67.6),
    _litehrnet(30, "256x192", "litehrnet30_coco_256x192-4176555b_20210626.pth", 67.6),
    _litehrnet(30, "384x288", "litehrnet30_coco_384x288-a3aef5c4_20210626.pth", 70.0),
    _wholebody(32, "256x192", "plain", "hrnet_w32_coco_wholebody_256x192-853765cd_20200918.pth",
               (67.8, 54.3, 63.0, 46.7, 53.6), _WB_W32_NOTE),
    _wholebody(32, "384x288", "plain", "hrnet_w32_coco_wholebody_384x288-78cacac3_20200922.pth",
               (70.0, 58.5, 72.6, 51.5, 58.6)),
    _wholebody(48, "256x192", "plain", "hrnet_w48_coco_wholebody_256x192-643e18cb_20200922.pth",
               (70.1, 67.5, 65.6, 53.5, 57.9)),
    _wholebody(48, "384x288", "plain", "hrnet_w48_coco_wholebody_384x288-6e061c6a_20200922.pth",
               (72.2, 69.6, 77.6, 58.7, 63.2)),
    _wholebody(32, "256x192", "dark", "hrnet_w32_coco_wholebody_256x192_dark-469327ef_20200922.pth",
               (69.3, 56.4, 73.7, 50.3, 58.2)),
    _wholebody(48, "384x288", "dark", "hrnet_w48_coco_wholebody_384x288_dark-f5726563_20200918.pth",
               (74.2, 70.7, 84.1, 60.2, 66.1), _WB_DARK_NOTE),
]

ZOO: Dict[str, ZooEntry] = {e.name: e for e in _ENTRIES}


def is_zoo_name(spec: str) -> bool:
    """True when `spec` names a zoo entry (and is not an existing local file)."""
    return isinstance(spec, str) and spec in ZOO and not os.path.exists(spec)


def get_entry(name: str) -> ZooEntry:
    """The entry called `name`; a UserError listing the valid names otherwise."""
    if name not in ZOO:
        raise UserError(f"unknown model zoo name {name!r}; valid names: {', '.join(sorted(ZOO))}")
    return ZOO[name]


def entry_config(name_or_entry: Union[str, ZooEntry]) -> CN:
    """The frozen config the entry's checkpoint runs with: defaults + the entry's embedded keys."""
    entry = name_or_entry if isinstance(name_or_entry, ZooEntry) else get_entry(name_or_entry)
    return load_config(None, list(entry.opts))


def checkpoint_dir() -> str:
    """torch.hub's checkpoint folder (TORCH_HOME / ~/.cache/torch/hub/checkpoints), where downloads go."""
    import torch.hub

    return os.path.join(torch.hub.get_dir(), "checkpoints")


def _manual_file(entry: ZooEntry, cached: str) -> str:
    # the official layout (models/pytorch/pose_coco/ or pose_mpii/) relative to the working directory, then the cache
    folder = os.path.join("models", "pytorch", f"pose_{entry.dataset}")
    for path in (os.path.join(folder, entry.filename), cached):
        if os.path.isfile(path):
            return path
    raise ZooDownloadError(
        f"{entry.name}: {entry.filename} is not downloaded; it cannot be fetched by a script",
        hint=f"download it by hand from {OFFICIAL_DRIVE} and put it at {cached} (or {folder}/), "
             f"or pass the file itself: --weights /path/to/{entry.filename}")


def resolve_weights(spec: str, progress: bool = True) -> str:
    """A local path as is; a zoo name -> the path of its checkpoint, downloaded (hash-checked) on first use.

    Raises `ZooDownloadError` when offline, on a server/network error or a hash mismatch (naming the URL, the cache
    path and how to pass a local file), and `UserError` for a name that is neither a file nor a zoo entry.
    """
    if os.path.exists(spec):
        return spec
    if spec not in ZOO:
        raise UserError(f"weights {spec!r} not found: give a .pth or .onnx file that exists, or a model zoo name "
                        f"({', '.join(sorted(ZOO))})")
    entry = get_entry(spec)
    cached = os.path.join(checkpoint_dir(), entry.filename)
    if not entry.url:
        return _manual_file(entry, cached)
    if os.path.isfile(cached):
        return cached
    how = (f"download {entry.url} yourself (e.g. on a machine with internet) and put it at {cached}, or pass the "
           f"file itself: --weights /path/to/{entry.filename}")
    try:
        # a per-request timeout; the file reaches `cached` only whole and after the hash check
        download(entry.url, cached, hash_prefix=entry.hash_prefix or None, progress=progress, hint=how)
    except DownloadError as err:
        raise ZooDownloadError(f"{entry.name}: {err}", hint=err.hint) from err
    return cached


def merge_entry(cfg: CN, name_or_entry: Union[str, ZooEntry]) -> CN:
    """A frozen copy of `cfg` with the entry's keys (architecture, input size, flip alignment, decoder) merged in;
    each value that changes is logged, since running a checkpoint with other settings gives other keypoints."""
    entry = name_or_entry if isinstance(name_or_entry, ZooEntry) else get_entry(name_or_entry)
    out = cfg.clone()
    out.defrost()
    for key, value in zip(entry.opts[::2], entry.opts[1::2]):
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        old = node[leaf]
        merge_opts(out, [key, value])
        if node[leaf] != old:
            logger.warning("%s: %s %s -> %s (the zoo entry's setting)", entry.name, key, old, node[leaf])
    return load_config(out)


def apply_zoo_weights(cfg: CN) -> CN:
    """`tools/test.py` support: when TEST.MODEL_FILE is a zoo name (possibly behind DATA_DIR), return a copy of
    `cfg` with the entry merged in (`merge_entry`) and TEST.MODEL_FILE set to the downloaded checkpoint. Other
    configs are returned unchanged."""
    value = cfg.TEST.MODEL_FILE
    name = value if is_zoo_name(value) else os.path.basename(value)
    if not value or os.path.exists(value) or name not in ZOO:
        return cfg
    out = merge_entry(cfg, name)
    out.defrost()
    out.TEST.MODEL_FILE = resolve_weights(name)
    out.freeze()
    return out


def apply_zoo_pretrained(cfg: CN) -> CN:
    """`tools/train.py` support: when MODEL.PRETRAINED is a zoo name (possibly behind DATA_DIR), return a copy of
    `cfg` with MODEL.PRETRAINED set to the downloaded checkpoint, to fine-tune from (onto another keypoint set too:
    the head is re-initialised when the keypoint count differs). The config's architecture stays the user's: it must
    be the entry's for the tensors to fit, and `load_pretrained` names any that do not. Others pass unchanged."""
    value = cfg.MODEL.PRETRAINED
    name = value if is_zoo_name(value) else os.path.basename(value)
    if not value or os.path.exists(value) or name not in ZOO:
        return cfg
    out = cfg.clone()
    out.defrost()
    out.MODEL.PRETRAINED = resolve_weights(name)
    out.freeze()
    logger.info("MODEL.PRETRAINED %s: the zoo entry's checkpoint %s", name, out.MODEL.PRETRAINED)
    return out


def _markdown_rows(dataset: str, score_columns: str, manual_place: str) -> List[str]:
    """Table rows for the entries of `dataset`: name, input, decoder, the reported number(s), source, download."""
    rows = [f"| name | input (h x w) | decoder | {score_columns} | source | download |",
            "|---|---|---|" + "---|" * (score_columns.count("|") + 1) + "---|---|"]
    for e in (e for e in _ENTRIES if e.dataset == dataset):
        w, h = e.input_size
        where = f"[{e.filename}]({e.url})" if e.url else f"{e.filename} by hand ({manual_place})"
        score = f"[{e.reported_ap:.1f}]({e.ap_source})"
        if dataset == "mpii":
            score += f" | {e.reported_mean_at_01:.1f}"
        rows.append(f"| `{e.name}` | {h}x{w} | {e.decoder} | {score} | {e.source.split(' (')[0]} | {where} |")
    return rows


def markdown_table() -> str:
    """The README's 'Pretrained models' table, generated from `ZOO`."""
    return "\n".join(_markdown_rows("coco", "COCO val2017 AP (det. boxes)", OFFICIAL_DRIVE.split(" or ")[0]))


def markdown_table_wholebody() -> str:
    """The README's COCO-WholeBody table, generated from `ZOO`: whole-body AP, then body / foot / face / hand AP."""
    rows = ["| name | input (h x w) | decoder | whole-body AP | body | foot | face | hand | source | download |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for e in (e for e in _ENTRIES if e.dataset == "coco_wholebody"):
        w, h = e.input_size
        parts = " | ".join(f"{v:.1f}" for _, v in e.reported_parts)
        rows.append(f"| `{e.name}` | {h}x{w} | {e.decoder} | [{e.reported_ap:.1f}]({e.ap_source}) | {parts} | "
                    f"{e.source} | [{e.filename}]({e.url}) |")
    return "\n".join(rows)


def markdown_table_mpii() -> str:
    """The README's MPII table, generated from `ZOO`."""
    return "\n".join(_markdown_rows("mpii", "MPII val PCKh Mean | Mean@0.1", "models/pytorch/pose_mpii/"))
