"""BN folding (models.fuse): the folded model gives the unfolded model's heatmaps to float32 rounding, for the
official tiny HRNet and for block variants with attention, and leaves what it cannot fold alone."""

import copy

import pytest
import torch
from torch import nn

from hrnet_pose.config import load_config
from hrnet_pose.models import build_model, load_weights
from hrnet_pose.models.fuse import fold_batchnorm, fold_conv_bn


def _randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics and affine parameters, as a trained model has."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3, generator=g)
                m.running_var.uniform_(0.3, 2.0, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.3, 0.3, generator=g)
    return model.eval()


def _count_bn(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_fold_conv_bn_equals_conv_then_bn():
    torch.manual_seed(0)
    for bias, affine in [(False, True), (True, True), (True, False)]:
        conv = nn.Conv2d(5, 7, 3, stride=2, padding=1, bias=bias)
        bn = _randomise_bn(nn.BatchNorm2d(7, affine=affine)) if affine else nn.BatchNorm2d(7, affine=False).eval()
        if not affine:
            bn.running_var.uniform_(0.5, 2.0)
        x = torch.randn(2, 5, 9, 11)
        with torch.no_grad():
            # one 45-term convolution with the BN scale rounded into the weights: a few float32 ulps of the output's
            # scale (~2), inside atol 1e-5 (measured: 7e-7)
            torch.testing.assert_close(fold_conv_bn(conv, bn)(x), bn(conv(x)), atol=1e-5, rtol=1e-5)


def test_folded_official_tiny_model_gives_the_same_heatmaps(tiny_cfg_path, tiny_official):
    model = build_model(load_config(tiny_cfg_path))
    load_weights(model, tiny_official["state_dict"])
    model = _randomise_bn(model)
    before = copy.deepcopy(model.state_dict())
    folded = fold_batchnorm(model)
    assert _count_bn(folded) == 0 and folded.folded_pairs == _count_bn(model)
    x = tiny_official["input"]
    with torch.no_grad():
        ref, out = model(x), folded(x)
    # folded weights are rounded products and the convolutions sum in their own order: over ~40 convolutions of up
    # to 576 terms about sqrt(40 * 576) * 2^-24 = 9e-6 of the output's scale (~2), so 2e-5 of the scale, not an
    # absolute 1e-5 (measured: 7e-7 of the scale, AVX2 and AVX-512)
    torch.testing.assert_close(out, ref, atol=2e-5 * float(ref.abs().max()), rtol=0)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the original is untouched
    cl = fold_batchnorm(model).to(memory_format=torch.channels_last)
    with torch.no_grad():
        # channels_last runs other convolution kernels as well: the same bound
        torch.testing.assert_close(cl(x.contiguous(memory_format=torch.channels_last)), ref,
                                   atol=2e-5 * float(ref.abs().max()), rtol=0)


@pytest.mark.parametrize("name,left", [("se", 0), ("sk", 1), ("softgate", 0)])
def test_attention_variants_fold_what_they_can(tiny_cfg_path, name, left):
    opts = ["MODEL.EXTRA.ATTENTION.NAME", name, "MODEL.EXTRA.ATTENTION.STAGES", "[2]"]
    if name == "softgate":
        opts = ["MODEL.EXTRA.STAGE2.BLOCK", "SOFTGATE"]
    torch.manual_seed(0)
    model = _randomise_bn(build_model(load_config(tiny_cfg_path, opts)))
    folded = fold_batchnorm(model)
    x = torch.randn(1, 3, 96, 64)
    with torch.no_grad():
        # as the plain model above: 2e-5 of the output's scale (measured: up to 9e-7 of it)
        torch.testing.assert_close(folded(x), model(x), atol=2e-5 * float(model(x).abs().max()), rtol=0)
    # SK replaces the 3x3 conv before bn2 with its own module: those BNs stay (one per SK block)
    assert (_count_bn(folded) > 0) == bool(left)


def test_training_mode_batchnorm_is_not_folded():
    block = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    folded = fold_batchnorm(block)  # returns an eval-mode copy: folded
    assert _count_bn(folded) == 0 and _count_bn(block) == 1
    bn = nn.BatchNorm2d(4, track_running_stats=False).eval()
    with pytest.raises(ValueError, match="running statistics"):
        fold_conv_bn(nn.Conv2d(3, 4, 3), bn)
