"""Optimizers (TRAIN.WD really applied, official Adam bug behind a switch), LR schedule order and warm-up, EMA."""

import pytest
import torch
import torch.nn as nn

from hrnet_pose.config import load_config
from hrnet_pose.engine.optim import ModelEma, MultiStepWarmupLR, build_optimizer, build_scheduler


def _cfg(*opts):
    return load_config(None, list(opts))


@pytest.mark.parametrize("name,cls", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW),
                                      ("sgd", torch.optim.SGD)])
def test_weight_decay_is_applied(name, cls):
    opt = build_optimizer(_cfg("TRAIN.OPTIMIZER", name, "TRAIN.WD", "0.01"), nn.Linear(2, 2))
    assert isinstance(opt, cls) and opt.param_groups[0]["weight_decay"] == 0.01


def test_official_adam_ignores_weight_decay_only_with_compat_switch():
    opt = build_optimizer(_cfg("TRAIN.WD", "0.01", "COMPAT.ADAM_IGNORES_WD", "True"), nn.Linear(2, 2))
    assert opt.param_groups[0]["weight_decay"] == 0.0


def test_unknown_optimizer_lists_valid_names():
    with pytest.raises(ValueError, match="adamw"):
        build_optimizer(_cfg("TRAIN.OPTIMIZER", "lamb"), nn.Linear(2, 2))


def _lrs(step_at_start: bool):
    cfg = _cfg("TRAIN.LR_STEP", "[170, 200]", "TRAIN.LR", "0.001",
               "COMPAT.SCHEDULER_STEP_AT_EPOCH_START", str(step_at_start))
    sched = build_scheduler(cfg, build_optimizer(cfg, nn.Linear(2, 2)))
    return [sched.apply(epoch, 0)[0] for epoch in range(210)]


def test_schedule_order_documented_and_official():
    ours = _lrs(False)
    assert sum(lr == pytest.approx(1e-3) for lr in ours) == 170  # epochs 0-169
    assert ours[170] == pytest.approx(1e-4) and ours[200] == pytest.approx(1e-5)
    # the official loop steps the scheduler before each epoch: epochs 0-168 at 1e-3 (169), 169-198 at 1e-4 (30),
    # 199-209 at 1e-5 (11)
    official = _lrs(True)
    counts = [sum(lr == pytest.approx(v) for lr in official) for v in (1e-3, 1e-4, 1e-5)]
    assert counts == [169, 30, 11]


def test_linear_warmup_and_resume_position():
    opt = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    sched = MultiStepWarmupLR(opt, [5], 0.1, warmup_iters=10, warmup_factor=0.01)
    assert sched.apply(0, 0)[0] == pytest.approx(0.001)
    assert sched.apply(0, 5)[0] == pytest.approx(0.1 * (0.01 * 0.5 + 0.5))
    assert sched.apply(1, 10)[0] == pytest.approx(0.1)
    assert sched.apply(5, 50)[0] == pytest.approx(0.01)
    other = MultiStepWarmupLR(torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1), [5], 0.1, 10, 0.01)
    other.load_state_dict(sched.state_dict())
    assert other.last_epoch == 5 and other.last_iter == 50


def test_ema_tracks_weights_and_copies_int_buffers():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = ModelEma(model, decay=0.5)
    start = ema.module[0].weight.clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    model[1].num_batches_tracked += 7
    ema.update(model)  # first update: decay min(0.5, 2/11)
    d = 2.0 / 11.0
    assert torch.allclose(ema.module[0].weight, start * d + (start + 1.0) * (1 - d))
    assert int(ema.module[1].num_batches_tracked) == 7
    with pytest.raises(ValueError, match="EMA_DECAY"):
        ModelEma(model, 1.5)
