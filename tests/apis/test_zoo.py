"""Model zoo: every entry builds offline with the right architecture and decoder flags; downloads are hash-checked,
offline use fails with one clear message, and a cached MMPose checkpoint runs through PoseEstimator.from_pretrained."""

import hashlib
import os
import re

import numpy as np
import pytest
import torch

from hrnet_pose.apis import zoo
from hrnet_pose.codecs.heatmap import build_codec
from hrnet_pose.config import load_config
from hrnet_pose.errors import UserError, run_cli
from hrnet_pose.models import build_model

from clitest import load_tool
from testpaths import EXPERIMENTS, MINI, REPO
from zoo_testlib import cache_mmpose_checkpoint

IMAGE = os.path.join(MINI, "images")
PARAMS = {32: 28_536_113, 48: 63_595_745}  # official pose_hrnet_w32 / w48 (tests/models/test_pose_hrnet.py)
LITE_PARAMS = {18: 1_130_769, 30: 1_763_717}  # MMPose 1.3.2 LiteHRNet + HeatmapHead (tests/fixtures/SOURCES.md)
HRNET_NAMES = sorted(n for n, e in zoo.ZOO.items() if n.startswith("hrnet_") and e.dataset == "coco")
LITE_NAMES = sorted(n for n in zoo.ZOO if n.startswith("litehrnet_"))


COCO_NAMES = sorted(n for n, e in zoo.ZOO.items() if e.dataset == "coco")  # MPII entries: tests/apis/test_zoo_mpii.py


def _variant(name):
    return "official" if name.endswith("_official") else name.rsplit("_", 1)[1] if name.endswith(("_dark", "_udp")) \
        else "plain"


def test_table_covers_widths_sizes_and_variants():
    expected = {f"hrnet_w{w}_{s}{v}" for w in (32, 48) for s in ("256x192", "384x288")
                for v in ("", "_dark", "_udp", "_official")}
    expected |= {f"litehrnet_{d}_{s}" for d in (18, 30) for s in ("256x192", "384x288")}
    assert set(COCO_NAMES) == expected
    for entry in (zoo.ZOO[n] for n in COCO_NAMES):
        if _variant(entry.name) == "official":
            assert entry.url == "" and entry.hash_prefix == "" and entry.filename.startswith("pose_hrnet_w")
            assert "drive.google.com" in entry.source and "1drv.ms" in entry.source
        else:
            assert entry.url.startswith("https://download.openmmlab.com/mmpose/") and entry.url.endswith(entry.filename)
            # MMPose's publish_model names a file <stem>-<first 8 hex digits of its SHA-256>[_<date>].pth
            assert re.fullmatch(r"[0-9a-f]{8}", entry.hash_prefix) and f"-{entry.hash_prefix}" in entry.filename
            assert entry.ap_source.startswith("https://github.com/open-mmlab/mmpose/")
        assert 74.0 < entry.reported_ap < 78.0 if entry.name.startswith("hrnet_") else 64.0 < entry.reported_ap < 71.0


@pytest.mark.parametrize("name", HRNET_NAMES)
def test_entry_builds_offline_with_its_architecture_and_decoder(name):
    entry = zoo.get_entry(name)
    cfg = zoo.entry_config(name)
    assert cfg.is_frozen()
    width = int(re.search(r"_w(\d+)_", name).group(1))
    size = name.split("_")[2]
    # the embedded keys equal the repository's official yaml for everything that shapes the network
    ref = load_config(os.path.join(EXPERIMENTS, "coco", "hrnet", f"w{width}_{size}_adam_lr1e-3.yaml"))
    for key in ("STAGE2", "STAGE3", "STAGE4", "FINAL_CONV_KERNEL", "ATTENTION"):
        assert cfg.MODEL.EXTRA[key] == ref.MODEL.EXTRA[key], key
    assert cfg.MODEL.NUM_JOINTS == ref.MODEL.NUM_JOINTS == 17
    assert cfg.MODEL.IMAGE_SIZE == ref.MODEL.IMAGE_SIZE and cfg.MODEL.HEATMAP_SIZE == ref.MODEL.HEATMAP_SIZE
    assert cfg.MODEL.SIGMA == ref.MODEL.SIGMA == (2 if size == "256x192" else 3)
    assert entry.input_size == tuple(ref.MODEL.IMAGE_SIZE) and f"{entry.input_size[1]}x{entry.input_size[0]}" == size
    assert cfg.DATASET.COLOR_RGB and cfg.TEST.FLIP_TEST
    variant = _variant(name)
    codec = build_codec(cfg)
    if variant in ("plain", "official"):
        assert (cfg.CODEC.UDP, cfg.CODEC.DECODER, cfg.TEST.SHIFT_HEATMAP, cfg.TEST.POST_PROCESS) == \
            (False, "default", True, True)
        assert codec.flip_shift and codec.refinement == "quarter_offset" and not codec.unbiased_encoding
    elif variant == "dark":
        assert (cfg.CODEC.UDP, cfg.CODEC.DECODER, cfg.CODEC.DARK_BLUR_KERNEL, cfg.TEST.SHIFT_HEATMAP) == \
            (False, "dark", 11, True)
        assert codec.flip_shift and codec.refinement == "dark" and codec.unbiased_encoding
    else:  # MMPose 1.x UDPHeatmap: UDP warp and encoding, its DARK-UDP refinement, flipped heatmaps never shifted
        assert (cfg.CODEC.UDP, cfg.CODEC.DECODER, cfg.CODEC.DARK_BLUR_KERNEL, cfg.TEST.SHIFT_HEATMAP,
                cfg.TEST.POST_PROCESS) == (True, "dark_udp_mmpose", 11, False, False)
        assert codec.use_udp and not codec.flip_shift and codec.refinement == "dark_udp_mmpose"
        assert entry.source == "MMPose 1.x model zoo" and entry.decoder == "udp+dark (MMPose 1.x)"
    model = build_model(cfg)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[width]


