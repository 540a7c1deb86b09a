"""Configuration defaults: every key of the official HRNet `lib/config/default.py`, same names and types.

Official yamls (`experiments/coco/hrnet/*.yaml`) merge unchanged. Unlike the official code, `MODEL.EXTRA` is declared in
full and is strict, so a misspelt architecture key is an error instead of being silently ignored. Keys that the official
code does not have live only under clearly named new nodes (MODEL.EXTRA.ATTENTION, MODEL.EXTRA.LITE_HRNET, CODEC, AUG,
COMPAT, ENGINE, SYNTHETIC) plus DATASET.KEYPOINT_SET, DATASET.SKIP_BAD_IMAGES, DATASET.FAST_DECODE,
DATASET.IMAGE_CACHE_DIR, TEST.INTERVAL and TEST.COCO_EVAL_BACKEND, and the block of custom-data keys
(DATASET.TRAIN_ANNOTATIONS / TEST_ANNOTATIONS / TRAIN_IMAGES / TEST_IMAGES / CATEGORY, TEST.METRICS / PCK_THRESHOLD).
"""

from yacs.config import CfgNode as CN

_C = CN()

_C.OUTPUT_DIR = ""  # root of checkpoints and results: OUTPUT_DIR/<dataset>/<model>/<cfg name>/
_C.LOG_DIR = ""  # root of TensorBoard event files: LOG_DIR/<dataset>/<model>/<cfg name>_<time>
_C.DATA_DIR = ""  # prefix joined onto DATASET.ROOT, MODEL.PRETRAINED and TEST.MODEL_FILE (official semantics)
_C.GPUS = (0,)  # official; len(GPUS) x BATCH_SIZE_PER_GPU = the yaml's global batch (warned when the run's differs)
_C.WORKERS = 4  # data loader worker processes per process
_C.PRINT_FREQ = 20  # log (and debug-image) interval in iterations
_C.AUTO_RESUME = False  # continue from OUTPUT_DIR/.../checkpoint.pth when it exists
_C.PIN_MEMORY = True  # pin host memory in data loaders (only used with CUDA)
_C.RANK = 0  # official key, unused: the rank comes from torchrun's environment

_C.CUDNN = CN()
_C.CUDNN.BENCHMARK = True  # cudnn autotuner (off when ENGINE.DETERMINISTIC)
_C.CUDNN.DETERMINISTIC = False  # cudnn deterministic algorithms
_C.CUDNN.ENABLED = True  # use cudnn at all

_C.MODEL = CN()
_C.MODEL.NAME = "pose_hrnet"  # architecture: 'pose_hrnet' (MODEL.EXTRA.STAGE2-4) or 'lite_hrnet' (EXTRA.LITE_HRNET)
_C.MODEL.INIT_WEIGHTS = True  # official init (N(0, 0.001) convs) then MODEL.PRETRAINED when training
_C.MODEL.PRETRAINED = ""  # ImageNet HRNet checkpoint (official hrnet_w32-36af842e.pth layout)
_C.MODEL.NUM_JOINTS = 17  # heatmap channels; must equal the keypoint set's size
_C.MODEL.TAG_PER_JOINT = True  # official key, unused by pose_hrnet
_C.MODEL.TARGET_TYPE = "gaussian"  # heatmap target type; only 'gaussian' (as the official code)
_C.MODEL.IMAGE_SIZE = [256, 256]  # network input (width, height)
_C.MODEL.HEATMAP_SIZE = [64, 64]  # heatmap (width, height); the model outputs input/4
_C.MODEL.SIGMA = 2  # gaussian target standard deviation in heatmap pixels

_C.MODEL.EXTRA = CN()
_C.MODEL.EXTRA.PRETRAINED_LAYERS = ["*"]  # top-level module names taken from MODEL.PRETRAINED; '*' for all
_C.MODEL.EXTRA.FINAL_CONV_KERNEL = 1  # kernel of the final heatmap conv (odd; 'same' padding keeps the size)


def _stage(num_modules: int, num_branches: int, num_blocks: list, num_channels: list, block: str = "BASIC") -> CN:
    node = CN()
    node.NUM_MODULES = num_modules  # high-resolution modules (each: branches then fusion) in this stage
    node.NUM_BRANCHES = num_branches  # parallel resolutions, 1/4 down to 1/(4*2^(n-1))
    node.BLOCK = block  # BASIC, BOTTLENECK or SOFTGATE (Bulat et al. 2020 hierarchical soft-gated block)
    node.NUM_BLOCKS = num_blocks  # residual blocks per branch
    node.NUM_CHANNELS = num_channels  # width per branch (before block expansion)
    node.FUSE_METHOD = "SUM"  # official key; only 'SUM' is built (anything else is an error)
    return node


