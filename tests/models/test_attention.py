"""Attention / gating block library: factory contract, shapes, gradients, init invariants, per-block rules."""

import inspect

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hrnet_pose.models.attention import (attention_placement, create_attention, get_attention_class, list_attentions,
                                         reset_attention_parameters)

EXPECTED_PLACEMENT = {
    "se": "gate", "eca": "gate", "cbam": "gate", "scse": "gate", "sge": "gate", "strip": "gate",
    "sk": "conv", "splat": "conv", "softgate": "skip", "non_local": "context", "a2": "context",
    "scconv": "conv", "res2net": "conv", "mpm": "context",
}
ALL = sorted(EXPECTED_PLACEMENT)
SHAPE = (4, 32, 16, 12)  # batch 4: the BNs on pooled [N, d, 1, 1] tensors see more than two values per channel


def _input(seed: int = 0) -> torch.Tensor:
    return torch.randn(*SHAPE, generator=torch.Generator().manual_seed(seed))


def _build(name: str, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return create_attention(name, SHAPE[1], **kwargs)


def _grads(module: nn.Module, x: torch.Tensor) -> dict:
    """Gradient of a fixed random projection of the output (a plain sum would be blind behind a BN)."""
    module.zero_grad(set_to_none=True)
    out = module(x)
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    (out * w).sum().backward()
    return {n: p.grad for n, p in module.named_parameters()}


def _bad(grads: dict) -> list:
    """Names whose gradient is missing, non-finite or zero. Run in float64, where a gradient that is zero in exact
    arithmetic (e.g. a bias that cancels in a softmax or a BN) stays below 1e-9 instead of float32 noise ~1e-4."""
    return [n for n, g in grads.items() if g is None or not torch.isfinite(g).all() or g.abs().max() < 1e-9]


def test_registry_lists_every_block_with_its_placement():
    assert list_attentions() == ALL
    for name, placement in EXPECTED_PLACEMENT.items():
        assert attention_placement(name) == placement
    assert list_attentions("context") == ["a2", "mpm", "non_local"]
    assert attention_placement("") == "" and attention_placement(None) == ""
    assert attention_placement(" SE ") == "gate"


def test_empty_name_gives_no_module():
    assert create_attention("", 8) is None
    assert create_attention(None, 8) is None


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as e:
        create_attention("squeeze", 32)
    for name in ALL:
        assert name in str(e.value)
    with pytest.raises(ValueError):
        attention_placement("nonlocal")


@pytest.mark.parametrize("name,kwarg", [("se", "reduction"), ("eca", "kernel_size"), ("sge", "groups"),
                                        ("sk", "branches"), ("splat", "radix"), ("non_local", "sub_sample"),
                                        ("a2", "c_m"), ("scse", "combine"), ("strip", "reduction"),
                                        ("scconv", "pooling_r"), ("res2net", "scale"), ("mpm", "pool_sizes")])
def test_unknown_kwarg_lists_valid_kwargs(name, kwarg):
    with pytest.raises(TypeError) as e:
        create_attention(name, 32, reductoin=4)
    assert "reductoin" in str(e.value) and kwarg in str(e.value)
    default = inspect.signature(get_attention_class(name)).parameters[kwarg].default
    assert create_attention(name, 32, **{kwarg: default}) is not None  # the listed keyword is really accepted


def test_softgate_takes_no_kwargs():
    with pytest.raises(TypeError, match="none"):
        create_attention("softgate", 32, alpha=1.0)


@pytest.mark.parametrize("name", ALL)
def test_forward_shape(name):
    x = _input()
    assert _build(name)(x).shape == x.shape


@pytest.mark.parametrize("name", list_attentions("conv"))
def test_conv_blocks_stride_and_width(name):
    m = _build(name, out_channels=48, stride=2)
    assert m(_input()).shape == (SHAPE[0], 48, 8, 6)
    odd = torch.randn(2, 32, 9, 7)
    assert m(odd).shape == (2, 48, 5, 4)  # same rounding as a 3x3 pad-1 stride-2 conv


@pytest.mark.parametrize("name", ALL)
def test_every_parameter_gets_gradient(name):
    """Non-context blocks: on the first step. Context blocks start as the identity behind a zero output weight, so
    at init only that output layer gets gradient; after one SGD step every parameter must."""
    m = _build(name).double().train()
    x = _input().double()
    bad = _bad(_grads(m, x))
    if EXPECTED_PLACEMENT[name] == "context":
        torch.optim.SGD(m.parameters(), lr=0.1).step()
        bad = _bad(_grads(m, x))
    assert not bad, f"{name}: parameters without a finite non-zero gradient: {bad}"


@pytest.mark.parametrize("name", ALL)
def test_eval_forward_is_deterministic_and_per_sample(name):
    """In eval mode each sample's output depends on that sample alone: a BN left on batch statistics, or any op
    that mixes the batch, gives another answer for a sample alone than within the batch of four."""
    m = _build(name).double()
    x = _input().double()
    m.train()
    if EXPECTED_PLACEMENT[name] == "context":  # identity at init behind a zero weight: one step makes them act
        _grads(m, x)
        torch.optim.SGD(m.parameters(), lr=0.1).step()
    with torch.no_grad():
        m(x)  # move BN running stats away from their init so eval mode uses non-trivial statistics
        m(x.flip(0) * 1.5)  # and away from this batch's own statistics: train mode on x differs from eval
    m.eval()
    with torch.no_grad():
        out = m(x)
        assert torch.equal(out, m(x))
        # float64: other batch sizes may sum in another order, ~1e-15 relative; a batch-dependent op moves O(1e-1)
        for i in range(SHAPE[0]):
            torch.testing.assert_close(m(x[i:i + 1]), out[i:i + 1], atol=1e-10, rtol=1e-10)
        if any(isinstance(b, nn.modules.batchnorm._BatchNorm) for b in m.modules()):
            assert not torch.allclose(m.train()(x), out, atol=1e-3)  # so the check above can see train-mode BN


def _forward_fresh(name: str, mode: str):
    """(output, input) of a freshly built block `name` in train or eval `mode`, on the generic input, without grad."""
    m = _build(name)
    m.train(mode == "train")
    x = _input()
    with torch.no_grad():
        return m(x), x


@pytest.mark.parametrize("name", list_attentions("skip") + list_attentions("context"))
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_identity_at_init(name, mode):
    out, x = _forward_fresh(name, mode)
    assert torch.equal(out, x)


@pytest.mark.parametrize("name", list_attentions("context"))
def test_context_blocks_are_not_identity_after_training_step(name):
    m = _build(name).train()
    x = _input()
    _grads(m, x)
    torch.optim.SGD(m.parameters(), lr=0.1).step()
    with torch.no_grad():
        assert not torch.allclose(m(x), x)


@pytest.mark.parametrize("name", list_attentions("gate"))
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_gate_changes_generic_input(name, mode):
    out, x = _forward_fresh(name, mode)
    assert not torch.allclose(out, x, atol=1e-3)


@pytest.mark.parametrize("name", list_attentions("context") + ["softgate", "sge"])
def test_reset_attention_parameters_restores_designed_init(name):
    """A model-wide init like the official one (BN gamma=1, conv N(0, 0.001)) breaks the init invariants;
    reset_attention_parameters restores them."""
    model = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), _build(name))
    x = _input()
    expected = model[1](x)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, std=0.001)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
        elif isinstance(m, type(model[1])):
            for p in m.parameters(recurse=False):
                nn.init.normal_(p)
    assert not torch.allclose(model[1](x), expected)
    assert reset_attention_parameters(model) == 1
    with torch.no_grad():
        if name in ("softgate", "sge"):
            assert torch.equal(model[1](x), expected)
        else:
            assert torch.equal(model[1](x), x)


