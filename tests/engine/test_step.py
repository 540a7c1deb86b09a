"""The training step (engine.step): the fast configuration (bf16, channels_last, fused optimizer, guard on the device)
follows the plain fp32 loss curve, a poisoned batch is skipped with weights, optimizer state, BN statistics and EMA
untouched, the device PCK and the device normalisation equal their numpy references, and CUDA-only paths fall back."""

import copy
import logging

import numpy as np
import pytest
import torch

from hrnet_pose.datasets.build import build_dataloader, build_dataset
from hrnet_pose.datasets.transforms import normalize_crops
from hrnet_pose.engine.optim import ModelEma, build_optimizer, is_fused
from hrnet_pose.engine.step import TrainStep, build_forward, normalize_on_device
from hrnet_pose.evaluation.pck import accuracy, accuracy_torch
from hrnet_pose.models import build_model
from hrnet_pose.models.loss import build_loss

from engine_testlib import tiny_train_cfg

NO_AUG = ["DATASET.FLIP", "False", "DATASET.ROT_FACTOR", "0", "DATASET.SCALE_FACTOR", "0.0",
          "DATASET.PROB_HALF_BODY", "0.0"]


@pytest.fixture(scope="module")
def setup(tiny_synthetic_root, tmp_path_factory):
    """The tiny config, its initial model weights and eight real training batches (input, target, weight)."""
    cfg = tiny_train_cfg(tiny_synthetic_root, str(tmp_path_factory.mktemp("step")), NO_AUG)
    torch.manual_seed(0)
    state = build_model(cfg, is_train=True).state_dict()
    loader = build_dataloader(cfg, build_dataset(cfg, "train"), "train")
    batches = [b[:3] for b in loader]
    return cfg, state, (batches * 8)[:8]


def _make_step(cfg, state, fused=False, amp="", channels_last=False, ema=False):
    cfg = cfg.clone()
    cfg.defrost()
    cfg.ENGINE.FUSED_OPTIMIZER = fused
    model = build_model(cfg, is_train=True)
    model.load_state_dict(state)
    model = model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    optimizer = build_optimizer(cfg, model, torch.device("cpu"))
    return TrainStep(model, model, optimizer, build_loss(cfg), torch.device("cpu"), amp=amp,
                     channels_last=channels_last, ema=ModelEma(model, 0.9) if ema else None)


def _progress(curve, frozen):
    """Mean loss reduction over the last four steps against the same batches at the initial weights."""
    return float(np.mean(np.asarray(frozen[-4:]) - np.asarray(curve[-4:])))


def test_fast_step_follows_the_plain_loss_curve(setup):
    cfg, state, batches = setup
    plain = _make_step(cfg, state)
    fast = _make_step(cfg, state, fused=True, amp="bf16", channels_last=True)
    assert fast.device_guard and not plain.device_guard and is_fused(fast.optimizer)
    frozen = _make_step(cfg, state)  # lr 0: the loss each batch has at the initial weights, i.e. a step that skips
    for group in frozen.optimizer.param_groups:
        group["lr"] = 0.0
    curves = {name: [float(step(*b).loss) for b in batches] for name, step in
              (("plain", plain), ("fast", fast), ("frozen", frozen))}
    assert all(np.isfinite(c).all() for c in curves.values())
    # same weights, bf16 forward: the first losses agree to bf16 precision (8-bit mantissa: 2^-9 = 0.2% relative
    # rounding per operation; the loss is a mean of squared errors, so its error stays well under 1%)
    assert curves["fast"][0] == pytest.approx(curves["plain"][0], rel=1e-2)
    plain_progress = _progress(curves["plain"], curves["frozen"])
    fast_progress = _progress(curves["fast"], curves["frozen"])
    assert plain_progress > 0.1 * np.mean(curves["frozen"])  # the plain step actually trains (~28% here)
    # Losses step by step are not comparable across precisions: Adam's first steps move every weight by about lr
    # whatever the gradient's size, so bf16 rounding (and the CPU's choice of kernels: AVX2 vs AVX-512, native or
    # emulated bf16) sends the curve along a different, equally good path (measured 7% apart at step 4 on one CPU).
    # What a correct step always does is make the same kind of progress; a step that skips or loses its update makes
    # none (the frozen step), and one that corrupts it makes negative or non-finite progress.
    assert 0.5 * plain_progress < fast_progress < 2.0 * plain_progress, (plain_progress, fast_progress)
    assert _progress(curves["frozen"], curves["frozen"]) < 0.5 * plain_progress  # the criterion catches a skip
    # fused fp32 Adam: the same formula in float32 with another operation order, so the curves agree to rounding
    # amplified over four Adam steps (each moves a weight by ~lr, sign decided by gradients that may be ~1e-7
    # relative apart), far below the ~8% by which one missed update changes the loss here
    fused32 = _make_step(cfg, state, fused=True)
    fused_curve = [float(fused32(*b).loss) for b in batches[:4]]
    np.testing.assert_allclose(fused_curve, curves["plain"][:4], rtol=1e-3)


