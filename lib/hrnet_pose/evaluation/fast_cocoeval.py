"""COCO keypoint evaluation (OKS AP/AR) vectorised over all images, giving pycocotools' numbers bit for bit.

A re-implementation of `pycocotools.cocoeval.COCOeval` with iouType 'keypoints' (Lin et al., "Microsoft COCO",
ECCV 2014; OKS as in the COCO keypoint challenge) that works on arrays instead of per-annotation dicts, so that
100k predictions evaluate in well under a second instead of ~20 s (no `loadRes` copy, no per-image Python loops).
It follows pycocotools 2.0 step by step, and where floating point order matters it does the same operations in the
same order:
- `loadRes`: result ids 1..N in list order, area = (max x - min x) * (max y - min y) of all keypoints;
- `computeOks`: e = (dx^2 + dy^2) / (2 sigma)^2 / (gt area + eps) / 2 over the gt's labelled keypoints (all of
  them, measured to the gt box enlarged 3x, when it has none); the mean of exp(-e) is summed row by row exactly as
  `np.sum` on the 1-D array would (numpy's pairwise sum over the same elements);
- `evaluateImg`: detections by score (stable), at most maxDets (20) per image; gts not ignored first; greedy
  matching per OKS threshold, a detection taking the best still-free gt (crowd gts stay free), last one on ties,
  stopping at the ignored gts once a regular one matched; unmatched detections outside the area range ignored.
  Here the greedy loop runs over detection rank (<= 20 steps) for all images and thresholds at once;
- `accumulate` / `summarize`: the same numpy code on the same arrays.

Inputs: a ground truth from `KeypointGroundTruth.from_coco(coco or dataset dict)`, result image_ids [N],
keypoints [N,K,3] (x, y, score), scores [N]. Output: the 10 stats of `COCOeval.summarize()` for keypoints.
"""

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

IOU_THRS = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)
REC_THRS = np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True)
MAX_DETS = 20
AREA_RNG = [[0 ** 2, 1e5 ** 2], [32 ** 2, 96 ** 2], [96 ** 2, 1e5 ** 2]]
AREA_LBL = ["all", "medium", "large"]