_C.MODEL.EXTRA.STAGE2 = _stage(1, 2, [4, 4], [32, 64])  # stage 2 (defaults: HRNet-W32)
_C.MODEL.EXTRA.STAGE3 = _stage(4, 3, [4, 4, 4], [32, 64, 128])  # stage 3
_C.MODEL.EXTRA.STAGE4 = _stage(3, 4, [4, 4, 4, 4], [32, 64, 128, 256])  # stage 4

_C.MODEL.EXTRA.ATTENTION = CN()
_C.MODEL.EXTRA.ATTENTION.NAME = ""  # '' (official model) or a registered block: see hrnet_pose.models.attention
_C.MODEL.EXTRA.ATTENTION.STAGES = [2, 3, 4]  # which of stages 2-4 get the block
_C.MODEL.EXTRA.ATTENTION.BRANCHES = []  # branch ids that get it; [] = all (context blocks: all but the 1/4 branch)
_C.MODEL.EXTRA.ATTENTION.KWARGS = CN(new_allowed=True)  # constructor keywords, checked by the block's factory

# Lite-HRNet (MODEL.NAME lite_hrnet; Yu et al., CVPR 2021), MMPose's `extra` dict in this project's spelling. The
# defaults are Lite-HRNet-18; STAGE2-4, BLOCK and ATTENTION above are HRNet's and unused by it (FINAL_CONV_KERNEL is).
_C.MODEL.EXTRA.LITE_HRNET = CN()
_C.MODEL.EXTRA.LITE_HRNET.STEM = CN()
_C.MODEL.EXTRA.LITE_HRNET.STEM.STEM_CHANNELS = 32  # width of the first 3x3/2 conv (even: the stem halves it)
_C.MODEL.EXTRA.LITE_HRNET.STEM.OUT_CHANNELS = 32  # width of the 1/4 feature map the stem returns
_C.MODEL.EXTRA.LITE_HRNET.STEM.EXPAND_RATIO = 1.0  # expansion of the stem's inverted-residual branch
_C.MODEL.EXTRA.LITE_HRNET.STAGES = CN()  # one entry per stage in every list (MMPose's stages_spec)
_C.MODEL.EXTRA.LITE_HRNET.STAGES.NUM_MODULES = [2, 4, 2]  # modules (blocks then fusion) per stage; LH-30: [3, 8, 3]
_C.MODEL.EXTRA.LITE_HRNET.STAGES.NUM_BRANCHES = [2, 3, 4]  # parallel resolutions 1/4 .. 1/(4*2^(n-1)) per stage
_C.MODEL.EXTRA.LITE_HRNET.STAGES.NUM_BLOCKS = [2, 2, 2]  # blocks per branch in each module
_C.MODEL.EXTRA.LITE_HRNET.STAGES.MODULE_TYPE = ["LITE", "LITE", "LITE"]  # LITE (channel weighting) or NAIVE (shuffle)
_C.MODEL.EXTRA.LITE_HRNET.STAGES.WITH_FUSE = [True, True, True]  # fuse the branches after each module
_C.MODEL.EXTRA.LITE_HRNET.STAGES.REDUCE_RATIOS = [8, 8, 8]  # channel reduction of the cross-resolution weighting
_C.MODEL.EXTRA.LITE_HRNET.STAGES.NUM_CHANNELS = [[40, 80], [40, 80, 160], [40, 80, 160, 320]]  # widths per branch
_C.MODEL.EXTRA.LITE_HRNET.WITH_HEAD = True  # MMPose's IterativeHead (top-down refinement) before the final conv

_C.LOSS = CN()
_C.LOSS.USE_OHKM = False  # online hard keypoint mining (JointsOHKMMSELoss)
_C.LOSS.TOPK = 8  # joints kept by OHKM
_C.LOSS.USE_TARGET_WEIGHT = True  # multiply prediction and target by the per-joint weight
_C.LOSS.USE_DIFFERENT_JOINTS_WEIGHT = False  # scale target weights by the keypoint set's joints_weight

