"""Drawing of pose results on BGR images with OpenCV primitives: skeletons, boxes, track ids, timings, heatmaps.

Inputs are the plain arrays the API returns (image pixels, never zeroed for low confidence): keypoints [N,K,2],
scores [N,K], boxes [N,4] x1y1x2y2, box scores [N], track ids [N]; images are HxWx3 uint8 in OpenCV's BGR order.
Thresholds here decide only what is drawn. Limb and joint colours come from the keypoint set (`KeypointSet.colors`,
RGB); a set without colours gets left = orange, right = blue, centre = green from its keypoint names, or an evenly
spaced palette when its names say nothing about sides.

Drawing is one anti-aliased cv2.line per visible limb and one cv2.circle per visible joint (sub-pixel centres
through OpenCV's `shift` argument), all masks computed for all persons at once, no per-pixel Python; the cost grows
with the number of people and the length of their limbs, not with the image size. Measured: 20 people (300 px tall) at
1080p in 7-13 ms on a heavily loaded 2-core machine (load average 7), mostly OpenCV rasterising anti-aliased limbs.
"""

import math
from typing import Dict, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np

from .keypoints import KeypointSet, side_colors

_SHIFT = 4  # fractional bits for cv2 drawing: keypoints are drawn at 1/16 pixel precision
_ONE = 1 << _SHIFT
_COORD_LIMIT = 1e6  # keeps wild coordinates inside int32 after the fixed-point shift; OpenCV clips the rest
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_HEATMAP_MIN = 0.05  # heatmap values below this are left undrawn so the image stays readable


def default_sizes(image_shape: Sequence[int]) -> Tuple[int, int]:
    """(keypoint radius, line thickness) in pixels for an image of shape (H, W[, C]): proportional to the shorter
    side, e.g. 1080p -> (6, 4), 720p -> (4, 3), COCO's 640x480 -> (3, 2), 240p -> (2, 1)."""
    if len(image_shape) < 2 or min(image_shape[:2]) <= 0:
        raise ValueError(f"default_sizes: expected an image shape (H, W[, C]) with H, W > 0, got {tuple(image_shape)}")
    short = min(int(image_shape[0]), int(image_shape[1]))
    return max(2, round(short / 180)), max(1, round(short / 270))


def _text_sizes(image_shape: Sequence[int]) -> Tuple[float, int]:
    short = min(image_shape[:2])
    return max(0.4, short / 1800), max(1, round(short / 720))


