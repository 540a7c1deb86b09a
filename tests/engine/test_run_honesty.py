"""Training says what it does: a GPUS list that the run does not match is a warning that states both global batches,
the config dump goes to the log file and not the console, and a conv-attention model trains through a last batch of
one sample."""

import glob
import math
import os

import pytest

from hrnet_pose.engine.outputs import close_logging
from hrnet_pose.engine.trainer import Trainer, global_batch_warning

from engine_testlib import tiny_train_cfg


@pytest.fixture(autouse=True)
def _close_log_handlers():
    """Trainers built without train() keep their console/file handlers: detach them after each test."""
    yield
    close_logging()


def test_global_batch_warning_states_both_batches():
    note = global_batch_warning((0, 1, 2, 3), world_size=1, batch_per_gpu=32)
    assert "global batch of 4 x 32 = 128" in note and "the global batch is 1 x 32 = 32" in note
    assert "torchrun --nproc_per_node 4" in note and "TRAIN.BATCH_SIZE_PER_GPU 128" in note
    assert global_batch_warning((0, 1, 2, 3), world_size=4, batch_per_gpu=32) is None
    assert "TRAIN.BATCH_SIZE_PER_GPU" not in global_batch_warning((0, 1, 2), world_size=2, batch_per_gpu=5)


def test_trainer_warns_when_gpus_and_world_size_differ(tiny_synthetic_root, tmp_path, caplog):
    cfg = tiny_train_cfg(tiny_synthetic_root, str(tmp_path), ["GPUS", "(0, 1, 2, 3)"])
    with caplog.at_level("WARNING"):
        Trainer(cfg, "tiny.yaml")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("global batch of 4 x 8 = 32" in w and "1 x 8 = 8" in w for w in warnings), warnings

    caplog.clear()
    with caplog.at_level("WARNING"):
        Trainer(tiny_train_cfg(tiny_synthetic_root, str(tmp_path / "one"), ["GPUS", "(0,)"]), "tiny.yaml")
    assert not [r for r in caplog.records if "global batch" in r.getMessage()]


def test_config_dump_goes_to_the_log_file_not_the_console(tiny_synthetic_root, tmp_path, capsys):
    trainer = Trainer(tiny_train_cfg(tiny_synthetic_root, str(tmp_path)), "tiny.yaml")
    console = capsys.readouterr().out
    assert "FINAL_CONV_KERNEL" not in console and "output " in console  # ordinary lines still reach the console
    logs = glob.glob(os.path.join(trainer.paths.output_dir, "tiny_*_train.log"))
    assert len(logs) == 1 and "FINAL_CONV_KERNEL: 1" in open(logs[0]).read()


def test_sk_trains_through_a_last_batch_of_one(tiny_synthetic_root, tmp_path):
    # 16 training samples in batches of 15: the second batch holds one sample
    opts = ["MODEL.EXTRA.ATTENTION.NAME", "sk", "TRAIN.BATCH_SIZE_PER_GPU", "15", "TRAIN.END_EPOCH", "1"]
    cfg = tiny_train_cfg(tiny_synthetic_root, str(tmp_path), opts)
    trainer = Trainer(cfg, "tiny.yaml")
    assert len(trainer.train_set) == 16
    curve = trainer.fit()["history"][0]["loss_curve"]
    assert len(curve) == 2 and all(math.isfinite(v) for v in curve)


def test_auto_resume_from_another_models_checkpoint_is_a_user_error(tiny_synthetic_root, tmp_path):
    from hrnet_pose.engine import checkpoint as ckpt_io
    from hrnet_pose.errors import is_user_error
    from hrnet_pose.models import CheckpointMismatchError

    plain = Trainer(tiny_train_cfg(tiny_synthetic_root, str(tmp_path)), "tiny.yaml")
    state = ckpt_io.build_checkpoint(epoch=1, model=plain.model, optimizer=plain.optimizer, scheduler=plain.scheduler,
                                     perf=0.0, best_perf=0.0, best_state_dict=None)
    ckpt_io.atomic_save(state, plain.ckpt_path)
    opts = ["AUTO_RESUME", "True", "MODEL.EXTRA.ATTENTION.NAME", "se"]
    cfg = tiny_train_cfg(tiny_synthetic_root, str(tmp_path), opts)
    with pytest.raises(CheckpointMismatchError, match="AUTO_RESUME: .*checkpoint.pth does not fit") as err:
        Trainer(cfg, "tiny.yaml")
    assert is_user_error(err.value) and "AUTO_RESUME False" in err.value.hint
