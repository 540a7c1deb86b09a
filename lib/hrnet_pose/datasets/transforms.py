"""Top-down training/test transforms: random half-body, scale, rotation, flip; the crop warp; normalisation.

The geometric augmentation follows the official HRNet `JointsDataset.__getitem__` (Sun et al., CVPR 2019; the recipe
of Xiao et al., "Simple Baselines", ECCV 2018): the box (center, scale) is jittered, the image is warped ONCE with
`cv2.warpAffine` (INTER_LINEAR, black border) into the network input, and the visible joints go through the same
matrix. Random numbers come from the global `np.random` state, so a run is reproducible once numpy is seeded (the
dataloader's `worker_init_fn` seeds every worker).

Shapes: image [H_img, W_img, 3] uint8 -> crop [H, W, 3] uint8 -> input tensor [3, H, W] float32 (ImageNet-normalised);
joints [K, 3] and joints_vis [K, 3] float64 in image pixels -> crop pixels.
"""

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from ..config.defaults import default
from ..geometry import PIXEL_STD, affine_transform, fliplr_joints, get_affine_transform, get_warp_matrix_udp

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@dataclass
class AugmentationConfig:
    """Training augmentation settings. Defaults are the config's (`get_cfg()`: the official default.py values; the
    official COCO yamls set 0.35 / 45 / 0.3), so `augmentation_config(get_cfg())` equals `AugmentationConfig()`;
    photometric is an opt-in addition."""

    flip: bool = default("DATASET.FLIP")  # mirror the image with p=flip_prob and swap left/right joints
    flip_prob: float = 0.5  # fixed in the official code (no config key)
    scale_factor: float = float(default("DATASET.SCALE_FACTOR"))  # s *= clip(randn*sf + 1, 1-sf, 1+sf)
    rot_factor: float = float(default("DATASET.ROT_FACTOR"))  # degrees: clip(randn*rf, -2rf, 2rf) with p=rot_prob, else 0
    rot_prob: float = 0.6  # fixed in the official code (no config key)
    prob_half_body: float = float(default("DATASET.PROB_HALF_BODY"))  # crop to the upper or the lower body
    num_joints_half_body: int = default("DATASET.NUM_JOINTS_HALF_BODY")  # only when more joints are visible
    # COMPAT: official picks the upper body when randn() < 0.5 (p~0.69), not rand()
    half_body_randn: bool = default("COMPAT.HALF_BODY_RANDN")
    photometric: bool = default("AUG.PHOTOMETRIC")  # albumentations colour / blur / noise (not in the official recipe)
    brightness: float = float(default("AUG.BRIGHTNESS"))
    contrast: float = float(default("AUG.CONTRAST"))
    hue_shift: float = float(default("AUG.HUE_SHIFT"))
    sat_shift: float = float(default("AUG.SAT_SHIFT"))
    blur_prob: float = float(default("AUG.BLUR_PROB"))
    noise_prob: float = float(default("AUG.NOISE_PROB"))
    prob: float = float(default("AUG.PROB"))  # probability of each colour jitter


