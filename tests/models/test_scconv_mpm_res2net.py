"""SCConv, the Mixed Pooling Module and Res2Net: each block equals a forward written here from its paper's equations
(on a fixed input, eval mode, float64), its shapes on HRNet's small maps, MPM's identity at init inside HRNet, and
the official tiny HRNet checkpoint in each variant (only the variant's own keys reported)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hrnet_pose.config import load_config
from hrnet_pose.models import build_model, load_weights
from hrnet_pose.models.attention import create_attention
from hrnet_pose.models.attention.helpers import adaptive_avg_pool

from testpaths import TINY_YAML

# float64 throughout: the module and the reference sum in different orders (~1e-16 relative); a wrong equation
# (a missing term, a swapped half, a wrong pool) moves the output by O(1e-1)
TOL = dict(atol=1e-10, rtol=1e-10)


def _fixed_input(shape, seed=0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _randomised(name: str, channels: int, **kwargs) -> nn.Module:
    """The block in float64 eval mode, with every BN given random statistics and affine parameters (so a BN that the
    reference forgot, or one the module skips, shows), and MPM's zero-initialised projection made non-zero."""
    torch.manual_seed(0)
    m = create_attention(name, channels, **kwargs).double().eval()
    g = torch.Generator().manual_seed(1)
    for bn in m.modules():
        if isinstance(bn, nn.BatchNorm2d):
            c = bn.num_features
            bn.running_mean.copy_(torch.randn(c, generator=g, dtype=torch.float64) * 0.1)
            bn.running_var.copy_(torch.rand(c, generator=g, dtype=torch.float64) + 0.5)
            bn.weight.data.copy_(torch.rand(c, generator=g, dtype=torch.float64) + 0.5)
            bn.bias.data.copy_(torch.randn(c, generator=g, dtype=torch.float64) * 0.1)
    return m