@pytest.mark.parametrize("name", LITE_NAMES)
def test_litehrnet_entry_builds_offline_as_its_yaml_and_mmpose_tests_it(name):
    """Architecture and input as the repository's Lite-HRNet yaml; MMPose's test settings (MSRAHeatmap decoding with
    the quarter offset, flip test with the shifted heatmap); the MMPose 0.x file with its hash prefix."""
    entry = zoo.get_entry(name)
    cfg = zoo.entry_config(name)
    ref = load_config(os.path.join(EXPERIMENTS, f"coco/litehrnet/{name}.yaml"))
    assert cfg.MODEL.NAME == ref.MODEL.NAME == "lite_hrnet"
    for key in ("LITE_HRNET", "FINAL_CONV_KERNEL"):
        assert cfg.MODEL.EXTRA[key] == ref.MODEL.EXTRA[key], key
    for key in ("NUM_JOINTS", "IMAGE_SIZE", "HEATMAP_SIZE", "SIGMA"):
        assert cfg.MODEL[key] == ref.MODEL[key], key
    for key in ("FLIP_TEST", "POST_PROCESS", "SHIFT_HEATMAP"):
        assert cfg.TEST[key] == ref.TEST[key] is True, key
    assert cfg.DATASET.COLOR_RGB and not cfg.CODEC.UDP and cfg.CODEC.DECODER == "default"
    codec = build_codec(cfg)
    assert codec.flip_shift and codec.refinement == "quarter_offset" and entry.decoder == "default"
    depth, size = int(name.split("_")[1]), name.split("_")[2]
    assert entry.url == f"https://download.openmmlab.com/mmpose/top_down/litehrnet/{entry.filename}"
    assert entry.filename.startswith(f"litehrnet{depth}_coco_{size}-{entry.hash_prefix}_")
    assert entry.source == "MMPose 0.x model zoo" and entry.ap_source.endswith("/coco/litehrnet_coco.md")
    assert entry.reported_ap == {"litehrnet_18_256x192": 64.2, "litehrnet_18_384x288": 67.6,
                                 "litehrnet_30_256x192": 67.6, "litehrnet_30_384x288": 70.0}[name]
    model = build_model(cfg)
    assert sum(p.numel() for p in model.parameters()) == LITE_PARAMS[depth]


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(UserError, match="hrnet_w32_256x192_udp") as err:
        zoo.get_entry("hrnet_w64_256x192")
    assert "hrnet_w64_256x192" in str(err.value)
    assert not zoo.is_zoo_name("hrnet_w64_256x192") and zoo.is_zoo_name("hrnet_w48_384x288_dark")


def test_offline_switch_gives_one_clear_error(hub, monkeypatch):
    monkeypatch.setenv(zoo.OFFLINE_ENV, "1")
    entry = zoo.get_entry("hrnet_w32_256x192_udp")
    with pytest.raises(zoo.ZooDownloadError) as err:
        zoo.resolve_weights(entry.name)
    text = str(err.value) + " " + err.value.hint
    assert entry.url in text and os.path.join(hub, entry.filename) in text and "--weights" in text
    assert not os.path.exists(os.path.join(hub, entry.filename))


def test_unreachable_server_is_a_download_error(hub, monkeypatch):
    entry = zoo.get_entry("hrnet_w32_256x192")
    # a closed local port: the same failure as no network, without depending on the machine's connectivity
    broken = zoo.ZooEntry(**{**entry.__dict__, "name": "broken", "url": "http://127.0.0.1:9/" + entry.filename})
    monkeypatch.setitem(zoo.ZOO, "broken", broken)
    with pytest.raises(zoo.ZooDownloadError, match="cannot download http://127.0.0.1:9/") as err:
        zoo.resolve_weights("broken", progress=False)
    assert "--weights /path/to/" + entry.filename in err.value.hint