_C.DATASET = CN()
_C.DATASET.ROOT = ""  # dataset folder (official layout: annotations/, images/<set>/)
_C.DATASET.DATASET = "mpii"  # 'coco', 'mpii', 'synthetic' (COCO format) or 'synthetic_mpii' (MPII format)
# ... or a public keypoint set: 'coco_wholebody', 'crowdpose', 'ap10k', 'ochuman' (its own layout and evaluation)
_C.DATASET.TRAIN_SET = "train"  # training split name, e.g. train2017
_C.DATASET.TEST_SET = "valid"  # evaluation split name, e.g. val2017
_C.DATASET.DATA_FORMAT = "jpg"  # jpg/jpeg/png: images are read by file name; 'zip' archives are an error
_C.DATASET.HYBRID_JOINTS_TYPE = ""  # official key, unused
_C.DATASET.SELECT_DATA = False  # training: keep only boxes whose visible joints centre near the box (official)
_C.DATASET.FLIP = True  # random horizontal flip in training (p=0.5)
_C.DATASET.SCALE_FACTOR = 0.25  # scale jitter: s *= clip(randn*f + 1, 1-f, 1+f)
_C.DATASET.ROT_FACTOR = 30  # rotation jitter in degrees: clip(randn*f, -2f, 2f) with p=0.6
_C.DATASET.PROB_HALF_BODY = 0.0  # probability of cropping to the upper or lower body
_C.DATASET.NUM_JOINTS_HALF_BODY = 8  # half-body only when more visible joints than this
_C.DATASET.COLOR_RGB = False  # feed RGB (true) or BGR (false) to the network
_C.DATASET.KEYPOINT_SET = ""  # '' = the dataset's own (MPII-16 for mpii, else COCO-17), 'coco', 'mpii' or a yaml
# (built-in names also 'coco_wholebody', 'crowdpose', 'ap10k', 'ochuman': hrnet_pose/keypoint_sets/*.yaml)
_C.DATASET.SKIP_BAD_IMAGES = True  # training only: skip unreadable images with a warning instead of failing
_C.DATASET.FAST_DECODE = False  # decode JPEGs at 1/2, 1/4, 1/8 size when the box is that much larger than the input
_C.DATASET.IMAGE_CACHE_DIR = ""  # folder for decoded images (decode once, memory-map after; H*W*3 bytes per image)

_C.TRAIN = CN()
_C.TRAIN.LR_FACTOR = 0.1  # MultiStepLR gamma
_C.TRAIN.LR_STEP = [90, 110]  # MultiStepLR milestones (epochs)
_C.TRAIN.LR = 0.001  # base learning rate
_C.TRAIN.OPTIMIZER = "adam"  # adam, adamw or sgd
_C.TRAIN.MOMENTUM = 0.9  # sgd momentum
_C.TRAIN.WD = 0.0001  # weight decay (applied to adam too unless COMPAT.ADAM_IGNORES_WD)
_C.TRAIN.NESTEROV = False  # sgd nesterov
_C.TRAIN.GAMMA1 = 0.99  # official key, unused
_C.TRAIN.GAMMA2 = 0.0  # official key, unused
_C.TRAIN.BEGIN_EPOCH = 0  # first epoch (overridden by a resumed checkpoint)
_C.TRAIN.END_EPOCH = 140  # epochs to train (exclusive end)
_C.TRAIN.RESUME = False  # official key, unused: see AUTO_RESUME
_C.TRAIN.CHECKPOINT = ""  # official key, unused: see AUTO_RESUME
_C.TRAIN.BATCH_SIZE_PER_GPU = 32  # batch per process (global batch = this x world size)
_C.TRAIN.SHUFFLE = True  # shuffle training samples

_C.TEST = CN()
_C.TEST.BATCH_SIZE_PER_GPU = 32  # evaluation batch per process
_C.TEST.FLIP_TEST = False  # average with the flipped image's heatmaps
_C.TEST.POST_PROCESS = False  # quarter-pixel offset towards the higher neighbour
_C.TEST.SHIFT_HEATMAP = False  # shift flipped heatmaps one column right (official alignment fix; never under UDP)
_C.TEST.USE_GT_BBOX = False  # GT boxes (true) or detector boxes from COCO_BBOX_FILE (false)
_C.TEST.IMAGE_THRE = 0.1  # drop detector boxes scoring below this
_C.TEST.NMS_THRE = 0.6  # official key, unused
_C.TEST.SOFT_NMS = False  # soft OKS-NMS instead of OKS-NMS
_C.TEST.OKS_THRE = 0.5  # OKS-NMS threshold
_C.TEST.IN_VIS_THRE = 0.2  # keypoints above this score count in rescoring
_C.TEST.COCO_BBOX_FILE = ""  # detector results json (COCO format, category_id 1)
_C.TEST.BBOX_THRE = 1.0  # official key, unused
_C.TEST.MODEL_FILE = ""  # weights to evaluate (official, ours, or module.-prefixed)
_C.TEST.INTERVAL = 1  # validate every this many epochs during training (and after the last)
_C.TEST.COCO_EVAL_BACKEND = "numpy"  # OKS AP: 'numpy' (vectorised), 'pycocotools' or 'faster_coco_eval': same numbers

