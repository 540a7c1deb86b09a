"""engine.cpu_benchmark / cpu_inference: the side-by-side rows are produced and every fast path gives the plain
path's results (evaluation stats identical, fp32 inference routes within float rounding); no timing is asserted."""

import json
import os

import numpy as np
import pytest
import torch

from hrnet_pose.config import load_config
from hrnet_pose.benchmarks.cpu import (bench_data, bench_data_cold, bench_evaluation, bench_inference,
                                       calibrate_batchnorm, fast_decode_ap, fixture_crops, fixture_dataset,
                                       format_rows)
from hrnet_pose.errors import UserError
from hrnet_pose.models import build_model

from testpaths import FIXTURES, MINI


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    crops = fixture_crops(MINI, image_size=(64, 96))
    return calibrate_batchnorm(build_model(load_config(os.path.join(FIXTURES, "official_hrnet_tiny_a.yaml"))), crops)


def test_evaluation_rows_plain_and_fast_identical():
    rows = bench_evaluation(num_images=150, num_predictions=3000, seed=2)
    assert [r["variant"].split(":")[0].split(",")[0] for r in rows] == ["plain", "fast", "fast"]
    assert all(r["identical"] for r in rows) and len({r["AP"] for r in rows}) == 1
    assert 0 < rows[0]["AP"] < 1
    json.dumps(rows)
    assert "identical stats" in format_rows(rows)


def test_data_rows_and_fast_decode_ap_effect(tiny):
    rows = bench_data(MINI, image_size=(64, 96), seconds=0.05, rounds=1)
    variants = [(r["task"], r["variant"]) for r in rows]
    assert variants == [(task, v) for task in ("data train", "data test") for v in (
        "plain: official decode", "fast: FAST_DECODE on", "fast: FAST_DECODE + IMAGE_CACHE_DIR, cache filled",
        "fast: FAST_DECODE + IMAGE_CACHE_DIR, first pass (fills it)")]
    assert all(r["samples_per_s"] > 0 for r in rows)
    assert all(set(r) == {"task", "variant", "setting", "samples_per_s", "reduced_fraction"} for r in rows)
    assert all(np.isfinite(r["samples_per_s"]) for r in rows)
    assert rows[1]["reduced_fraction"] > 0 and rows[0]["reduced_fraction"] == 0
    for task, image_set, train in (("data train", "mini_train2017", True), ("data test", "mini_val2017", False)):
        # the fast row's share is that of the samples whose JPEG is decoded at reduced size, counted here directly
        ds = fixture_dataset(MINI, image_set, train, True, (64, 96))
        np.random.seed(0)
        share = np.mean([ds.prepare(i)["decode_factor"] > 1 for i in range(len(ds))])
        fast = [r for r in rows if r["task"] == task and r["variant"] == "fast: FAST_DECODE on"]
        assert fast[0]["reduced_fraction"] == share
        assert all(r["setting"].startswith(f"{len(ds)} real COCO persons, input 64x96") for r in rows
                   if r["task"] == task)
        assert all(r["reduced_fraction"] == 0 for r in rows if r["task"] == task and r is not fast[0])
    effect = fast_decode_ap(MINI, image_size=(64, 96), model=tiny)
    assert effect["oracle_AP_fast"] == effect["oracle_AP_plain"] > 0.5  # geometry unchanged
    assert effect["crop_mean_abs_diff"] > 0 and effect["model_keypoint_shift_px"] >= 0
    assert set(effect) == {"oracle_AP_plain", "oracle_AP_fast", "model_AP_plain", "model_AP_fast",
                           "model_keypoint_shift_px", "crop_mean_abs_diff"}
    assert 0 <= effect["model_AP_plain"] <= 1 and 0 <= effect["model_AP_fast"] <= 1
    # other crops move some keypoint, and a keypoint shift changes an OKS: no shift only with the same AP
    assert effect["model_keypoint_shift_px"] > 0 or effect["model_AP_fast"] == effect["model_AP_plain"]
    assert effect["crop_mean_abs_diff"] < 255  # a mean of absolute differences of uint8 pixels


def test_cold_disk_rows_or_a_clear_refusal():
    """Dropping the page cache needs Linux and root: either the three variants are measured, or the error says why."""
    try:
        rows = bench_data_cold(MINI, image_size=(64, 96), rounds=1)
    except UserError as err:
        assert "/proc/sys/vm/drop_caches" in str(err) and "root" in str(err)
        return
    assert [r["variant"] for r in rows] == ["plain: official decode", "fast: FAST_DECODE on",
                                            "fast: FAST_DECODE + IMAGE_CACHE_DIR, cache filled"]
    assert all(r["task"] == "data train, cold disk" and r["samples_per_s"] > 0 for r in rows)
    assert all(np.isfinite(r["samples_per_s"]) and r["reduced_fraction"] == 0 for r in rows)


def test_fp32_inference_routes_match_the_official_route(tiny):
    crops = fixture_crops(MINI, image_size=(64, 96))
    routes = ["official", "folded", "folded_cl", "jit", "onnxruntime"]
    rows = bench_inference(tiny, crops, batch_sizes=(1, 3), iters=1, threads=1, routes=routes)
    assert [r["variant"] for r in rows] == routes * 2
    for r in rows:
        # relative to the heatmaps' scale: folded weights, channels_last, jit and onnxruntime run other kernels that
        # sum ~40 convolutions in another order, ~2e-5 of the scale at most (see tests/models/test_pose_hrnet.py)
        assert r["heatmap_rel_err"] < 1e-4, r["variant"]
        # no argmax flips to allow for: every joint's top-two gap is >= 4e-5 of the scale for these crops (measured),
        # above that rounding bound
        assert r["kp_err_max_px"] < 0.05, r["variant"]  # the bound for fp32 routes
        assert r["ms"] > 0
        # the median of the timed iterations lies between their min and max; speedup is official's ms over this one
        assert r["min_ms"] <= r["ms"] <= r["max_ms"]
        official = next(o for o in rows if o["batch"] == r["batch"] and o["variant"] == "official")
        assert r["speedup"] == pytest.approx(official["ms"] / r["ms"], rel=1e-12)
        assert r["task"] == f"inference batch {r['batch']}" and r["setting"] == "input 64x96, 1 threads"
    assert [r["batch"] for r in rows] == [1] * len(routes) + [3] * len(routes)
    with pytest.raises(ValueError, match="valid"):
        bench_inference(tiny, crops, routes=["official", "tensorrt"])
    assert "keypoint err" in format_rows(rows)
    np.testing.assert_equal(rows[0]["kp_err_max_px"], 0.0)
