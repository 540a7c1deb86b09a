"""Heatmap codecs: joints -> gaussian targets (encode) and heatmaps -> image keypoints (decode)."""

from .heatmap import HeatmapCodec, build_codec, dark_refine, get_max_preds, quarter_offset

__all__ = ["HeatmapCodec", "build_codec", "dark_refine", "get_max_preds", "quarter_offset"]