def _snapshot(step):
    opt = {k: v.clone() for s in step.optimizer.state.values() for k, v in s.items()}
    return (copy.deepcopy(step.model.state_dict()), opt, copy.deepcopy(step.ema.module.state_dict()),
            int(step.ema.updates))


@pytest.mark.parametrize("where", ["target", "input"])
@pytest.mark.parametrize("fused", [True, False], ids=["device-guard", "host-guard"])
def test_poisoned_batch_is_skipped_and_bn_statistics_restored(setup, fused, where):
    """A NaN in the target makes only the loss non-finite; a NaN in the input already makes the forward write NaN
    into the BN running statistics, which must be restored before the EMA reads them."""
    cfg, state, batches = setup
    step = _make_step(cfg, state, fused=fused, ema=True)
    assert step.device_guard == fused
    step(*batches[0])  # optimizer state exists from here on
    model_before, opt_before, ema_before, updates = _snapshot(step)
    images, target, weight = batches[1]
    if where == "target":
        target = target.clone()
        target[0, 0, 3, 3] = float("nan")
    else:
        images = images.clone()
        images[0, :, 3, 3] = float("nan")
    out = step(images, target, weight)
    assert bool(out.skipped) and torch.isnan(out.loss)
    model_after, opt_after, ema_after, updates_after = _snapshot(step)
    assert any("running_mean" in k for k in model_after)
    for key in model_before:  # parameters and BN running_mean / running_var / num_batches_tracked
        assert torch.equal(model_before[key], model_after[key]), key
    for key in opt_before:  # Adam's exp_avg, exp_avg_sq and step count
        assert torch.equal(opt_before[key], opt_after[key]), key
    for key in ema_before:
        assert torch.equal(ema_before[key], ema_after[key]), key
        assert not ema_after[key].is_floating_point() or bool(torch.isfinite(ema_after[key]).all()), key
    assert updates_after == updates
    assert step.stats() == {"nonfinite_total": 1, "nonfinite_run": 1, "nonfinite_max_run": 1}
    good = step(*batches[1])
    assert not bool(good.skipped) and torch.isfinite(good.loss)
    assert not torch.equal(step.model.state_dict()["final_layer.weight"], model_before["final_layer.weight"])
    assert step.stats() == {"nonfinite_total": 1, "nonfinite_run": 0, "nonfinite_max_run": 1}


def test_ema_update_unless_matches_update_and_skips():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    a, b = ModelEma(model, 0.99), ModelEma(model, 0.99)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
        model[1].num_batches_tracked += 3
    a.update(model)
    b.update_unless(model, torch.tensor(False))
    for (key, va), vb in zip(a.module.state_dict().items(), b.module.state_dict().values()):
        torch.testing.assert_close(va, vb, rtol=1e-6, atol=1e-7, msg=key)
    before = copy.deepcopy(b.module.state_dict())
    b.update_unless(model, torch.tensor(True))
    assert int(b.updates) == 1 and b.state_dict()["updates"] == 1
    for key, value in before.items():
        assert torch.equal(value, b.module.state_dict()[key]), key


