"""JointsMSELoss / JointsOHKMMSELoss: parity with the official losses, weight squared, batch 1, build_loss."""

from pathlib import Path

import numpy as np
import pytest
import torch

from hrnet_pose.models.loss import JointsMSELoss, JointsOHKMMSELoss, build_loss

import testpaths

FIX = Path(testpaths.FIXTURES)


@pytest.fixture(scope="module")
def tensors():
    ref = np.load(FIX / "official_postprocess_a_sliced.npz")
    out = {k: torch.from_numpy(ref[k]) for k in ("loss_output", "loss_target", "loss_target_weight")}
    out.update({k: float(ref[k]) for k in ("loss_mse_tw", "loss_mse_notw", "loss_mse_tw_batch1", "loss_ohkm_tw_top8")})
    return out


def test_mse_matches_official(tensors):
    o, t, w = tensors["loss_output"], tensors["loss_target"], tensors["loss_target_weight"]
    assert JointsMSELoss(True)(o, t, w).item() == pytest.approx(tensors["loss_mse_tw"], abs=1e-5, rel=1e-5)
    assert JointsMSELoss(False)(o, t, w).item() == pytest.approx(tensors["loss_mse_notw"], abs=1e-5, rel=1e-5)
    assert JointsMSELoss(True)(o[:1], t[:1], w[:1]).item() == pytest.approx(
        tensors["loss_mse_tw_batch1"], abs=1e-5, rel=1e-5)


def test_ohkm_matches_official(tensors):
    o, t, w = tensors["loss_output"], tensors["loss_target"], tensors["loss_target_weight"]
    got = JointsOHKMMSELoss(True, topk=8)(o, t, w).item()
    assert got == pytest.approx(tensors["loss_ohkm_tw_top8"], abs=1e-5, rel=1e-5)
    # batch 1 works (the official OHKM loss fails there)
    assert np.isfinite(JointsOHKMMSELoss(True, topk=8)(o[:1], t[:1], w[:1]).item())


def test_weight_enters_squared():
    o = torch.ones(1, 2, 4, 4)
    t = torch.zeros(1, 2, 4, 4)
    w1 = torch.tensor([[[1.0], [1.0]]])
    w2 = torch.tensor([[[0.5], [0.5]]])
    loss = JointsMSELoss(True)
    assert loss(o, t, w2).item() == pytest.approx(loss(o, t, w1).item() * 0.25)


def test_gradient_flows_and_shapes_checked():
    o = torch.randn(2, 17, 8, 6, requires_grad=True)
    loss = JointsMSELoss(True)(o, torch.zeros(2, 17, 8, 6), torch.ones(2, 17, 1))
    loss.backward()
    assert o.grad is not None and o.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="same shape"):
        JointsMSELoss(False)(o, torch.zeros(2, 17, 8, 5))
    with pytest.raises(ValueError, match="TOPK"):
        JointsOHKMMSELoss(False, topk=20)(o, torch.zeros_like(o))


def test_build_loss_picks_ohkm():
    from hrnet_pose.config import get_cfg

    cfg = get_cfg()
    cfg.defrost()
    assert isinstance(build_loss(cfg), JointsMSELoss)
    cfg.LOSS.USE_OHKM = True
    cfg.LOSS.TOPK = 4
    loss = build_loss(cfg)
    assert isinstance(loss, JointsOHKMMSELoss) and loss.topk == 4