def _bn(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    """Eval-mode batch norm written out: (x - mean) / sqrt(var + eps) * gamma + beta, per channel."""
    shape = (1, -1, 1, 1)
    return ((x - bn.running_mean.view(shape)) / torch.sqrt(bn.running_var.view(shape) + bn.eps)
            * bn.weight.view(shape) + bn.bias.view(shape))


def _conv(x: torch.Tensor, conv: nn.Conv2d, stride: int = 1) -> torch.Tensor:
    pad = tuple(k // 2 for k in conv.kernel_size)
    return F.conv2d(x, conv.weight, conv.bias, stride=stride, padding=pad)


# SCConv (Liu et al. 2020, eqs. 1-4)

@pytest.mark.parametrize("stride", [1, 2])
def test_scconv_equals_the_papers_equations(stride):
    m = _randomised("scconv", 16, out_channels=24, stride=stride)
    x = _fixed_input((2, 16, 8, 12))
    r = 4
    x1, x2 = x[:, :8], x[:, 8:]
    n, c, h, w = x1.shape
    t1 = x1.reshape(n, c, h // r, r, w // r, r).mean((3, 5))  # T1 = AvgPool_r(X1), r x r windows
    k2 = _bn(_conv(t1, m.k2[0]), m.k2[1])
    x1_prime = k2.repeat_interleave(r, 2).repeat_interleave(r, 3)  # X1' = Up(T1 * K2), nearest
    y1_prime = _bn(_conv(x1, m.k3[0]), m.k3[1]) * torch.sigmoid(x1 + x1_prime)  # Y1' = (X1 * K3) . sigma(X1 + X1')
    y1 = _conv(y1_prime, m.k4, stride)  # Y1 = Y1' * K4 (the residual block's BN follows)
    y2 = _conv(x2, m.k1, stride)  # Y2 = X2 * K1
    with torch.no_grad():
        out = m(x)
    assert out.shape == (2, 24, 8 // stride, 12 // stride)
    torch.testing.assert_close(out, torch.cat([y1, y2], 1), **TOL)


@pytest.mark.parametrize("batch", [2, 1])
@pytest.mark.parametrize("hw", [(2, 2), (2, 3), (5, 7), (1, 1)])
def test_scconv_runs_on_maps_smaller_than_or_not_divisible_by_r(hw, batch):
    """HRNet's 1/32 branch is 2x2 at 64x48 input and 8x6 at 256x192, where AvgPool2d(4) would fail or drop rows; it
    pools to 1x1 there, which a last training batch of one image must survive (one value per channel in K2's BN)."""
    m = create_attention("scconv", 8).train()
    x = torch.randn(batch, 8, *hw, requires_grad=True)
    out = m(x)
    assert out.shape == x.shape
    out.square().sum().backward()
    assert torch.isfinite(x.grad).all()


def test_scconv_validates_its_arguments():
    with pytest.raises(ValueError, match="pooling_r"):
        create_attention("scconv", 8, pooling_r=0)
    with pytest.raises(ValueError, match="channels"):
        create_attention("scconv", 1)


@pytest.mark.parametrize("size_in,size_out", [((16, 12), (20, 20)), ((16, 12), (12, 12)), ((8, 6), (4, 3)),
                                              ((2, 3), (20, 20)), ((5, 7), (2, 2))])
def test_exportable_adaptive_pool_equals_torchs(size_in, size_out):
    x = _fixed_input((2, 3) + size_in)
    torch.testing.assert_close(adaptive_avg_pool(x, size_out), F.adaptive_avg_pool2d(x, size_out), **TOL)


# Res2Net (Gao et al. 2021, eq. 1)

def test_res2net_equals_the_papers_hierarchy():
    m = _randomised("res2net", 16)
    assert m.hierarchical and len(m.convs) == 3
    x = _fixed_input((2, 16, 6, 5))
    xs = x.split(4, dim=1)  # s = 4 groups of w = 4

    def k(i, t):  # K_i: 3x3 conv + BN + ReLU (authors' code)
        unit = m.convs[i - 2]
        return torch.relu(_bn(_conv(t, unit.conv), unit.bn))

    y1 = xs[0]  # y_1 = x_1
    y2 = k(2, xs[1])  # y_2 = K_2(x_2)
    y3 = k(3, xs[2] + y2)  # y_i = K_i(x_i + y_{i-1})
    y4 = k(4, xs[3] + y3)
    with torch.no_grad():
        torch.testing.assert_close(m(x), torch.cat([y1, y2, y3, y4], 1), **TOL)


def test_res2net_stage_form_and_scale():
    m = _randomised("res2net", 16, out_channels=24, stride=2)
    assert not m.hierarchical and len(m.convs) == 4
    x = _fixed_input((2, 16, 6, 5))
    ref = torch.cat([torch.relu(_bn(_conv(xi, u.conv, 2), u.bn)) for xi, u in zip(x.split(4, 1), m.convs)], 1)
    with torch.no_grad():
        out = m(x)
    assert out.shape == (2, 24, 3, 3)
    torch.testing.assert_close(out, ref, **TOL)
    assert len(create_attention("res2net", 32, scale=8).convs) == 7
    with pytest.raises(ValueError, match="scale=3 must divide channels=16"):
        create_attention("res2net", 16, scale=3)


# Mixed Pooling Module (Hou et al. 2020, section 3.3)

@pytest.mark.parametrize("hw", [(16, 12), (4, 3)])
def test_mpm_equals_the_papers_module(hw):
    m = _randomised("mpm", 16)
    x = _fixed_input((2, 16) + hw)
    h, w = hw

    def cbn(seq, t):  # conv + BN (+ ReLU when the Sequential has one)
        y = _bn(_conv(t, seq[0]), seq[1])
        return torch.relu(y) if len(seq) == 3 else y

    def up(t):
        return F.interpolate(t, size=(h, w), mode="bilinear", align_corners=True)

    u, v = cbn(m.reduce_short, x), cbn(m.reduce_long, x)  # two 1x1 reductions to C/4 = 4
    assert u.shape[1] == 4
    # short-range: 3x3 on the map + pyramid pools to 20x20 and 12x12 (SPNet), each 3x3 conv + BN, upsampled
    a = cbn(m.local, u) + up(cbn(m.pool_convs[0], F.adaptive_avg_pool2d(u, 20))) \
        + up(cbn(m.pool_convs[1], F.adaptive_avg_pool2d(u, 12)))
    # long-range: 1 x W and H x 1 strips (means over H, over W), 1x3 and 3x1 conv + BN, expanded back
    b = up(cbn(m.strip_w, v.mean(2, keepdim=True))) + up(cbn(m.strip_h, v.mean(3, keepdim=True)))
    fused = torch.cat([cbn(m.fuse_short, torch.relu(a)), cbn(m.fuse_long, torch.relu(b))], 1)
    ref = x + cbn(m.proj, fused)
    with torch.no_grad():
        torch.testing.assert_close(m(x), ref, **TOL)
        m.final_relu = True  # SPNet's own ending
        torch.testing.assert_close(m(x), torch.relu(ref), **TOL)


def test_mpm_defaults_and_validation():
    m = create_attention("mpm", 32)
    assert m.pool_sizes == (20, 12) and m.reduce_short[0].out_channels == 8 and not m.final_relu
    assert create_attention("mpm", 32, pool_sizes=[6, 3]).pool_sizes == (6, 3)  # a yaml list works
    with pytest.raises(ValueError, match="pool_sizes"):
        create_attention("mpm", 32, pool_sizes=(20,))
    x = torch.randn(2, 32, 1, 1)
    assert torch.equal(m(x), x)  # identity at init, even on a 1x1 map
    m.train()(torch.randn(1, 32, 1, 1)).sum().backward()  # and a batch of one 1x1 map trains


# Inside HRNet: the official tiny checkpoint in each variant

@pytest.mark.parametrize("name", ["scconv", "res2net", "mpm"])
def test_official_checkpoint_loads_into_each_variant(name, tiny_official):
    opts = ["MODEL.EXTRA.ATTENTION.NAME", name, "MODEL.EXTRA.ATTENTION.STAGES", "[2, 3, 4]"]
    torch.manual_seed(0)
    model = build_model(load_config(TINY_YAML, opts))
    official = tiny_official["state_dict"]
    report = load_weights(model, official)
    own = [k for k in model.state_dict() if k.startswith(tuple(model.attention_prefixes()))]
    assert own and report.missing_attention == own  # every key the variant adds, and nothing else
    assert not any(k in official for k in own)
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in official.items() if k in loaded)
    x, plain_out = tiny_official["input"], tiny_official["output"]
    model.eval()
    with torch.no_grad():
        out = model(x)
    if name == "mpm":  # a context block: identity at init, so the variant starts as the official network
        assert not report.replaced
        torch.testing.assert_close(out, plain_out, atol=1e-5, rtol=1e-4)
    else:  # conv-type without a dense 3x3 conv: each official conv2.weight it replaced is reported as such
        replaced = {n + ".weight" for n, mod in model.named_modules() if getattr(mod, "is_attention", False)}
        assert report.replaced and set(report.replaced) == replaced
        assert all(k.endswith("conv2.weight") and k not in loaded for k in report.replaced)
        assert out.shape == plain_out.shape and not torch.allclose(out, plain_out, atol=1e-3)
