"""Every attention / gating variant inside HRNet-W32 256x192 (the shipped experiments/coco/hrnet_attn yamls)."""

import glob
import os

import pytest
import torch

from hrnet_pose.config import load_config
from hrnet_pose.models import build_model, load_weights

from testpaths import EXPERIMENTS

ROOT = os.path.join(EXPERIMENTS, "coco")
VARIANTS = sorted(glob.glob(os.path.join(ROOT, "hrnet_attn", "*.yaml")))
IDENTITY_AT_INIT = {"softgate", "non_local", "a2", "mpm"}  # promised: the variant starts as the plain network


@pytest.fixture(scope="module")
def plain():
    torch.manual_seed(0)
    model = build_model(load_config(os.path.join(ROOT, "hrnet", "w32_256x192_adam_lr1e-3.yaml"))).eval()
    # output comparisons run at 64x48 (the same W32 network, 1/16 of the 256x192 cost on a 2-core CPU)
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        return model.state_dict(), x, model(x)


def test_every_registered_block_has_a_yaml():
    from hrnet_pose.models.attention import list_attentions
    names = {load_config(p).MODEL.EXTRA.ATTENTION.NAME for p in VARIANTS}
    assert set(list_attentions()) <= names


@pytest.mark.parametrize("path", VARIANTS, ids=[os.path.basename(p)[24:-5] for p in VARIANTS])
def test_variant(path, plain):
    official_state, x, plain_out = plain
    cfg = load_config(path)
    name = cfg.MODEL.EXTRA.ATTENTION.NAME
    torch.manual_seed(1)
    model = build_model(cfg)

    if cfg.MODEL.EXTRA.STAGE2.BLOCK == "SOFTGATE":
        # a different block type: no official weights apply; check shape, gradient and determinism only
        report = None
    else:
        report = load_weights(model, official_state)
        attn_keys = [k for k in model.state_dict() if k.startswith(tuple(model.attention_prefixes()))]
        assert attn_keys, "variant adds no attention module"
        # a conv-type block (sk) takes the official 3x3 conv weight into its dense branch: loaded, not missing
        remapped = {f"{n}.{m.replaced_conv_key}" for n, m in model.named_modules()
                    if getattr(m, "is_attention", False) and getattr(m, "replaced_conv_key", None)}
        expected_missing = [k for k in attn_keys if k not in official_state and k not in remapped]
        assert report.missing_attention == expected_missing
        if name == "splat":
            assert report.replaced and all(k.endswith("conv2.weight") for k in report.replaced)

    model.eval()
    with torch.no_grad():
        # the network is fully convolutional with stride 4: 64x48 in gives 16x12 out as 256x192 gives 64x48, the
        # yaml's heatmap size (a full 256x192 W32 forward per variant only to read a shape costs ~1 s each)
        assert tuple(cfg.MODEL.IMAGE_SIZE) == (192, 256) and tuple(cfg.MODEL.HEATMAP_SIZE) == (48, 64)
        out = model(x)
        assert out.shape == (2, 17, 16, 12)
        again = model(x)
    assert torch.equal(out, again), "eval output must be deterministic"
    if name in IDENTITY_AT_INIT and report is not None:
        torch.testing.assert_close(out, plain_out, atol=1e-5, rtol=1e-4)

    model.train()
    params = dict(model.named_parameters())
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    # W32 as configured, on a smaller input: the same parameters at a fraction of the 256x192 cost.
    # Context blocks attend over positions of the 1/32 branch, which needs more than one (sub-sampled) position.
    xb = torch.randn(2, 3, 128, 96) if name in ("non_local", "a2") else torch.randn(2, 3, 64, 48)
    for step in range(2):  # zero-initialised context blocks pass gradient everywhere only after one step
        opt.zero_grad()
        model(xb).square().mean().backward()
        if step == 0:
            opt.step()
    no_grad = [n for n, p in params.items() if p.grad is None or not torch.isfinite(p.grad).all()
               or float(p.grad.abs().max()) == 0.0]
    assert not no_grad, f"parameters without gradient: {no_grad[:10]}"
