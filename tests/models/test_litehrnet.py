"""Lite-HRNet (Yu et al., CVPR 2021): MMPose's key names and shapes, MMPose's outputs (its fusion quirk included),
training-mode forward and backward, config building and the input-size error.

Reference data (tests/fixtures/SOURCES.md): `mmpose_litehrnet_keys.json` lists the state dict of MMPose 1.3.2's
LiteHRNet-18 + HeatmapHead (and a digest of LiteHRNet-30's); `mmpose_litehrnet_tiny.pt` holds MMPose 1.3.2's
outputs for two tiny Lite-HRNets (LITE blocks only; NAIVE / LITE / NAIVE stages) on random weights.
"""

import hashlib
import json
import os

import pytest
import torch
from torch import nn

from hrnet_pose.config import load_config
from hrnet_pose.errors import is_user_error
from hrnet_pose.models import build_model, load_weights
from hrnet_pose.models.fuse import fold_batchnorm
from hrnet_pose.models.litehrnet import LiteHRModule, LiteHRNet
from hrnet_pose.models.litehrnet_blocks import channel_shuffle

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(REPO, "tests", "fixtures")
EXPERIMENTS = os.path.join(REPO, "experiments")
QUICKSTART = os.path.join(EXPERIMENTS, "synthetic", "litehrnet_quickstart.yaml")
TINY = dict(stem_channels=16, stem_out_channels=16, num_modules=(1, 1, 1),
            num_channels=((8, 16), (8, 16, 32), (8, 16, 32, 64)))

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def mmpose_keys():
    with open(os.path.join(FIXTURES, "mmpose_litehrnet_keys.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def mmpose_tiny():
    return torch.load(os.path.join(FIXTURES, "mmpose_litehrnet_tiny.pt"), weights_only=True)


def _strip(key: str) -> str:
    return key.split(".", 1)[1]  # backbone.X -> X, head.final_layer.X -> final_layer.X


@pytest.mark.parametrize("yaml_name", ["litehrnet_18_256x192.yaml", "litehrnet_30_384x288.yaml"])
def test_state_dict_is_mmpose_key_for_key(yaml_name, mmpose_keys):
    """Names, order and shapes of MMPose's backbone + head keys, with the prefixes dropped."""
    model = build_model(load_config(os.path.join(EXPERIMENTS, "coco", "litehrnet", yaml_name)))
    ours = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    ref = mmpose_keys[yaml_name[:12]]
    assert len(ours) == ref["num_keys"]
    assert sum(p.numel() for p in model.parameters()) == ref["num_params"]
    lines = "\n".join(f"{k} {tuple(s)}" for k, s in ours)
    renamed = "\n".join(f"{('backbone.' if not k.startswith('final_layer.') else 'head.') + k} {tuple(s)}"
                        for k, s in ours)
    assert hashlib.sha256(renamed.encode()).hexdigest() == ref["sha256_of_key_shape_lines"], lines[:300]
    if "keys" in ref:
        assert ours == [[_strip(k), s] for k, s in ref["keys"]]


@pytest.mark.parametrize("variant,module_type", [("lite", ("LITE",) * 3), ("naive", ("NAIVE", "LITE", "NAIVE"))])
def test_outputs_equal_mmpose_in_eval_and_train_mode(variant, module_type, mmpose_tiny):
    """The same weights give MMPose's heatmaps, and one training forward leaves the same BN statistics (MMPose's
    fusion runs the first downsampler twice, so its BN updates twice)."""
    ref = mmpose_tiny[variant]
    model = LiteHRNet(17, module_type=module_type, **TINY)
    load_weights(model, ref["state_dict"])  # MMPose 1.x layout, strictly
    x = mmpose_tiny["input"]
    model.eval()
    with torch.no_grad():
        out = model(x)
    # Written on this kind of machine the outputs are bit-identical; on another CPU (AVX2 / AVX-512, oneDNN's
    # algorithm) every conv sums in another order. ~70 convs of up to ~120 terms: a random walk of rounding of about
    # sqrt(70 * 120) * 2^-24 = 5e-6 of the values' scale, bounded by 2e-5 of it. A wrong fusion term moves
    # outputs by O(scale).
    _close_to_scale(out, ref["output_eval"], 2e-5)
    model.train()
    with torch.no_grad():
        out = model(x)
    # train-mode BN divides by the batch's own standard deviation (small for some channels of a batch of 2), which
    # amplifies that rounding layer by layer: 1e-4 of the scale, as for HRNet's train-mode reference
    _close_to_scale(out, ref["output_train"], 1e-4)
    state = model.state_dict()
    for key, value in ref["buffers_after_train_forward"].items():
        _close_to_scale(state[_strip(key)], value, 1e-4, msg=key)


def _close_to_scale(out: torch.Tensor, ref: torch.Tensor, scale_tol: float, msg: str = "") -> None:
    """Equal up to `scale_tol` x the reference's largest magnitude (rounding is relative to the summed values)."""
    torch.testing.assert_close(out, ref, atol=scale_tol * float(ref.abs().max()), rtol=0, msg=msg or None)


def test_fusion_reproduces_mmpose_quirk_from_its_definition():
    """y0 = 2 x0 + up(x1); y1 = 2 down(y0) + x1 (x: the blocks' outputs), then ReLU: the sums MMPose's in-place
    accumulation computes, which differ from HRNet's fusion (x0 + up(x1), down(x0) + x1)."""
    torch.manual_seed(0)
    module = LiteHRModule(2, 1, [8, 16], 8, "NAIVE").eval()
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.running_mean, -0.5, 0.5)
    x = [torch.randn(2, 8, 8, 8), torch.randn(2, 16, 4, 4)]
    with torch.no_grad():
        out = module(list(x))
        b = [branch(s) for branch, s in zip(module.layers, x)]
        up, down = module.fuse_layers[0][1], module.fuse_layers[1][0]
        y0 = 2 * b[0] + up(b[1])
        expected = [torch.relu(y0), torch.relu(2 * down(y0) + b[1])]
        hrnet_style = [torch.relu(b[0] + up(b[1])), torch.relu(down(b[0]) + b[1])]
    for o, e, h in zip(out, expected, hrnet_style):
        torch.testing.assert_close(o, e, atol=1e-6, rtol=1e-6)  # the same ops up to summation order
        assert (o - h).abs().max() > 1e-2


def test_channel_shuffle_interleaves_groups():
    x = torch.arange(6.0).reshape(1, 6, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert channel_shuffle(x, 3).flatten().tolist() == [0, 2, 4, 1, 3, 5]


@pytest.mark.parametrize("kwargs", [{}, {"module_type": ("NAIVE", "NAIVE", "LITE"), "with_head": False},
                                    {"with_fuse": (True, False, True)}])
def test_train_forward_backward_reaches_every_parameter(kwargs):
    torch.manual_seed(0)
    model = LiteHRNet(17, **TINY, **kwargs)
    model.init_weights()
    model.train()
    out = model(torch.randn(2, 3, 64, 96))
    assert out.shape == (2, 17, 16, 24)
    (out ** 2).mean().backward()
    missing = {n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()}
    # without the IterativeHead only branch 0 of the last module reaches the heatmaps, as in MMPose: the fusion
    # layers that make the other branches' outputs cannot get a gradient, and nothing else may lack one
    unused = set() if model.with_head else {n for n, _ in model.named_parameters()
                                            if n.startswith("stage2.0.fuse_layers.") and n.split(".")[3] != "0"}
    assert missing == unused


def test_lh18_eval_forward_shape_and_batch_independence():
    torch.manual_seed(0)
    model = build_model(load_config(os.path.join(EXPERIMENTS, "coco", "litehrnet", "litehrnet_18_256x192.yaml")))
    model.eval()
    x = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        both = model(x)
        one = model(x[1:])
    assert both.shape == (2, 17, 24, 16)
    torch.testing.assert_close(both[1:], one, atol=1e-6, rtol=1e-5)  # eval mode: no batch statistics


def test_quickstart_yaml_builds_and_folds_batchnorm():
    """The inference path folds conv + BN pairs (`fold_batchnorm`): the Sequential-based ConvModules fold too."""
    torch.manual_seed(0)
    model = build_model(load_config(QUICKSTART), is_train=True)
    assert isinstance(model, LiteHRNet) and model.input_divisor == 32
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.running_var, 0.5, 2.0)
            nn.init.uniform_(m.weight, 0.5, 1.5)
    model.eval()
    folded = fold_batchnorm(model)
    assert folded.folded_pairs == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    x = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        ref, out = model(x), folded(x)
    # folding re-rounds each conv's weights once (float64 products stored as float32): relative error ~1e-6 per
    # layer over ~30 layers
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)


