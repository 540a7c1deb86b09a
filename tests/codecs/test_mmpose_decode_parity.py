"""Decoding as MMPose 1.3.2's `MSRAHeatmap.decode` on peaked maps (tests/codecs/peaked_heatmaps.py; reference made
by tests/fixtures/mmpose_wholebody/make_decode_reference.py): CODEC.DECODER 'mmpose' for the plain form and 'dark'
for `unbiased=True` (blur kernel 11), the decoders of the COCO-WholeBody zoo entries."""

import os

import numpy as np
import pytest

from hrnet_pose.codecs.heatmap import HeatmapCodec

from peaked_heatmaps import peaked_heatmaps
from testpaths import FIXTURES

REF = dict(np.load(os.path.join(FIXTURES, "mmpose_wholebody", "mmpose_decode_reference.npz")))


@pytest.mark.parametrize("label,decoder", [("plain", "mmpose"), ("dark", "dark")])
def test_decode_equals_mmpose_msraheatmap(label, decoder):
    maps = peaked_heatmaps()
    n = len(maps)
    codec = HeatmapCodec((192, 256), (48, 64), 2, decoder=decoder, dark_blur_kernel=11)
    # a 192x256 box centred on the input: image pixels are input pixels (heatmap x 4)
    preds, maxvals = codec.decode(maps, np.tile([[96.0, 128.0]], (n, 1)), np.tile([[192 / 200, 256 / 200]], (n, 1)))
    ref_k, ref_s = REF[f"{label}/keypoints"], REF[f"{label}/scores"]
    assert np.array_equal(maxvals[..., 0], ref_s.astype(np.float32))
    positive = ref_s > 0
    # MMPose refines in float32 (blur, log, Taylor step), this decoder in float64: 1e-3 input px is ~1e4 float32 ulps
    # of the step on these well-conditioned peaks, and a wrong border rule or blur would move points by >= 0.25 px
    assert np.abs(preds[positive] - ref_k[positive]).max() < 1e-3
    # a map without a positive value: MMPose places it at (-1, -1) heatmap px; the official decoders at (0, 0)
    neg = ~positive
    assert neg.sum() == 1 and np.allclose(ref_k[neg], -4.0)
    assert np.allclose(preds[neg], -4.0 if decoder == "mmpose" else 0.0)