def half_body_transform(
    joints: np.ndarray,
    joints_vis: np.ndarray,
    upper_body_ids: Sequence[int],
    aspect_ratio: float,
    use_randn: bool = False,
    padding: float = 1.5,
) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """Box around the visible upper-body or lower-body joints -> (center [2] float32, scale [2] float32).

    The official rule: the upper body is picked by a coin (`randn() < 0.5` in the official code, kept behind
    `use_randn`; `rand() < 0.5` otherwise) when it has more than 2 visible joints, else the lower body if it has more
    than 2, else the upper body. Fewer than 2 selected joints gives (None, None). The centre is the mean of the
    selected joints; the box is their extent, aspect-fixed and enlarged by `padding`.
    """
    visible = np.asarray(joints_vis)[:, 0] > 0
    is_upper = np.zeros(len(joints), dtype=bool)
    is_upper[list(upper_body_ids)] = True
    upper = np.asarray(joints)[visible & is_upper]
    lower = np.asarray(joints)[visible & ~is_upper]
    coin = np.random.randn() if use_randn else np.random.rand()
    if coin < 0.5 and len(upper) > 2:
        selected = upper
    else:
        selected = lower if len(lower) > 2 else upper
    if len(selected) < 2:
        return None, None
    selected = selected.astype(np.float32)
    center = selected.mean(axis=0)[:2]
    w, h = selected.max(axis=0)[:2] - selected.min(axis=0)[:2]
    if w > aspect_ratio * h:
        h = w * 1.0 / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    scale = np.array([w * 1.0 / PIXEL_STD, h * 1.0 / PIXEL_STD], dtype=np.float32) * padding
    return center, scale


def random_scale_rotation(
    scale: np.ndarray, scale_factor: float, rot_factor: float, rot_prob: float = 0.6
) -> Tuple[np.ndarray, float]:
    """Official jitter: scale * clip(randn*sf + 1, 1-sf, 1+sf); rotation clip(randn*rf, -2rf, 2rf) with p=rot_prob."""
    sf, rf = scale_factor, rot_factor
    # float32 as in the official code under numpy < 2 (a float64 scalar did not upcast a float32 array)
    scale = np.asarray(scale, dtype=np.float32) * np.float32(np.clip(np.random.randn() * sf + 1, 1 - sf, 1 + sf))
    rot = float(np.clip(np.random.randn() * rf, -rf * 2, rf * 2)) if np.random.rand() <= rot_prob else 0.0
    return scale, rot


