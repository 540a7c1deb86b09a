"""tools/train.py then tools/test.py with the quickstart Lite-HRNet yaml on a tiny synthetic dataset, through their
main([...]) as a user runs them; and the train tool's one-line error for an input Lite-HRNet cannot take."""

import json
import math
import os

import pytest
import torch

from hrnet_pose.config import load_config
from hrnet_pose.datasets.synthetic import generate_synthetic_coco
from hrnet_pose.errors import run_cli
from hrnet_pose.models import build_model, load_weights
from hrnet_pose.models.litehrnet import LiteHRNet

from clitest import CPU_QUIET, load_tool
from testpaths import REPO

QUICKSTART = os.path.join(REPO, "experiments", "synthetic", "litehrnet_quickstart.yaml")
COMMON = CPU_QUIET + ["ENGINE.TENSORBOARD", "False"]

pytestmark = pytest.mark.usefixtures("one_thread")


def test_train_then_test_quickstart_litehrnet_on_synthetic(tmp_path, capsys):
    root = str(tmp_path / "synthetic")
    generate_synthetic_coco(root, num_train=6, num_val=3, seed=3, image_size=(128, 128), max_people=2)
    data = ["DATASET.ROOT", root, "SYNTHETIC.IMAGE_SIZE", "[128, 128]", "TEST.BATCH_SIZE_PER_GPU", "4"]
    opts = data + ["TRAIN.END_EPOCH", "2", "TRAIN.LR_STEP", "[1, 2]", "TRAIN.BATCH_SIZE_PER_GPU", "4",
                   "TEST.INTERVAL", "1", "ENGINE.WARMUP_ITERS", "2", "PRINT_FREQ", "1"] + COMMON
    dirs = ["--modelDir", str(tmp_path / "output"), "--logDir", str(tmp_path / "log")]
    trained = load_tool("train").main(["--cfg", QUICKSTART] + dirs + opts)
    out_dir = str(tmp_path / "output" / "synthetic" / "lite_hrnet" / "litehrnet_quickstart")
    assert trained["output_dir"] == out_dir
    for name in ("checkpoint.pth", "final_state.pth", "config.yaml", "history.json"):
        assert os.path.isfile(os.path.join(out_dir, name)), name
    assert "NAME: lite_hrnet" in open(os.path.join(out_dir, "config.yaml")).read()
    with open(os.path.join(out_dir, "history.json")) as f:
        history = json.load(f)
    assert [h["epoch"] for h in history] == [0, 1] and all(math.isfinite(h["loss"]) for h in history)

    # the saved weights are a Lite-HRNet state dict that loads strictly and was changed by training
    model = build_model(load_config(QUICKSTART))
    assert isinstance(model, LiteHRNet)
    load_weights(model, os.path.join(out_dir, "final_state.pth"))
    init = build_model(load_config(QUICKSTART), is_train=True)
    assert not torch.equal(model.final_layer.weight, init.final_layer.weight)

    capsys.readouterr()
    tested = load_tool("test").main(["--cfg", QUICKSTART] + dirs + data + COMMON)
    assert tested["model_file"] == os.path.join(out_dir, "final_state.pth")
    printed = capsys.readouterr().out
    assert "| Arch | AP |" in printed and "GT boxes, flip test off, decoder dark, input 64x96 (WxH)" in printed
    with open(os.path.join(out_dir, "metrics.json")) as f:
        assert json.load(f)["AP"] == tested["AP"]
    assert 0.0 <= tested["AP"] <= 1.0


def test_train_tool_refuses_an_input_size_with_one_message(tmp_path, capsys):
    status = run_cli(load_tool("train").main,
                     ["--cfg", QUICKSTART, "--modelDir", str(tmp_path / "output"), "--logDir", str(tmp_path / "log"),
                      "DATASET.ROOT", str(tmp_path / "none"), "MODEL.IMAGE_SIZE", "[64, 80]",
                      "MODEL.HEATMAP_SIZE", "[16, 20]"] + COMMON)
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert "MODEL.IMAGE_SIZE [64, 80] does not fit Lite-HRNet" in err.splitlines()[0]