# Conv-type blocks and checkpoint loading.

@pytest.mark.parametrize("name", list_attentions("conv"))
def test_conv_blocks_declare_replaced_conv_key(name):
    cls = get_attention_class(name)
    assert "replaced_conv_key" in vars(cls)
    m = create_attention(name, 32, out_channels=48)
    key = m.replaced_conv_key
    if key is not None:
        assert m.state_dict()[key].shape == (48, 32, 3, 3)


@pytest.mark.parametrize("stride", [1, 2])
def test_sk_replaced_conv_is_a_plain_dense_conv(stride):
    m = _build("sk", out_channels=48, stride=stride).eval()
    key = m.replaced_conv_key
    assert key == "branches.0.conv.weight"
    weight = m.state_dict()[key]
    assert weight.shape == (48, 32, 3, 3)
    conv = m.get_submodule(key.rsplit(".", 1)[0])
    seen = {}
    conv.register_forward_hook(lambda mod, inp, out: seen.update(inp=inp[0], out=out))
    with torch.no_grad():
        m(_input())
        assert torch.equal(seen["inp"], _input())  # the branch conv sees the block input directly
        torch.testing.assert_close(seen["out"], F.conv2d(_input(), weight, stride=stride, padding=1))
    # an official conv2.weight loads into it strictly and is then what the branch uses
    official = torch.randn(48, 32, 3, 3)
    sd = m.state_dict()
    sd[key] = official
    m.load_state_dict(sd, strict=True)
    assert torch.equal(conv.weight, official)