def flip_sample(
    image: np.ndarray,
    joints: np.ndarray,
    joints_vis: np.ndarray,
    center: np.ndarray,
    flip_pairs: Sequence[Tuple[int, int]],
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mirror the image, the joints (x -> W - x - 1, pairs swapped) and the box centre (c_x -> W - c_x - 1)."""
    joints, joints_vis, center = mirror_annotations(joints, joints_vis, center, image.shape[1], flip_pairs)
    return image[:, ::-1], joints, joints_vis, center


def mirror_annotations(
    joints: np.ndarray,
    joints_vis: np.ndarray,
    center: np.ndarray,
    width: int,
    flip_pairs: Sequence[Tuple[int, int]],
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`flip_sample` without the image: joints and box centre of an image of `width` mirrored (a new centre)."""
    joints, joints_vis = fliplr_joints(joints, joints_vis, width, flip_pairs)
    center = np.array(center, copy=True)
    center[0] = width - center[0] - 1
    return joints, joints_vis, center


def crop_matrix(
    center: np.ndarray, scale: np.ndarray, rot: float, image_size: Sequence[int], use_udp: bool = False
) -> np.ndarray:
    """The [2, 3] image -> crop matrix: the official `get_affine_transform`, or the UDP matrix when `use_udp`."""
    if use_udp:
        return get_warp_matrix_udp(center, scale, rot, image_size)
    return get_affine_transform(center, scale, rot, image_size)


def warp_crop(image: np.ndarray, trans: np.ndarray, image_size: Sequence[int]) -> np.ndarray:
    """One `cv2.warpAffine` (INTER_LINEAR, constant black border) into a [h, w, C] crop of `image_size` (w, h)."""
    return cv2.warpAffine(
        np.ascontiguousarray(image), trans, (int(image_size[0]), int(image_size[1])), flags=cv2.INTER_LINEAR
    )


def transform_joints(joints: np.ndarray, joints_vis: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """Map the visible joints [K, 3] through `trans`; invisible joints keep their (image) values, as officially."""
    joints = np.array(joints, dtype=np.float64, copy=True)
    visible = np.asarray(joints_vis)[:, 0] > 0.0
    joints[visible, :2] = affine_transform(joints[visible, :2], trans)
    return joints


def crop_person(
    image: np.ndarray, center: np.ndarray, scale: np.ndarray, rot: float, image_size: Sequence[int],
    use_udp: bool = False,
) -> Tuple[np.ndarray, np.ndarray]:
    """The one crop of the project: box (center, scale, rot) -> (uint8 crop [h, w, C], image -> crop matrix [2, 3]).

    The training and validation datasets and the inference API (`hrnet_pose.apis`) all crop through this function,
    so the API given a dataset's boxes sees exactly the crops that `tools/test.py` evaluates.
    """
    trans = crop_matrix(center, scale, rot, image_size, use_udp)
    return warp_crop(image, trans, image_size), trans


def normalize_crops(crops: np.ndarray) -> np.ndarray:
    """uint8 crops [..., H, W, 3] -> float32 [..., 3, H, W]: /255 (ToTensor), then ImageNet mean/std."""
    x = (np.asarray(crops).astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))


def to_normalized_tensor(crop: np.ndarray) -> torch.Tensor:
    """uint8 [H, W, 3] -> float32 tensor [3, H, W] (see `normalize_crops`)."""
    return torch.from_numpy(normalize_crops(crop))


def random_geometry_params(
    joints: np.ndarray,
    joints_vis: np.ndarray,
    center: np.ndarray,
    scale: np.ndarray,
    cfg: AugmentationConfig,
    flip_pairs: Sequence[Tuple[int, int]],
    upper_body_ids: Sequence[int],
    aspect_ratio: float,
    image_width: int,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, bool]:
    """Draw one training augmentation in the official order: half body, scale, rotation, flip.

    Returns the joints and box of the (possibly mirrored) image of width `image_width`: (joints, joints_vis, center,
    scale, rot, flipped). Nothing touches the image: a caller mirrors it (`image[:, ::-1]`) when `flipped`, or folds
    the mirror into its crop matrix instead of copying the image (`datasets.fast_decode`)."""
    center = np.array(center, dtype=np.float32, copy=True)
    scale = np.array(scale, dtype=np.float32, copy=True)
    if np.sum(joints_vis[:, 0]) > cfg.num_joints_half_body and np.random.rand() < cfg.prob_half_body:
        c_half, s_half = half_body_transform(
            joints, joints_vis, upper_body_ids, aspect_ratio, use_randn=cfg.half_body_randn
        )
        if c_half is not None:
            center, scale = c_half, s_half
    scale, rot = random_scale_rotation(scale, cfg.scale_factor, cfg.rot_factor, cfg.rot_prob)
    flipped = bool(cfg.flip and np.random.rand() <= cfg.flip_prob)
    if flipped:
        joints, joints_vis, center = mirror_annotations(joints, joints_vis, center, image_width, flip_pairs)
    return joints, joints_vis, center, scale, rot, flipped


class Photometric:
    """Albumentations colour jitter, blur and noise on the uint8 crop, seeded from `np.random` for reproducibility."""

    def __init__(self, cfg: AugmentationConfig):
        import albumentations as A

        self.compose = A.Compose([
            A.RandomBrightnessContrast(brightness_limit=cfg.brightness, contrast_limit=cfg.contrast, p=cfg.prob),
            A.HueSaturationValue(
                hue_shift_limit=cfg.hue_shift, sat_shift_limit=cfg.sat_shift, val_shift_limit=0, p=cfg.prob
            ),
            A.GaussianBlur(blur_limit=(3, 5), p=cfg.blur_prob),
            A.GaussNoise(std_range=(0.02, 0.08), p=cfg.noise_prob),
        ])

    def __call__(self, crop: np.ndarray) -> np.ndarray:
        # albumentations keeps its own generators; reseed them from numpy so worker seeding decides everything
        self.compose.set_random_seed(int(np.random.randint(0, 2**31 - 1)))
        return self.compose(image=crop)["image"]