# Your own keypoints (issue 23): any COCO-format json and image folder instead of the official layout, and the metrics
# printed beside AP. A relative path is looked up under DATASET.ROOT first, then from the working directory.
_C.DATASET.TRAIN_ANNOTATIONS = ""  # training json; '' = ROOT/annotations/person_keypoints_<TRAIN_SET>.json
_C.DATASET.TEST_ANNOTATIONS = ""  # evaluation json; '' = ROOT/annotations/person_keypoints_<TEST_SET>.json
_C.DATASET.TRAIN_IMAGES = ""  # folder of the training json's file_names; '' = ROOT/images/<TRAIN_SET>
_C.DATASET.TEST_IMAGES = ""  # folder of the evaluation json's file_names; '' = ROOT/images/<TEST_SET>
_C.DATASET.CATEGORY = ""  # name of the category to train when a json has several keypoint categories
_C.TEST.METRICS = ["AP", "PCK", "EPE"]  # AP (OKS, always computed: it picks the best model), PCK (at PCK_THRESHOLD
# of the GT box's longer side, MMPose's bbox-normalised PCK), EPE (mean pixel error of labelled keypoints)
_C.TEST.PCK_THRESHOLD = 0.2  # PCK counts a keypoint correct within this fraction of max(box w, h)

_C.DEBUG = CN()
_C.DEBUG.DEBUG = False  # write debug images during training/validation
_C.DEBUG.SAVE_BATCH_IMAGES_GT = False  # batch images with GT joints
_C.DEBUG.SAVE_BATCH_IMAGES_PRED = False  # batch images with predicted joints
_C.DEBUG.SAVE_HEATMAPS_GT = False  # GT heatmaps over the images
_C.DEBUG.SAVE_HEATMAPS_PRED = False  # predicted heatmaps over the images

_C.CODEC = CN()
_C.CODEC.UDP = False  # unbiased data processing (Huang et al. 2020): changes encoding, warp and decoding together
_C.CODEC.DECODER = "default"  # 'default' (argmax + quarter offset when TEST.POST_PROCESS) or 'dark' (Zhang et al. 2020)
# CODEC.DECODER may also be 'dark_udp_mmpose' with CODEC.UDP: MMPose 1.x's DARK-UDP step (zero-border blur rescaled to
# each map's maximum) instead of the UDP authors' one that 'dark' gives under UDP (mirrored border, no rescaling)
# ... or 'mmpose' without UDP: MMPose 1.x's MSRAHeatmap decoding (quarter offset with its per-axis border rule)
_C.CODEC.DARK_BLUR_KERNEL = 11  # gaussian blur kernel of the DARK decoder (odd)
_C.CODEC.UNBIASED_ENCODING = False  # DARK targets: gaussian centred on the sub-pixel joint (not with UDP)

_C.AUG = CN()
_C.AUG.PHOTOMETRIC = False  # albumentations colour/blur/noise augmentation (off for official parity)
_C.AUG.BRIGHTNESS = 0.2  # brightness jitter limit
_C.AUG.CONTRAST = 0.2  # contrast jitter limit
_C.AUG.HUE_SHIFT = 10  # hue shift limit (degrees of the OpenCV hue circle)
_C.AUG.SAT_SHIFT = 20  # saturation shift limit
_C.AUG.BLUR_PROB = 0.1  # probability of a blur
_C.AUG.NOISE_PROB = 0.1  # probability of gaussian noise
_C.AUG.PROB = 0.5  # probability of the colour jitter

_C.COMPAT = CN()
_C.COMPAT.HALF_BODY_RANDN = False  # official bug: upper body chosen when randn() < 0.5 (p~0.69) instead of rand()
_C.COMPAT.ADAM_IGNORES_WD = False  # official bug: Adam built without weight decay, TRAIN.WD ignored
_C.COMPAT.SCHEDULER_STEP_AT_EPOCH_START = False  # official order: lr_scheduler.step() before each epoch