class KeypointGroundTruth:
    """The ground-truth annotations of a COCO keypoint dataset as arrays (built once per evaluator)."""

    def __init__(self, dataset: Dict) -> None:
        anns = list(dataset.get("annotations", []))
        self.all_image_ids = np.array(sorted({int(img["id"]) for img in dataset.get("images", [])}), np.int64)
        self.cat_ids = np.array(sorted({int(c["id"]) for c in dataset.get("categories", [])}), np.int64)
        n = len(anns)
        k = max((len(a.get("keypoints") or []) // 3 for a in anns), default=0)
        self.num_keypoints = k
        self.ids = np.array([a["id"] for a in anns], np.int64).reshape(n)
        self.image_ids = np.array([a["image_id"] for a in anns], np.int64).reshape(n)
        self.category_ids = np.array([a.get("category_id", 0) for a in anns], np.int64).reshape(n)
        kpts = np.zeros((n, k * 3), np.float64)
        for i, a in enumerate(anns):
            values = a.get("keypoints") or []
            kpts[i, :len(values)] = values
        self.keypoints = kpts.reshape(n, k, 3)
        self.bbox = np.array([a.get("bbox", [0, 0, 0, 0]) for a in anns], np.float64).reshape(n, 4)
        # pycocotools reads 'area' as given (crowd and keypoint-less persons included); box area where missing
        self.area = np.array([a.get("area", np.nan) for a in anns], np.float64).reshape(n)
        self.area = np.where(np.isnan(self.area), self.bbox[:, 2] * self.bbox[:, 3], self.area)
        self.iscrowd = np.array([bool(a.get("iscrowd", 0)) for a in anns], bool).reshape(n)
        num_kpts = np.array([a.get("num_keypoints", -1) for a in anns], np.int64).reshape(n)
        labelled = (self.keypoints[:, :, 2] > 0).sum(axis=1) if k else np.zeros(n, np.int64)
        num_kpts = np.where(num_kpts < 0, labelled, num_kpts)
        # _prepare(): ignore = iscrowd, then (num_keypoints == 0) or ignore
        self.ignore = self.iscrowd | (num_kpts == 0)

    @classmethod
    def from_coco(cls, coco_or_dataset) -> "KeypointGroundTruth":
        """From a pycocotools / faster-coco-eval COCO object (its `.dataset`) or a COCO dataset dict."""
        dataset = getattr(coco_or_dataset, "dataset", coco_or_dataset)
        if not isinstance(dataset, dict) or "annotations" not in dataset:
            raise TypeError(f"expected a COCO object or a COCO dataset dict with 'annotations', got "
                            f"{type(coco_or_dataset).__name__}")
        return cls(dataset)


def _oks_pairs(gt: KeypointGroundTruth, g: np.ndarray, dk: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """pycocotools `computeOks` for P (gt g[p], detection keypoints dk[p]) pairs -> OKS [P]."""
    variances = (sigmas * 2) ** 2
    k = len(sigmas)
    gk = gt.keypoints[g]
    vg = gk[:, :, 2] > 0
    k1 = vg.sum(axis=1)
    xd, yd = dk[:, :, 0], dk[:, :, 1]
    dx, dy = xd - gk[:, :, 0], yd - gk[:, :, 1]
    # no labelled keypoint: distance to the gt box enlarged to 3x its size
    none = k1 == 0
    if none.any():
        bb = gt.bbox[g[none]]
        x0, x1 = (bb[:, 0] - bb[:, 2])[:, None], (bb[:, 0] + bb[:, 2] * 2)[:, None]
        y0, y1 = (bb[:, 1] - bb[:, 3])[:, None], (bb[:, 1] + bb[:, 3] * 2)[:, None]
        xn, yn = xd[none], yd[none]
        dx[none] = np.maximum(0, x0 - xn) + np.maximum(0, xn - x1)
        dy[none] = np.maximum(0, y0 - yn) + np.maximum(0, yn - y1)
    e = (dx ** 2 + dy ** 2) / variances / (gt.area[g] + np.spacing(1))[:, None] / 2
    counts = np.where(none, k, k1)
    oks = np.empty(len(g), np.float64)
    valid = np.where(none[:, None], True, vg)
    # sum each pair's valid terms as np.sum over the compacted 1-D array does (pairwise, same order)
    for n in np.unique(counts):
        rows = np.flatnonzero(counts == n)
        if n == k:
            terms = np.exp(-e[rows])
        else:
            cols = np.argsort(~valid[rows], axis=1, kind="stable")[:, :n]
            terms = np.exp(-np.take_along_axis(e[rows], cols, axis=1))
        oks[rows] = np.ascontiguousarray(terms).sum(axis=1) / n
    return oks


def _last_argmax(values: np.ndarray) -> np.ndarray:
    """Index of the last maximum along the last axis."""
    return values.shape[-1] - 1 - np.argmax(values[..., ::-1], axis=-1)


def _match(iou: np.ndarray, d_valid: np.ndarray, g_valid: np.ndarray, g_ign: np.ndarray, g_crowd: np.ndarray,
           thrs: np.ndarray) -> np.ndarray:
    """Greedy matching of `evaluateImg` for B images at once.

    iou [B,D,G] (detections by score, gts ignored-last), masks [B,D] / [B,G] -> matched gt position [B,T,D] or -1.
    """
    b, d_max, g_max = iou.shape
    t = len(thrs)
    thr = np.minimum(thrs, 1 - 1e-10)[None, :, None]
    taken = np.zeros((b, t, g_max), bool)
    matched = np.full((b, t, d_max), -1, np.int64)
    free_always = (g_crowd | ~g_valid)[:, None, :]
    regular = (g_valid & ~g_ign)[:, None, :]
    ignored = (g_valid & g_ign)[:, None, :]
    rows_b, rows_t = np.indices((b, t))
    for d in range(d_max):
        v = iou[:, d, None, :]
        ok = (v >= thr) & (~taken | free_always) & g_valid[:, None, :]
        reg, ign = ok & regular, ok & ignored
        m_reg = _last_argmax(np.where(reg, v, -np.inf))
        m_ign = _last_argmax(np.where(ign, v, -np.inf))
        m = np.where(reg.any(-1), m_reg, np.where(ign.any(-1), m_ign, -1))
        m[~d_valid[:, d]] = -1
        matched[:, :, d] = m
        hit = m >= 0
        taken[rows_b[hit], rows_t[hit], m[hit]] = True
    return matched


def _group_starts(sorted_keys: np.ndarray, keys: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(start, count) of each of `keys` in the sorted array `sorted_keys`."""
    start = np.searchsorted(sorted_keys, keys, side="left")
    return start, np.searchsorted(sorted_keys, keys, side="right") - start


def _segment_offsets(counts: np.ndarray) -> np.ndarray:
    """The position of every element within its segment, for segments of `counts` elements laid end to end."""
    return np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)


def _gt_ignored(gt: KeypointGroundTruth, lo: float, hi: float) -> np.ndarray:
    """[G] the gts `evaluateImg` ignores in the area range [lo, hi]: crowd, no keypoints, or area outside it."""
    return gt.ignore | (gt.area < lo) | (gt.area > hi)


def _top_detections(det_img_pos: np.ndarray, det_scores: np.ndarray,
                    num_images: int) -> Tuple[np.ndarray, np.ndarray]:
    """(detection indices, their image positions): by image, then by score (stable), at most MAX_DETS per image."""
    d_order = np.lexsort((-det_scores, det_img_pos))
    d_img = det_img_pos[d_order]
    d_start, d_count = _group_starts(d_img, np.arange(num_images))
    keep = np.arange(len(d_order)) - np.repeat(d_start, d_count) < MAX_DETS
    return d_order[keep], d_img[keep]


@dataclass
class _ImagePairs:
    """The images that hold both detections and gts (an image is its position among them), and every (detection,
    gt) pair of the same image, image by image."""

    d_start: np.ndarray  # [I] first slot of the image's detections in the kept detections
    d_count: np.ndarray  # [I]
    g_start: np.ndarray  # [I] first position of the image's gts in g_order
    g_count: np.ndarray  # [I]
    g_order: np.ndarray  # gt indices, image by image
    img: np.ndarray  # [P] image of the pair
    d: np.ndarray  # [P] the detection's rank within its image
    g: np.ndarray  # [P] the gt's position within its image
    oks: np.ndarray  # [P]


def _match_bucket(gt: KeypointGroundTruth, pairs: _ImagePairs, sel: np.ndarray, dt_gt_id: np.ndarray,
                  dt_ign: np.ndarray) -> None:
    """`evaluateImg`'s matching of the images `sel` for every area range and OKS threshold, padded to [B, D, G];
    writes the matched gt ids and their ignore flags into dt_gt_id / dt_ign [A, T, detections]."""
    d_start, d_count, g_start, g_count = pairs.d_start, pairs.d_count, pairs.g_start, pairs.g_count
    g_max, d_max = int(g_count[sel].max()), int(d_count[sel].max())
    slot = np.full(len(d_count), -1, np.int64)
    slot[sel] = np.arange(len(sel))
    p_mask = slot[pairs.img] >= 0
    p_b, p_d, p_g = slot[pairs.img[p_mask]], pairs.d[p_mask], pairs.g[p_mask]
    g_idx = np.full((len(sel), g_max), -1, np.int64)
    gi_b = np.repeat(np.arange(len(sel)), g_count[sel])
    gi_j = _segment_offsets(g_count[sel])
    g_idx[gi_b, gi_j] = pairs.g_order[g_start[sel][gi_b] + gi_j]
    d_valid = np.arange(d_max)[None, :] < d_count[sel][:, None]
    rows = d_start[sel][:, None] + np.arange(d_max)[None, :]  # [B, D] detection slots
    for a, (lo, hi) in enumerate(AREA_RNG):
        ign_all = _gt_ignored(gt, lo, hi)
        g_ign = np.where(g_idx >= 0, ign_all[np.maximum(g_idx, 0)], True)
        # evaluateImg sorts the image's gts by ignore flag (stable): permute columns accordingly
        perm = np.argsort(g_ign, axis=1, kind="stable")
        inv = np.argsort(perm, axis=1)
        iou = np.zeros((len(sel), d_max, g_max))
        iou[p_b, p_d, inv[p_b, p_g]] = pairs.oks[p_mask]
        gp = np.take_along_axis(g_idx, perm, axis=1)
        g_valid = gp >= 0
        g_ign_p = np.take_along_axis(g_ign, perm, axis=1)
        crowd = np.where(g_valid, gt.iscrowd[np.maximum(gp, 0)], False)
        m = _match(iou, d_valid, g_valid, g_ign_p, crowd, IOU_THRS)  # [B, T, D]
        hit_b, hit_t, hit_d = np.nonzero(m >= 0)
        gsel_idx = gp[hit_b, m[hit_b, hit_t, hit_d]]
        dt_gt_id[a, hit_t, rows[hit_b, hit_d]] = gt.ids[gsel_idx]
        dt_ign[a, hit_t, rows[hit_b, hit_d]] = ign_all[gsel_idx]


def _match_detections(gt: KeypointGroundTruth, g_order: np.ndarray, g_img: np.ndarray, d_order: np.ndarray,
                      d_img: np.ndarray, det_kpts: np.ndarray, sigmas: np.ndarray,
                      num_images: int) -> Tuple[np.ndarray, np.ndarray]:
    """pycocotools' dtMatches as gt ids (0: none) [A, T, D] and their ignore flags [A, T, D], for the detections
    d_order (D, image by image) against the gts g_order (image by image)."""
    dt_gt_id = np.zeros((len(AREA_RNG), len(IOU_THRS), len(d_order)), np.int64)
    dt_ign = np.zeros((len(AREA_RNG), len(IOU_THRS), len(d_order)), bool)
    img_list = np.arange(num_images)
    d_start, d_count = _group_starts(d_img, img_list)
    g_start, g_count = _group_starts(g_img, img_list)
    both = np.flatnonzero((d_count > 0) & (g_count > 0))
    if not len(both):
        return dt_gt_id, dt_ign
    d_start, dc, g_start, gc = d_start[both], d_count[both], g_start[both], g_count[both]
    pair_img = np.repeat(np.arange(len(both)), dc * gc)
    local = _segment_offsets(dc * gc)
    pd, pg = local // gc[pair_img], local % gc[pair_img]
    oks = _oks_pairs(gt, g_order[g_start[pair_img] + pg], det_kpts[d_order[d_start[pair_img] + pd]], sigmas)
    pairs = _ImagePairs(d_start, dc, g_start, gc, g_order, pair_img, pd, pg, oks)
    # images in buckets of similar gt count keep the padded [B, D, G] arrays small
    bucket = np.ceil(np.log2(np.maximum(gc, 1))).astype(np.int64)
    for level in np.unique(bucket):
        _match_bucket(gt, pairs, np.flatnonzero(bucket == level), dt_gt_id, dt_ign)
    return dt_gt_id, dt_ign


def _precision_recall(dtm: np.ndarray, dtig: np.ndarray, npig: int) -> Tuple[np.ndarray, np.ndarray]:
    """`accumulate()` of one area range: matches dtm [T, D] and ignore flags [T, D] of the detections sorted by
    score, npig regular gts -> precision [T, R] at the recall thresholds and the final recall [T]."""
    tps = np.logical_and(dtm, np.logical_not(dtig))
    fps = np.logical_and(np.logical_not(dtm), np.logical_not(dtig))
    tp_sum = np.cumsum(tps, axis=1).astype(dtype=float)
    fp_sum = np.cumsum(fps, axis=1).astype(dtype=float)
    precision, recall = np.zeros((len(IOU_THRS), len(REC_THRS))), np.zeros(len(IOU_THRS))
    for t in range(len(IOU_THRS)):
        tp, fp = tp_sum[t], fp_sum[t]
        nd = len(tp)
        rc = tp / npig
        pr = tp / (fp + tp + np.spacing(1))
        recall[t] = rc[-1] if nd else 0
        pr = np.maximum.accumulate(pr[::-1])[::-1] if nd else pr  # precision envelope
        pi = np.searchsorted(rc, REC_THRS, side="left")
        inside = pi < nd
        precision[t, inside] = pr[pi[inside]]
    return precision, recall


def _evaluate_category(gt: KeypointGroundTruth, gsel: np.ndarray, img_pos_g: np.ndarray, det_img_pos: np.ndarray,
                       det_kpts: np.ndarray, det_scores: np.ndarray, det_area: np.ndarray, sigmas: np.ndarray,
                       num_images: int) -> Tuple[np.ndarray, np.ndarray]:
    """precision [T,R,A] and recall [T,A] of one category (-1 where it has no regular gt)."""
    T, R, A = len(IOU_THRS), len(REC_THRS), len(AREA_RNG)
    precision, recall = -np.ones((T, R, A)), -np.ones((T, A))
    # gts in annotation order within each image (imgToAnns order); detections by score, stable, <= MAX_DETS
    g_order = gsel[np.argsort(img_pos_g, kind="stable")]
    g_img = np.sort(img_pos_g, kind="stable")
    d_order, d_img = _top_detections(det_img_pos, det_scores, num_images)
    dt_gt_id, dt_ign = _match_detections(gt, g_order, g_img, d_order, d_img, det_kpts, sigmas, num_images)
    scores, ids_area = det_scores[d_order], det_area[d_order]
    for a, (lo, hi) in enumerate(AREA_RNG):
        npig = np.count_nonzero(_gt_ignored(gt, lo, hi)[gsel] == 0)
        if npig == 0:
            continue
        out = (ids_area < lo) | (ids_area > hi)
        dt_ig = dt_ign[a] | ((dt_gt_id[a] == 0) & out[None, :])
        # accumulate(): detections of all images (image order, then score order), stable sort by score
        inds = np.argsort(-scores, kind="mergesort")
        precision[:, :, a], recall[:, a] = _precision_recall(dt_gt_id[a][:, inds], dt_ig[:, inds], npig)
    return precision, recall


def _summarize(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """`COCOeval.summarize()` for keypoints (maxDets 20) on precision [T,R,K,A,M] and recall [T,K,A,M]."""
    def one(ap, iou_thr=None, area="all"):
        aind = [i for i, lbl in enumerate(AREA_LBL) if lbl == area]
        mind = [0]
        s = precision if ap == 1 else recall
        if iou_thr is not None:
            s = s[np.where(iou_thr == IOU_THRS)[0]]
        s = s[:, :, :, aind, mind] if ap == 1 else s[:, :, aind, mind]
        return -1 if len(s[s > -1]) == 0 else np.mean(s[s > -1])

    return np.array([one(1), one(1, .5), one(1, .75), one(1, area="medium"), one(1, area="large"),
                     one(0), one(0, .5), one(0, .75), one(0, area="medium"), one(0, area="large")], np.float64)


def keypoint_extent_area(keypoints: np.ndarray) -> np.ndarray:
    """`loadRes`'s area of a result: the extent of its keypoints [N, K, 2+] -> [N]."""
    x, y = keypoints[:, :, 0], keypoints[:, :, 1]
    return (x.max(axis=1) - x.min(axis=1)) * (y.max(axis=1) - y.min(axis=1))


def accumulate_keypoints(
    gt: KeypointGroundTruth,
    image_ids: np.ndarray,
    keypoints: np.ndarray,
    scores: np.ndarray,
    sigmas: np.ndarray,
    img_ids: Optional[Sequence[int]] = None,
    category_id: int = 1,
    det_category_ids: Optional[np.ndarray] = None,
    det_area: Optional[np.ndarray] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """COCOeval's `evaluate()` + `accumulate()` -> precision [T,R,K,A,1] and recall [T,K,A,1] over the gt's
    categories (K, sorted ids; -1 where a category has no regular gt).

    Detections are all of `category_id`, or each of `det_category_ids` [N] when given (several categories, as
    AP-10K's animals). `img_ids` restricts the evaluation to those images (COCOeval `params.imgIds`). `det_area` [N]
    replaces `loadRes`'s area of the keypoints' extent (COCO-WholeBody parts take it from the body keypoints).
    """
    image_ids = np.asarray(image_ids, np.int64).reshape(-1)
    kpts = np.asarray(keypoints, np.float64)
    scores = np.asarray(scores, np.float64).reshape(-1)
    sigmas = np.asarray(sigmas, np.float64)
    n = len(image_ids)
    if n == 0:
        raise ValueError("no keypoint results to evaluate (the results list is empty)")
    if kpts.shape != (n, len(sigmas), 3) or scores.shape != (n,):
        raise ValueError(f"keypoints must be [N, {len(sigmas)}, 3] and scores [N] for N={n} image ids, got "
                         f"{kpts.shape} and {scores.shape}")
    unknown = np.setdiff1d(image_ids, gt.all_image_ids)
    if len(unknown):
        raise ValueError(f"results for {len(unknown)} image ids not in the ground truth (e.g. {unknown[:5].tolist()}); "
                         "results must be for images of the annotation file")
    if gt.num_keypoints not in (0, len(sigmas)):
        raise ValueError(f"the ground truth has {gt.num_keypoints} keypoints per person, the sigmas {len(sigmas)}")
    det_cats = (np.full(n, category_id, np.int64) if det_category_ids is None
                else np.asarray(det_category_ids, np.int64).reshape(n))
    eval_imgs = gt.all_image_ids if img_ids is None else np.unique(np.asarray(img_ids, np.int64))
    if det_area is None:
        det_area = keypoint_extent_area(kpts)
    det_area = np.asarray(det_area, np.float64).reshape(n)
    cat_ids = gt.cat_ids
    precision = -np.ones((len(IOU_THRS), len(REC_THRS), len(cat_ids), len(AREA_RNG), 1))
    recall = -np.ones((len(IOU_THRS), len(cat_ids), len(AREA_RNG), 1))
    if len(eval_imgs) == 0:
        return precision, recall
    g_pos = np.searchsorted(eval_imgs, gt.image_ids)
    g_in = (g_pos < len(eval_imgs)) & (eval_imgs[np.minimum(g_pos, len(eval_imgs) - 1)] == gt.image_ids)
    d_pos = np.searchsorted(eval_imgs, image_ids)
    d_in = (d_pos < len(eval_imgs)) & (eval_imgs[np.minimum(d_pos, len(eval_imgs) - 1)] == image_ids)
    for c, cat in enumerate(cat_ids):
        gsel = np.flatnonzero(g_in & (gt.category_ids == cat))
        dsel = np.flatnonzero(d_in & (det_cats == cat))
        p, r = _evaluate_category(gt, gsel, g_pos[gsel], d_pos[dsel], kpts[dsel], scores[dsel], det_area[dsel],
                                  sigmas, len(eval_imgs))
        precision[:, :, c, :, 0], recall[:, c, :, 0] = p, r
    return precision, recall


def evaluate_keypoints(
    gt: KeypointGroundTruth,
    image_ids: np.ndarray,
    keypoints: np.ndarray,
    scores: np.ndarray,
    sigmas: np.ndarray,
    img_ids: Optional[Sequence[int]] = None,
    category_id: int = 1,
) -> np.ndarray:
    """The 10 keypoint stats of pycocotools' COCOeval for results (image_ids [N], keypoints [N,K,3], scores [N]).

    `img_ids` restricts the evaluation to those images (COCOeval `params.imgIds`); default: all gt images.
    """
    return _summarize(*accumulate_keypoints(gt, image_ids, keypoints, scores, sigmas, img_ids, category_id))


def summarize_keypoints(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """The 10 stats of `COCOeval.summarize()` for keypoints from `accumulate_keypoints`' precision and recall."""
    return _summarize(precision, recall)
