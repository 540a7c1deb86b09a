"""CODEC.DECODER 'mmpose': MMPose 1.x's MSRAHeatmap decoding, which differs from the official one only at the border
(each axis moves on its own condition) and for maps without a positive maximum ((-1, -1) instead of (0, 0)).
Hand-made maps, expected values worked out from MMPose 1.3.2's `get_heatmap_maximum` + `refine_keypoints`."""

import numpy as np
import pytest

from hrnet_pose.codecs.heatmap import HeatmapCodec, get_max_preds, quarter_offset, quarter_offset_mmpose
from hrnet_pose.errors import ConfigError


def _map(h, w, x, y, right, down):
    """A map with its maximum at (x, y) and a higher right (or left) and lower (or upper) neighbour."""
    m = np.zeros((h, w), np.float32)
    m[y, x] = 1.0
    if 0 <= x + (1 if right else -1) < w:
        m[y, x + (1 if right else -1)] = 0.5
    if 0 <= y + (1 if down else -1) < h:
        m[y + (1 if down else -1), x] = 0.5
    return m


def test_border_rule_and_non_positive_maps():
    maps = np.stack([
        _map(8, 6, 3, 4, True, False),   # inside: both rules move +x, -y
        _map(8, 6, 1, 4, True, True),    # x = 1: official moves nothing, MMPose moves y only
        _map(8, 6, 3, 7, False, False),  # y = H-1: official nothing, MMPose moves x only
        _map(8, 6, 3, 0, True, True),    # y = 0: MMPose's x step needs 0 < y, its y step 1 < y: nothing
        np.full((8, 6), -1.0, np.float32),  # no positive maximum
    ])[None]
    coords, maxvals = get_max_preds(maps)
    official = quarter_offset(maps, coords)[0]
    mmpose = quarter_offset_mmpose(maps, coords, maxvals)[0]
    assert official.tolist() == [[3.25, 3.75], [1, 4], [3, 7], [3, 0], [0, 0]]
    assert mmpose.tolist() == [[3.25, 3.75], [1, 4.25], [2.75, 7], [3, 0], [-1, -1]]


def test_codec_decoder_mmpose():
    codec = HeatmapCodec((24, 32), (6, 8), 2, decoder="mmpose", post_process=False)
    assert codec.refinement == "quarter_offset_mmpose"  # always refines, as MSRAHeatmap does
    maps = _map(8, 6, 1, 4, True, True)[None, None]
    preds, _ = codec.decode(maps, np.array([[12.0, 16.0]]), np.array([[24 / 200, 32 / 200]]))
    # heatmap (1, 4.25) -> image (1 * 4, 4.25 * 4) for a 24x32 box at the origin (stride 4)
    assert np.allclose(preds[0, 0], [4.0, 17.0])
    with pytest.raises(ConfigError, match="mmpose"):
        HeatmapCodec((24, 32), (6, 8), 2, decoder="mmpose", use_udp=True)