def test_input_size_that_the_branches_cannot_divide_is_a_one_line_error():
    cfg = load_config(QUICKSTART, ["MODEL.IMAGE_SIZE", "[80, 96]", "MODEL.HEATMAP_SIZE", "[20, 24]"])
    with pytest.raises(ValueError) as err:
        build_model(cfg)
    msg = str(err.value)
    assert "\n" not in msg and is_user_error(err.value)
    assert "MODEL.IMAGE_SIZE [80, 96]" in msg and "multiples of 32" in msg and "[64, 96]" in msg
    model = build_model(load_config(QUICKSTART))
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.zeros(1, 3, 96, 80))


@pytest.mark.parametrize("opts,match", [
    (["MODEL.EXTRA.LITE_HRNET.STAGES.MODULE_TYPE", "['LITE', 'FAST', 'LITE']"], r"MODULE_TYPE 'FAST'; valid"),
    (["MODEL.EXTRA.LITE_HRNET.STAGES.NUM_MODULES", "[1, 1]"], r"STAGES\.NUM_MODULES has 2 entries"),
    (["MODEL.EXTRA.LITE_HRNET.STAGES.NUM_CHANNELS", "[[16, 32], [16, 32], [16, 32, 64, 128]]"],
     r"NUM_CHANNELS \[16, 32\] has 2 entries for NUM_BRANCHES 3"),
    (["MODEL.EXTRA.LITE_HRNET.STEM.STEM_CHANNELS", "15"], r"STEM_CHANNELS is 15"),
    (["MODEL.EXTRA.ATTENTION.NAME", "se"], r"MODEL\.EXTRA\.ATTENTION\.NAME is 'se'.*HRNet only"),
    (["MODEL.NAME", "lite-hrnet"], r"MODEL\.NAME 'lite-hrnet' is not supported; valid: \['pose_hrnet', 'lite_hrnet'\]"),
])
def test_config_errors_name_the_key(opts, match):
    with pytest.raises(ValueError, match=match) as err:
        build_model(load_config(QUICKSTART, opts))
    assert is_user_error(err.value)


def test_hrnet_configs_still_build_hrnet(tiny_cfg_path, tiny_official):
    """The new config node changes nothing for HRNet: the official tiny model still loads and runs as before."""
    model = build_model(load_config(tiny_cfg_path)).eval()
    assert type(model).__name__ == "PoseHighResolutionNet"
    load_weights(model, tiny_official["state_dict"])
    with torch.no_grad():
        torch.testing.assert_close(model(tiny_official["input"]), tiny_official["output"], atol=1e-5, rtol=1e-4)