def id_color(track_id: int) -> Tuple[int, int, int]:
    """A bright BGR colour that depends only on the id: hues step by the golden ratio, so consecutive ids differ."""
    hue = (int(track_id) * 0.6180339887) % 1.0
    hsv = np.array([[[round(hue * 179), 220, 255]]], dtype=np.uint8)
    return tuple(int(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def keypoint_colors(keypoint_set: KeypointSet) -> np.ndarray:
    """[K,3] uint8 BGR colour per keypoint: the set's RGB colours, else `keypoints.side_colors` of its names, else an
    evenly spaced palette."""
    k = keypoint_set.num_keypoints
    rgb = keypoint_set.colors if len(keypoint_set.colors) == k else side_colors(keypoint_set.names)
    if len(rgb) == k:
        return np.asarray(rgb, dtype=np.uint8).reshape(k, 3)[:, ::-1].copy()
    hsv = np.stack([np.arange(k) * 179 // max(k, 1), np.full(k, 200), np.full(k, 255)], axis=1)
    return cv2.cvtColor(hsv.astype(np.uint8)[None], cv2.COLOR_HSV2BGR)[0]


def _limb_colors(colors: np.ndarray, skeleton: np.ndarray) -> np.ndarray:
    """A limb takes its ends' colour when they agree (one side of the body), else their mean (the torso)."""
    if len(skeleton) == 0:
        return np.zeros((0, 3), dtype=np.uint8)
    a, b = colors[skeleton[:, 0]].astype(np.int32), colors[skeleton[:, 1]].astype(np.int32)
    return ((a + b) // 2).astype(np.uint8)


def _check_image(image: np.ndarray, where: str) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"{where}: expected a BGR uint8 image of shape (H, W, 3), got {got}")


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(np.clip(points, -_COORD_LIMIT, _COORD_LIMIT) * _ONE).astype(np.int32)


def _put_label(image: np.ndarray, text: str, x: float, y: float, color: Tuple[int, int, int]) -> None:
    """Text on a filled box of `color` whose bottom-left is (x, y), moved inside the image where needed."""
    scale, thick = _text_sizes(image.shape)
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, thick)
    h, w = image.shape[:2]
    x0 = int(min(max(x, 0), max(w - tw - 4, 0)))
    y1 = int(min(max(y, th + base + 4), h))
    cv2.rectangle(image, (x0, y1 - th - base - 4), (x0 + tw + 4, y1), color, -1)
    # dark text on light boxes and the reverse (ITU-R BT.601 luma of the BGR colour)
    luma = 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2]
    ink = (0, 0, 0) if luma > 128 else (255, 255, 255)
    cv2.putText(image, text, (x0 + 2, y1 - base - 2), _FONT, scale, ink, thick, cv2.LINE_AA)


def _pose_extras(n: int, boxes: Optional[np.ndarray], box_scores: Optional[np.ndarray],
                 track_ids: Optional[np.ndarray]) -> Dict[str, np.ndarray]:
    """The optional per-person arrays of `draw_poses` that were given, checked against the number of persons."""
    extras = {}
    for name, value, shape in (("boxes", boxes, (n, 4)), ("box_scores", box_scores, (n,)),
                               ("track_ids", track_ids, (n,))):
        if value is not None:
            extras[name] = np.asarray(value)
            if extras[name].shape != shape:
                raise ValueError(f"draw_poses: {name} must have shape {shape} for {n} persons, got "
                                 f"{extras[name].shape}")
    return extras


def _draw_skeletons(out: np.ndarray, kpts: np.ndarray, visible: np.ndarray, keypoint_set: KeypointSet, radius: int,
                    thickness: int) -> None:
    """Limbs whose two ends are `visible` [N,K], then the visible joints, of all N persons, drawn into `out`."""
    colors = keypoint_colors(keypoint_set)
    skeleton = np.asarray(keypoint_set.skeleton, dtype=np.int64).reshape(-1, 2)
    limb_colors = _limb_colors(colors, skeleton)
    # all masks for all persons at once; the loops below only issue the draw calls
    limb_visible = visible[:, skeleton[:, 0]] & visible[:, skeleton[:, 1]]
    finite_kpts = np.where(np.isfinite(kpts), kpts, 0.0)
    pts = _fixed(finite_kpts)
    # limbs at whole pixels: sub-pixel anti-aliased thick lines cost ~1.5x more and look the same
    whole = np.round(np.clip(finite_kpts, -_COORD_LIMIT, _COORD_LIMIT)).astype(np.int32)
    ends = np.stack([whole[:, skeleton[:, 0]], whole[:, skeleton[:, 1]]], axis=2) if len(skeleton) else None
    color_list = [tuple(c) for c in colors.tolist()]
    limb_color_list = [tuple(c) for c in limb_colors.tolist()]
    # the set's small keypoints (face, hands) get half-size dots, and limbs between two of them half-width lines
    small = np.zeros(keypoint_set.num_keypoints, bool)
    small[list(keypoint_set.small_ids)] = True
    radii = np.where(small, max(1, radius // 2), radius) * _ONE
    widths = np.where(small[skeleton[:, 0]] & small[skeleton[:, 1]], max(1, thickness // 2), thickness).tolist()
    for i in range(len(kpts)):
        if ends is not None:
            for li in np.flatnonzero(limb_visible[i]).tolist():
                (x0, y0), (x1, y1) = ends[i, li].tolist()
                cv2.line(out, (x0, y0), (x1, y1), limb_color_list[li], widths[li], cv2.LINE_AA)
        for j in np.flatnonzero(visible[i]).tolist():
            x, y = pts[i, j].tolist()
            cv2.circle(out, (x, y), int(radii[j]), color_list[j], -1, cv2.LINE_AA, _SHIFT)


def _draw_boxes_and_labels(out: np.ndarray, kpts: np.ndarray, visible: np.ndarray, extras: Mapping[str, np.ndarray],
                           draw_bbox: bool, radius: int, thickness: int) -> None:
    """Per person: its box (draw_bbox) in its track colour, and a label 'id T' / box score at the box corner, else
    above the highest visible joint; non-finite ids, boxes or scores are left out."""
    ids = extras.get("track_ids")
    ids = None if ids is None else ids.astype(np.float64)
    bx = extras.get("boxes")
    bx = None if bx is None else bx.astype(np.float64)
    for i in range(len(kpts)):
        has_box = bx is not None and np.isfinite(bx[i]).all()
        color = id_color(int(ids[i])) if ids is not None and np.isfinite(ids[i]) else (0, 255, 0)
        if draw_bbox and has_box:
            # axis-aligned edges gain nothing from anti-aliasing, which costs several times more
            p = np.round(np.clip(bx[i], -_COORD_LIMIT, _COORD_LIMIT)).astype(int).tolist()
            cv2.rectangle(out, (p[0], p[1]), (p[2], p[3]), color, thickness, cv2.LINE_8)
        parts = []
        if ids is not None and np.isfinite(ids[i]):
            parts.append(f"id {int(ids[i])}")
        if draw_bbox and "box_scores" in extras and np.isfinite(extras["box_scores"][i]):
            parts.append(f"{extras['box_scores'][i]:.2f}")
        if not parts:
            continue
        if has_box:
            anchor = (bx[i, 0], bx[i, 1])
        elif visible[i].any():
            top = np.flatnonzero(visible[i])[np.argmin(kpts[i, visible[i], 1])]
            anchor = (kpts[i, top, 0], kpts[i, top, 1] - 2 * radius)
        else:
            continue
        _put_label(out, " ".join(parts), anchor[0], anchor[1], color)


def draw_poses(
    image: np.ndarray,
    keypoints: np.ndarray,
    scores: np.ndarray,
    keypoint_set: KeypointSet,
    kpt_thr: float = 0.3,
    radius: Optional[int] = None,
    thickness: Optional[int] = None,
    boxes: Optional[np.ndarray] = None,
    box_scores: Optional[np.ndarray] = None,
    track_ids: Optional[np.ndarray] = None,
    draw_bbox: bool = False,
    copy: bool = True,
) -> np.ndarray:
    """Draw N poses: joints scoring >= kpt_thr, limbs whose two ends both do, optionally boxes and labels.

    keypoints [N,K,2] image pixels, scores [N,K], boxes [N,4] xyxy, box_scores [N], track_ids [N] int. NaN or inf
    keypoints, scores or boxes are skipped. Track ids label each person (at the box corner, else above the highest
    joint) and colour the box, the same colour for the same id in every frame. radius / thickness default to
    `default_sizes(image.shape)`. Returns the drawn image: a copy, or `image` itself drawn in place when copy=False.
    """
    _check_image(image, "draw_poses")
    kpts = np.asarray(keypoints, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    k = keypoint_set.num_keypoints
    out = image.copy() if copy else image
    if kpts.size == 0 and scores.size == 0:
        return out
    n = kpts.shape[0]
    if kpts.shape != (n, k, 2) or scores.shape != (n, k):
        raise ValueError(f"draw_poses: keypoint set '{keypoint_set.name}' has {k} keypoints; expected keypoints "
                         f"[N,{k},2] and scores [N,{k}], got {kpts.shape} and {scores.shape}")
    extras = _pose_extras(n, boxes, box_scores, track_ids)
    default_r, default_t = default_sizes(out.shape)
    radius = default_r if radius is None else int(radius)
    thickness = default_t if thickness is None else int(thickness)
    visible = np.isfinite(kpts).all(axis=2) & (scores >= kpt_thr)
    _draw_skeletons(out, kpts, visible, keypoint_set, radius, thickness)
    _draw_boxes_and_labels(out, kpts, visible, extras, draw_bbox, radius, thickness)
    return out


def draw_timings(
    image: np.ndarray,
    timings: Mapping[str, float],
    fps: Optional[float] = None,
    copy: bool = False,
) -> np.ndarray:
    """A small top-left panel: 'FPS x' then one 'stage: x.x ms' line per entry of `timings` (milliseconds), white
    text on a darkened background so it reads on any image. Draws in place unless copy=True; returns the image."""
    _check_image(image, "draw_timings")
    out = image.copy() if copy else image
    lines = [] if fps is None or not math.isfinite(fps) else [f"FPS {fps:.1f}"]
    lines += [f"{name}: {float(ms):.1f} ms" for name, ms in timings.items()]
    if not lines:
        return out
    scale, thick = _text_sizes(out.shape)
    sizes = [cv2.getTextSize(line, _FONT, scale, thick) for line in lines]
    line_h = max(h + base for (_, h), base in sizes) + 4
    pad = 4
    panel_w = min(out.shape[1], max(w for (w, _), _ in sizes) + 2 * pad)
    panel_h = min(out.shape[0], line_h * len(lines) + 2 * pad)
    roi = out[:panel_h, :panel_w]
    roi[:] = (roi.astype(np.uint16) * 2 // 5).astype(np.uint8)  # darken to 40% rather than hide the image
    for li, line in enumerate(lines):
        base = sizes[li][1]
        y = pad + line_h * (li + 1) - base - 2
        cv2.putText(out, line, (pad, y), _FONT, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out


def overlay_heatmaps(
    image: np.ndarray,
    heatmaps: np.ndarray,
    heatmap_to_image: np.ndarray,
    alpha: float = 0.5,
    copy: bool = True,
) -> np.ndarray:
    """Blend the model's heatmaps over the image, for debugging.

    heatmaps [N,K,h,w] float (values ~[0,1]; clipped), heatmap_to_image [N,2,3]: the affine matrix taking heatmap
    pixel (x, y) to image pixels (e.g. `get_affine_transform(center, scale, 0, (w, h), inv=True)`). Each person's
    maximum over K is warped into the image (only inside its own footprint), persons combine by maximum, and pixels
    above 0.05 get the JET colour blended with weight `alpha`.
    """
    _check_image(image, "overlay_heatmaps")
    hms = np.asarray(heatmaps, dtype=np.float32)
    mats = np.asarray(heatmap_to_image, dtype=np.float64)
    if hms.ndim != 4 or mats.shape != (hms.shape[0], 2, 3):
        raise ValueError(f"overlay_heatmaps: expected heatmaps [N,K,h,w] and heatmap_to_image [N,2,3], got "
                         f"{hms.shape} and {mats.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"overlay_heatmaps: alpha must be in [0, 1], got {alpha}")
    out = image.copy() if copy else image
    height, width = out.shape[:2]
    h, w = hms.shape[2:]
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], dtype=np.float64)
    # each person's footprint (the bounding rectangle of its warped heatmap, clipped to the image); warping,
    # colour mapping and blending touch only these, not the whole frame
    footprints = []
    for n, mat in enumerate(mats):
        if not np.isfinite(mat).all():
            continue
        xy = corners @ mat.T
        x0, y0 = np.floor(np.clip(xy.min(axis=0), 0, [width, height])).astype(int).tolist()
        x1, y1 = np.ceil(np.clip(xy.max(axis=0), 0, [width, height])).astype(int).tolist()
        if x1 > x0 and y1 > y0:
            footprints.append((n, x0, y0, x1, y1))
    if not footprints:
        return out
    ux0, uy0 = min(f[1] for f in footprints), min(f[2] for f in footprints)
    ux1, uy1 = max(f[3] for f in footprints), max(f[4] for f in footprints)
    roi_acc = np.zeros((uy1 - uy0, ux1 - ux0), dtype=np.float32)
    person_max = np.nan_to_num(hms, nan=0.0, posinf=1.0, neginf=0.0).max(axis=1)
    for n, x0, y0, x1, y1 in footprints:
        local = mats[n].copy()
        local[:, 2] -= (x0, y0)
        warped = cv2.warpAffine(person_max[n], local, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        dst = roi_acc[y0 - uy0:y1 - uy0, x0 - ux0:x1 - ux0]
        np.maximum(dst, warped, out=dst)
    roi = out[uy0:uy1, ux0:ux1]
    # roi_acc >= 0 (it starts at 0 and only grows), so convertScaleAbs is a saturating [0, 1] -> [0, 255]
    colored = cv2.applyColorMap(cv2.convertScaleAbs(roi_acc, alpha=255.0), cv2.COLORMAP_JET)
    blended = cv2.addWeighted(roi, 1.0 - alpha, colored, alpha, 0.0)
    # put the original back where the heatmap is weak (cv2.copyTo: ~50x faster than a numpy masked copy)
    keep = (roi_acc <= _HEATMAP_MIN).view(np.uint8)
    roi[...] = cv2.copyTo(roi, keep, blended)
    return out
