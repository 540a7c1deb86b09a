"""Conv-type attention blocks (SK, split-attention) in training: a batch of one trains, and the ImageNet init gives SK
the same pretrained 3x3 weights as the plain model (as the checkpoint loader does), so an SK-vs-plain ablation is fair.
"""

import pytest
import torch

from hrnet_pose.config import load_config
from hrnet_pose.models import build_model, load_pretrained
from hrnet_pose.models.attention.sk import PooledBatchNorm2d

from testpaths import TINY_YAML

BACKBONE = ["conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "stage2", "transition2", "stage3",
            "transition3", "stage4"]  # the official yamls' PRETRAINED_LAYERS: everything but final_layer


def _tiny(attention, opts=()):
    return load_config(TINY_YAML, ["MODEL.EXTRA.ATTENTION.NAME", attention] + list(opts))


def _pooled_bns(model):
    return [m for m in model.modules() if isinstance(m, PooledBatchNorm2d)]


@pytest.mark.parametrize("name", ["sk", "splat"])
def test_training_step_on_a_batch_of_one(name):
    torch.manual_seed(0)
    model = build_model(_tiny(name)).train()
    bns = _pooled_bns(model)
    assert bns  # the BNs on pooled vectors are the ones that fail on one sample
    before = [bn.running_mean.clone() for bn in bns]
    out = model(torch.randn(1, 3, 96, 64))
    out.square().mean().backward()
    assert out.shape == (1, 17, 24, 16) and torch.isfinite(out).all()
    # one sample has no batch variance: normalised with the running statistics, which stay as they were
    assert all(torch.equal(b, bn.running_mean) for b, bn in zip(before, bns))
    assert all(bn.weight.grad is not None and torch.isfinite(bn.weight.grad).all() for bn in bns)
    model(torch.randn(2, 3, 96, 64))  # two samples: ordinary batch statistics, running estimates move
    assert not any(torch.equal(b, bn.running_mean) for b, bn in zip(before, bns))


def test_pooled_batchnorm_matches_batchnorm_elsewhere():
    torch.manual_seed(0)
    ours, ref = PooledBatchNorm2d(8), torch.nn.BatchNorm2d(8)
    x = torch.randn(4, 8, 1, 1)
    assert torch.equal(ours(x), ref(x)) and torch.equal(ours.running_var, ref.running_var)
    ours.eval(), ref.eval()
    assert torch.equal(ours(x[:1]), ref(x[:1]))
    assert list(ours.state_dict()) == list(ref.state_dict())


@pytest.fixture()
def imagenet_file(tmp_path):
    """An ImageNet-style HRNet checkpoint: the plain backbone's weights plus classifier-only entries."""
    torch.manual_seed(3)
    state = build_model(_tiny("")).state_dict()
    state["incre_modules.0.0.conv1.weight"] = torch.randn(4, 16, 1, 1)
    state["classifier.weight"] = torch.randn(1000, 64)
    path = str(tmp_path / "hrnet_imagenet.pth")
    torch.save(state, path)
    return path, state


def test_imagenet_init_puts_the_3x3_weights_into_sk(imagenet_file):
    path, state = imagenet_file
    cfg = _tiny("sk", ["MODEL.PRETRAINED", path, "MODEL.EXTRA.PRETRAINED_LAYERS", str(BACKBONE)])
    model = build_model(cfg, is_train=True)  # official init, then MODEL.PRETRAINED
    sks = [n for n, m in model.named_modules() if type(m).__name__ == "SelectiveKernel"]
    assert len(sks) == 9  # one per BASIC block of stages 2-4 (2 + 3 + 4 branches, 1 block each)
    weights = model.state_dict()
    for prefix in sks:
        assert torch.equal(weights[f"{prefix}.branches.0.conv.weight"], state[f"{prefix}.weight"]), prefix
    assert torch.equal(weights["stage2.0.branches.0.0.conv1.weight"], state["stage2.0.branches.0.0.conv1.weight"])


def test_imagenet_init_reports_what_splat_cannot_take(imagenet_file):
    path, state = imagenet_file
    model = build_model(_tiny("splat"))
    report = load_pretrained(model, path, BACKBONE)
    conv2 = sorted(k for k in state if k.startswith("stage") and k.endswith("conv2.weight"))
    assert sorted(report.replaced) == conv2  # grouped conv: no dense 3x3 to take them, listed as replaced
    assert report.ignored == []  # the classifier entries are outside PRETRAINED_LAYERS
