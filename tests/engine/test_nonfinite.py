"""The non-finite guard: a poisoned batch is skipped without touching weights or BN statistics, training goes on,
and too many in a row stop the run with a clear error."""

import math
import os

import pytest
import torch
from torch.utils.data import Dataset

from hrnet_pose.datasets.build import build_dataset
from hrnet_pose.engine import checkpoint as ckpt_io
from hrnet_pose.engine.trainer import NonFiniteLossError, Trainer

from engine_testlib import tiny_train_cfg


class Poisoned(Dataset):
    """The real training set with NaN written into the input of the samples in `bad`."""

    def __init__(self, base, bad):
        self.base, self.bad = base, set(bad)

    def __len__(self):
        return len(self.base)

    def __getitem__(self, index):
        image, target, weight, meta = self.base[index]
        if index in self.bad:
            image = image.clone()
            image[:, 3, 3] = float("nan")
        return image, target, weight, meta


def _trainer(root, out, opts, bad):
    cfg = tiny_train_cfg(root, out, ["TRAIN.END_EPOCH", "1"] + opts)
    base = build_dataset(cfg, "train")
    bad = range(len(base)) if bad == "all" else bad
    return Trainer(cfg, "tiny.yaml", train_dataset=Poisoned(base, bad))


# fused: the guard skips on the device (the flag read only at print time); unfused: read on the host each step
GUARDS = pytest.mark.parametrize("guard", [[], ["ENGINE.FUSED_OPTIMIZER", "True"]], ids=["host", "device"])


@pytest.mark.parametrize("ema", [[], ["ENGINE.EMA_DECAY", "0.9"]], ids=["no-ema", "ema"])
@GUARDS
def test_poisoned_batch_is_skipped_and_training_continues(tiny_synthetic_root, tmp_path, guard, ema):
    trainer = _trainer(tiny_synthetic_root, str(tmp_path), guard + ema, bad=[0])
    before = ckpt_io.bare_state_dict(trainer.model)
    result = trainer.fit()
    assert result["nonfinite_steps"] == 1  # 16 samples, batch 8: one of the two batches holds sample 0
    curve = result["history"][0]["loss_curve"]
    assert sum(math.isnan(v) for v in curve) == 1 and sum(math.isfinite(v) for v in curve) == 1
    final = torch.load(os.path.join(result["output_dir"], "final_state.pth"), weights_only=True)
    assert ckpt_io.state_is_finite(final)
    assert not torch.equal(final["final_layer.weight"], before["final_layer.weight"])  # the good batch trained
    best = torch.load(os.path.join(result["output_dir"], "model_best.pth"), weights_only=True)
    assert ckpt_io.state_is_finite(best) and math.isfinite(result["best_perf"])


def test_skipped_steps_leave_weights_and_bn_buffers_untouched(tiny_synthetic_root, tmp_path):
    trainer = _trainer(tiny_synthetic_root, str(tmp_path), ["ENGINE.MAX_NONFINITE", "100"], bad="all")
    before = ckpt_io.bare_state_dict(trainer.model)
    trainer.train_one_epoch(0)
    after = ckpt_io.bare_state_dict(trainer.model)
    assert trainer.nonfinite_total == 2
    for key in before:
        assert torch.equal(before[key], after[key]), key


@GUARDS
def test_consecutive_failures_stop_with_clear_message(tiny_synthetic_root, tmp_path, guard):
    trainer = _trainer(tiny_synthetic_root, str(tmp_path), ["ENGINE.MAX_NONFINITE", "2"] + guard, bad="all")
    with pytest.raises(NonFiniteLossError, match="MAX_NONFINITE=2"):
        trainer.fit()
    assert not os.path.exists(os.path.join(trainer.paths.output_dir, "model_best.pth"))


def test_non_finite_weights_are_never_saved_as_a_model_file(tmp_path):
    state = {"final_layer.weight": torch.ones(2, 3), "final_layer.bias": torch.tensor([0.0, float("nan")])}
    path = str(tmp_path / "final_state.pth")
    with pytest.raises(ckpt_io.NonFiniteWeightsError, match="final_layer.bias"):
        ckpt_io.save_weights(state, path)
    assert os.listdir(tmp_path) == []  # neither the file nor a temporary one is left
    state["final_layer.bias"] = torch.zeros(2)
    ckpt_io.save_weights(state, path)
    assert torch.equal(torch.load(path, weights_only=True)["final_layer.bias"], torch.zeros(2))