_C.ENGINE = CN()
_C.ENGINE.DEVICE = ""  # '' = cuda if available else cpu; or 'cpu', 'cuda', 'cuda:1' (torchrun: cuda:LOCAL_RANK)
_C.ENGINE.AMP = ""  # mixed precision: '' (fp32), 'bf16' (autocast, CPU or GPU) or 'fp16' (autocast + GradScaler)
_C.ENGINE.CHANNELS_LAST = False  # channels_last memory format for model and inputs (faster convs on tensor cores)
_C.ENGINE.EMA_DECAY = 0.0  # EMA of weights (e.g. 0.999); 0 = off. When on, validation and saved models use the EMA
_C.ENGINE.CLIP_GRAD = 0.0  # max global gradient L2 norm; 0 = no clipping
_C.ENGINE.MAX_NONFINITE = 20  # stop after this many consecutive non-finite losses/gradients (each such step is skipped)
_C.ENGINE.WARMUP_ITERS = 0  # linear learning-rate warm-up over this many iterations; 0 = off
_C.ENGINE.WARMUP_FACTOR = 0.001  # warm-up starts at LR x this factor
_C.ENGINE.SEED = 0  # seeds python/numpy/torch, re-derived per (seed, epoch, rank) so resumed runs see the same data
_C.ENGINE.DETERMINISTIC = False  # torch.use_deterministic_algorithms(True), cudnn deterministic, no benchmark
_C.ENGINE.SYNC_BN = False  # convert BatchNorm to SyncBatchNorm when distributed (global batch statistics)
_C.ENGINE.DIST_BACKEND = ""  # '' = nccl on CUDA, gloo on CPU; or 'nccl' / 'gloo'
_C.ENGINE.TENSORBOARD = True  # write TensorBoard events (rank 0) under LOG_DIR
_C.ENGINE.PROGRESS_BAR = True  # tqdm progress bars with ETA (rank 0), only when stderr is a terminal
_C.ENGINE.FUSED_OPTIMIZER = False  # fused Adam/AdamW/SGD where the device has it, else foreach (off: torch's default)
_C.ENGINE.COMPILE = ""  # torch.compile the model: '' (eager), 'default', 'reduce-overhead', 'max-autotune'
_C.ENGINE.CUDA_GRAPH = False  # CUDA graphs via compile mode 'reduce-overhead'; CUDA only, else a logged fallback
_C.ENGINE.GPU_NORMALIZE = False  # uint8 [B,H,W,3] batches are normalised on the device (float batches pass through)
_C.ENGINE.PERSISTENT_WORKERS = False  # keep train workers between epochs; their RNG then is not re-seeded per epoch
_C.ENGINE.PREFETCH_FACTOR = 2  # batches each loader worker prepares ahead (when WORKERS > 0)

_C.SYNTHETIC = CN()  # the generated COCO-format dataset (DATASET.DATASET: synthetic), made under DATASET.ROOT if absent
_C.SYNTHETIC.SEED = 0  # generator seed: same seed -> identical images and byte-identical json
_C.SYNTHETIC.NUM_TRAIN_IMAGES = 2000  # images in the 'train' split
_C.SYNTHETIC.NUM_VAL_IMAGES = 200  # images in the 'val' split
_C.SYNTHETIC.IMAGE_SIZE = [256, 256]  # generated image size (width, height)
_C.SYNTHETIC.MAX_PEOPLE = 3  # 1..MAX_PEOPLE annotated people per image
_C.SYNTHETIC.CROWD_PROB = 0.1  # probability of an image holding an iscrowd region of small figures
_C.SYNTHETIC.OCCLUDER_PROB = 0.3  # probability of an occluding rectangle (occluded joints get v=1)
_C.SYNTHETIC.DETECTIONS = True  # also write person_detection_results/synthetic_val_detections.json


def get_cfg() -> CN:
    """A fresh, mutable copy of the defaults."""
    return _C.clone()


def default(key: str):
    """The default of one dotted key (`default("TEST.OKS_THRE")` -> 0.5): the one place constructors take the
    defaults of knobs that change a reported number from, so a class built without a config and the same class built
    from `get_cfg()` follow the same protocol."""
    node = _C
    for part in key.split("."):
        if not isinstance(node, CN) or part not in node:
            raise KeyError(f"no config key {key!r}")
        node = node[part]
    if isinstance(node, CN):
        raise KeyError(f"{key!r} is a config node, not a value")
    return node