def test_sk_grouped_has_no_dense_conv():
    m = create_attention("sk", 32, groups=4)
    assert m.replaced_conv_key is None
    assert get_attention_class("sk").replaced_conv_key == "branches.0.conv.weight"


def test_splat_has_no_dense_conv_and_validates_groups():
    assert create_attention("splat", 32).replaced_conv_key is None
    assert create_attention("splat", 32, radix=1, groups=2)(_input()).shape == SHAPE  # sigmoid path
    assert create_attention("splat", 32, radix=4, groups=2)(_input()).shape == SHAPE
    with pytest.raises(ValueError, match="groups\\*radix"):
        create_attention("splat", 30, radix=4)


# Per-block rules.

def test_se_hidden_width_has_a_floor():
    assert create_attention("se", 32).fc1.weight.shape == (8, 32, 1, 1)  # 32 / 16 = 2 -> floor 8
    assert create_attention("se", 256).fc1.weight.shape == (16, 256, 1, 1)
    assert create_attention("se", 32, reduction=2).fc1.weight.shape == (16, 32, 1, 1)
    with pytest.raises(ValueError, match="reduction"):
        create_attention("se", 32, reduction=0)


def test_eca_adaptive_kernel_size():
    assert create_attention("eca", 32).conv.kernel_size == (3,)
    assert create_attention("eca", 256).conv.kernel_size == (5,)
    assert create_attention("eca", 256, kernel_size=7).conv.kernel_size == (7,)
    with pytest.raises(ValueError, match="odd"):
        create_attention("eca", 32, kernel_size=4)


def test_sge_groups_default_and_validation():
    assert create_attention("sge", 32).groups == 8
    assert create_attention("sge", 36).groups == 6  # largest divisor of 36 not above 8
    assert create_attention("sge", 7).groups == 7
    with pytest.raises(ValueError, match="must divide channels=30"):
        create_attention("sge", 30, groups=8)
    m = create_attention("sge", 32)
    x = torch.randn(2, 32, 1, 1, requires_grad=True)  # 1x1 maps: zero variance must not give NaN
    m(x).sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(m.weight.grad).all()


def test_scse_combine_modes_differ():
    x = _input()
    add, mx = _build("scse", combine="add"), _build("scse", combine="max")
    mx.load_state_dict(add.state_dict())
    assert not torch.allclose(add(x), mx(x))
    with pytest.raises(ValueError, match="combine"):
        create_attention("scse", 32, combine="mul")


def test_softgate_scales_identity_per_channel():
    m = create_attention("softgate", 32)
    assert m.alpha.shape == (1, 32, 1, 1) and torch.equal(m.alpha, torch.ones(1, 32, 1, 1))
    with torch.no_grad():
        m.alpha[0, 3] = 0.5
    x = _input()
    out = m(x)
    assert torch.equal(out[:, 3], x[:, 3] * 0.5) and torch.equal(out[:, 4], x[:, 4])


@pytest.mark.parametrize("hw", [(5, 3), (1, 1), (8, 6)])
@pytest.mark.parametrize("sub_sample", [True, False])
def test_non_local_odd_and_tiny_maps(hw, sub_sample):
    m = create_attention("non_local", 32, sub_sample=sub_sample)
    nn.init.ones_(m.bn.weight)
    x = torch.randn(2, 32, *hw)
    assert m(x).shape == x.shape


def test_non_local_matches_explicit_softmax_attention():
    m = _build("non_local", sub_sample=False).eval()
    nn.init.ones_(m.bn.weight)
    x = _input()[:, :, :6, :5]
    q, k, v = (c(x).flatten(2) for c in (m.theta, m.phi, m.g))  # [N, C_i, HW]
    attn = torch.softmax(q.transpose(1, 2) @ k, dim=-1)  # [N, HW, HW], unscaled as in the paper
    y = (v @ attn.transpose(1, 2)).view(x.shape[0], -1, 6, 5)
    torch.testing.assert_close(m(x), x + m.bn(m.proj(y)))


def test_state_dict_keys_are_stable():
    """State names become checkpoint keys; renaming one breaks saved models."""
    expected = {
        "se": {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"},
        "eca": {"conv.weight"},
        "softgate": {"alpha"},
        "sge": {"weight", "bias"},
        "a2": {"conv_a.weight", "conv_a.bias", "conv_b.weight", "conv_v.weight", "conv_v.bias", "proj.weight"},
    }
    for name, keys in expected.items():
        assert set(create_attention(name, 32).state_dict()) == keys
    assert {"branches.0.conv.weight", "branches.1.conv.weight", "fc.weight", "select.weight"} <= set(
        create_attention("sk", 32).state_dict())
    assert {"theta.weight", "phi.weight", "g.weight", "proj.weight", "bn.weight"} <= set(
        create_attention("non_local", 32).state_dict())