def test_device_pck_equals_numpy_pck(setup):
    _, _, batches = setup
    target = torch.cat([b[1] for b in batches[:2]])  # real encoded targets, some joints empty (all zero)
    gen = torch.Generator().manual_seed(0)
    cases = [target, target.roll(2, dims=3), target + 0.3 * torch.rand(target.shape, generator=gen),
             torch.rand(target.shape, generator=gen) - 0.5, torch.zeros_like(target)]
    for output in cases:
        acc_np, avg_np, cnt_np = accuracy(output.numpy(), target.numpy())
        acc_t, avg_t, cnt_t = accuracy_torch(output, target)
        np.testing.assert_array_equal(acc_t[1:].numpy(), acc_np[1:])
        assert int(cnt_t) == cnt_np and float(avg_t) == pytest.approx(avg_np, abs=1e-12)
        assert float(acc_t[0]) == pytest.approx(acc_np[0], abs=1e-12)
    assert 0.0 < accuracy(cases[2].numpy(), target.numpy())[1] < 1.0  # a case between all right and all wrong
    with pytest.raises(ValueError, match="one shape"):
        accuracy_torch(target, target[:, :1])


def test_device_normalisation_equals_the_loader_normalisation():
    crops = np.random.default_rng(0).integers(0, 256, size=(2, 12, 10, 3), dtype=np.uint8)
    crops[0, 0, 0] = (0, 128, 255)
    expected = torch.from_numpy(normalize_crops(crops))
    for channels_last in (False, True):
        got = normalize_on_device(torch.from_numpy(crops), channels_last)
        assert got.shape == (2, 3, 12, 10) and torch.equal(got, expected)
    with pytest.raises(ValueError, match="uint8 crops"):
        normalize_on_device(expected)


def test_cuda_graph_and_bad_compile_mode_on_cpu(caplog):
    net = torch.nn.Conv2d(3, 3, 1)
    with caplog.at_level(logging.WARNING):
        forward, kind = build_forward(net, torch.device("cpu"), "", cuda_graph=True)
    assert forward is net and kind == "eager"
    assert any("CUDA graphs need a CUDA device" in r.getMessage() for r in caplog.records)
    with pytest.raises(ValueError, match="ENGINE.COMPILE is 'fast'"):
        build_forward(net, torch.device("cpu"), "fast")


@pytest.mark.cuda
def test_fused_step_on_cuda_skips_a_poisoned_batch(setup):
    cfg, state, batches = setup
    cfg = cfg.clone()
    cfg.defrost()
    cfg.ENGINE.FUSED_OPTIMIZER = True
    device = torch.device("cuda")
    model = build_model(cfg, is_train=True)
    model.load_state_dict(state)
    model = model.to(device, memory_format=torch.channels_last)
    step = TrainStep(model, model, build_optimizer(cfg, model, device), build_loss(cfg).to(device), device,
                     amp="bf16", channels_last=True)
    assert step.device_guard
    step(*batches[0])
    before = copy.deepcopy(model.state_dict())
    images, target, weight = batches[1]
    poisoned = target.clone()
    poisoned[0, 0, 3, 3] = float("nan")
    assert bool(step(images, poisoned, weight).skipped)
    for key, value in before.items():
        assert torch.equal(value, model.state_dict()[key]), key


def test_step_benchmark_rows_on_cpu(setup):
    from hrnet_pose.benchmarks.train_step import benchmark_train_step, format_step_table

    cfg, _, _ = setup
    rows = benchmark_train_step(cfg, torch.device("cpu"), batch=2, iters=1, warmup=0)
    assert [r["variant"] for r in rows] == ["plain", "fast"]
    assert rows[0]["amp"] == "fp32" and rows[0]["guard"] == "host" and not rows[0]["channels_last"]
    assert rows[1]["amp"] == "bf16" and rows[1]["guard"] == "device" and rows[1]["fused"]
    assert "skipped: cpu device" in rows[1]["note"] and rows[1]["speedup"] > 0
    assert "speed-up x" in format_step_table(rows)