def test_cli_without_network_prints_one_message(hub, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv(zoo.OFFLINE_ENV, "1")
    tool = load_tool("export")
    status = run_cli(tool.main, ["--weights", "hrnet_w32_256x192_dark", "--out", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("error: hrnet_w32_256x192_dark") and "Traceback" not in err
    assert "hrnet_w32_coco_256x192_dark-07f147eb_20200812.pth" in err
    assert not os.path.exists(tmp_path / "m.onnx")


def _file_entry(tmp_path, monkeypatch, payload: bytes, hash_prefix: str) -> zoo.ZooEntry:
    src = tmp_path / "server" / "td-hm_test-0123abcd_20250101.pth"
    src.parent.mkdir(exist_ok=True)
    src.write_bytes(payload)
    base = zoo.get_entry("hrnet_w32_256x192")
    entry = zoo.ZooEntry(**{**base.__dict__, "name": "served", "url": src.as_uri(), "filename": src.name,
                            "hash_prefix": hash_prefix})
    monkeypatch.setitem(zoo.ZOO, "served", entry)
    return entry


def test_corrupted_download_fails_the_hash_check(hub, monkeypatch, tmp_path):
    good = b"the released checkpoint"
    prefix = hashlib.sha256(good).hexdigest()[:8]
    entry = _file_entry(tmp_path, monkeypatch, good[:-3] + b"XXX", prefix)  # same size, other bytes
    with pytest.raises(zoo.ZooDownloadError, match=f"hash check.*{prefix}") as err:
        zoo.resolve_weights("served", progress=False)
    assert entry.url in str(err.value)
    assert not os.path.exists(hub) or os.listdir(hub) == []  # nothing kept, not even a partial file


def test_download_lands_in_the_hub_cache_and_is_reused(hub, monkeypatch, tmp_path):
    good = b"the released checkpoint"
    entry = _file_entry(tmp_path, monkeypatch, good, hashlib.sha256(good).hexdigest()[:8])
    path = zoo.resolve_weights("served", progress=False)
    assert path == os.path.join(hub, entry.filename) and open(path, "rb").read() == good
    os.remove(entry.url[len("file://"):])  # the server is gone: the cached copy is used
    assert zoo.resolve_weights("served", progress=False) == path
    local = str(tmp_path / "mine.pth")
    open(local, "wb").close()
    assert zoo.resolve_weights(local) == local


def test_official_entry_needs_a_manual_download(hub, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(zoo.ZooDownloadError, match="pose_hrnet_w48_256x192.pth") as err:
        zoo.resolve_weights("hrnet_w48_256x192_official")
    assert "drive.google.com" in err.value.hint and hub in err.value.hint
    official = tmp_path / "models" / "pytorch" / "pose_coco" / "pose_hrnet_w48_256x192.pth"
    official.parent.mkdir(parents=True)
    official.write_bytes(b"x")
    assert os.path.samefile(zoo.resolve_weights("hrnet_w48_256x192_official"), official)


def test_test_tool_config_takes_the_zoo_entry(hub, tiny_cfg_path):
    os.makedirs(hub)
    entry = zoo.get_entry("hrnet_w32_256x192_udp")
    open(os.path.join(hub, entry.filename), "wb").close()
    cfg = load_config(tiny_cfg_path, ["TEST.MODEL_FILE", entry.name])
    out = zoo.apply_zoo_weights(cfg)
    assert out.TEST.MODEL_FILE == os.path.join(hub, entry.filename)
    assert out.CODEC.UDP and not out.TEST.SHIFT_HEATMAP and out.MODEL.EXTRA.STAGE4.NUM_CHANNELS == [32, 64, 128, 256]
    plain = load_config(tiny_cfg_path)
    assert zoo.apply_zoo_weights(plain) is plain  # a file (or nothing) in TEST.MODEL_FILE: untouched


def test_from_pretrained_runs_a_cached_mmpose_checkpoint(hub):
    """An MMPose 1.x-layout W32 file in the cache, as the download leaves it, runs through the estimator."""
    name = "hrnet_w32_256x192"
    model = cache_mmpose_checkpoint(hub, name, "head.", {"dataset_meta": {"sigmas": np.full(17, 0.05)}})
    from hrnet_pose.apis.estimator import PoseEstimator

    est = PoseEstimator.from_pretrained(name, device="cpu", backend="torch")  # its state dict is compared below
    loaded = est.backend.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())
    image = os.path.join(IMAGE, sorted(os.listdir(IMAGE))[0])
    result = est(image, boxes=[[10, 20, 110, 220]])
    assert result.keypoints.shape == (1, 17, 2) and np.isfinite(result.keypoints).all()


def test_readme_table_is_the_zoo():
    """The README's 'Pretrained models' table is `zoo.markdown_table()` as it stands (so its decoders and AP are the
    entries' own)."""
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    assert zoo.markdown_table() in readme
