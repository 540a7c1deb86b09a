"""tools/train.py and tools/test.py on MPII end to end (synthetic MPII-format data, tiny HRNet, CPU): the PCKh table,
metrics.json equal to PCKh recomputed from the pred.mat the run wrote, the best model picked by Mean, the official MPII
yaml run unchanged by test.py, and a missing gt_valid.mat reported as one user error."""

import glob
import json
import os

import numpy as np
import pytest
import scipy.io
import torch

from hrnet_pose.config import load_config
from hrnet_pose.datasets.synthetic_mpii import generate_synthetic_mpii
from hrnet_pose.errors import run_cli
from hrnet_pose.evaluation.mpii import STATS_NAMES, evaluate_pckh, load_gt_mat
from hrnet_pose.models import build_model

from clitest import CPU_QUIET, load_tool
from testpaths import REPO

QUICKSTART = os.path.join(REPO, "experiments", "synthetic", "mpii_quickstart.yaml")
OFFICIAL_W32 = os.path.join(REPO, "experiments", "mpii", "hrnet", "w32_256x256_adam_lr1e-3.yaml")
COMMON = CPU_QUIET
HEADER = "| Arch | Head | Shoulder | Elbow | Wrist | Hip | Knee | Ankle | Mean | Mean@0.1 |"

pytestmark = pytest.mark.usefixtures("one_thread")


test_tool = load_tool("test")
train_tool = load_tool("train")


def _pckh_of_pred_mat(out_dir, root):
    """PCKh recomputed from what the run wrote: pred.mat (1-based) against the dataset's gt_valid.mat."""
    preds = scipy.io.loadmat(os.path.join(out_dir, "pred.mat"))["preds"] - np.float32(1)
    return evaluate_pckh(preds, load_gt_mat(os.path.join(root, "annot", "gt_valid.mat")))


def test_train_then_test_on_synthetic_mpii(tmp_path, capsys):
    root = str(tmp_path / "synthetic_mpii")  # generated on first use by DATASET.DATASET synthetic_mpii
    data = ["DATASET.ROOT", root, "SYNTHETIC.NUM_TRAIN_IMAGES", "8", "SYNTHETIC.NUM_VAL_IMAGES", "4"]
    train_opts = data + ["TRAIN.END_EPOCH", "3", "TRAIN.BATCH_SIZE_PER_GPU", "8", "TEST.INTERVAL", "1",
                         "ENGINE.WARMUP_ITERS", "0", "ENGINE.TENSORBOARD", "False"] + COMMON
    dirs = ["--modelDir", str(tmp_path / "output"), "--logDir", str(tmp_path / "log")]
    trained = train_tool.main(["--cfg", QUICKSTART] + dirs + train_opts)
    out_dir = str(tmp_path / "output" / "synthetic_mpii" / "pose_hrnet" / "mpii_quickstart")
    assert trained["output_dir"] == out_dir
    for name in ("checkpoint.pth", "model_best.pth", "final_state.pth", "pred.mat", "history.json"):
        assert os.path.isfile(os.path.join(out_dir, name)), name
    printed = capsys.readouterr().out
    assert printed.count(HEADER) == 3  # one table per validated epoch
    # the best model is the epoch with the highest Mean PCKh
    history = json.load(open(os.path.join(out_dir, "history.json")))
    means = [h["Mean"] for h in history]
    assert len(means) == 3 and all(0.0 <= m <= 100.0 for m in means)
    ckpt = torch.load(os.path.join(out_dir, "checkpoint.pth"), weights_only=False)
    assert ckpt["best_perf"] == max(means) and ckpt["perf"] == means[-1]
    best = torch.load(os.path.join(out_dir, "model_best.pth"), weights_only=True)
    assert all(torch.equal(best[k], v) for k, v in ckpt["best_state_dict"].items())

    tested = test_tool.main(["--cfg", QUICKSTART] + dirs + data + COMMON)  # final_state.pth of the run
    assert tested["model_file"] == os.path.join(out_dir, "final_state.pth")
    printed = capsys.readouterr().out
    assert HEADER in printed and tested["protocol"] in printed and "MPII PCKh@0.5" in tested["protocol"]
    metrics = json.load(open(os.path.join(out_dir, "metrics.json")))
    assert list(k for k in metrics if k in STATS_NAMES) == STATS_NAMES
    recomputed = _pckh_of_pred_mat(out_dir, root)
    for key in STATS_NAMES:
        # json round-trips floats exactly; NaN would only come from a joint never annotated in the split
        assert metrics[key] == tested[key] == recomputed[key], key
    assert metrics["Mean"] == means[-1]  # final_state.pth is the last epoch's weights: the same numbers
    assert metrics["boxes"] == "MPII annotation" and metrics["eval_backend"] == "mpii_pckh"
    assert metrics["pred_file"] == os.path.join(out_dir, "pred.mat")
    assert metrics["num_instances"] == len(json.load(open(os.path.join(root, "annot", "valid.json"))))


def test_official_mpii_yaml_runs_unchanged_in_test_py(tmp_path, capsys):
    root = generate_synthetic_mpii(str(tmp_path / "mpii"), num_train=0, num_val=2, seed=1, image_size=(256, 256))
    weights = str(tmp_path / "w32_random.pth")
    torch.manual_seed(0)
    torch.save(build_model(load_config(OFFICIAL_W32)).state_dict(), weights)
    result = test_tool.main(["--cfg", OFFICIAL_W32, "--modelDir", str(tmp_path / "output"), "DATASET.ROOT", root,
                             "TEST.MODEL_FILE", weights, "TEST.BATCH_SIZE_PER_GPU", "4"] + COMMON)
    out_dir = str(tmp_path / "output" / "mpii" / "pose_hrnet" / "w32_256x256_adam_lr1e-3")
    assert HEADER in capsys.readouterr().out
    assert result["flip_test"] is True and result["input_size"] == [256, 256] and result["decoder"] == "default"
    recomputed = _pckh_of_pred_mat(out_dir, root)
    assert all(result[k] == recomputed[k] or (np.isnan(result[k]) and np.isnan(recomputed[k])) for k in STATS_NAMES)
    assert glob.glob(os.path.join(out_dir, "w32_256x256_adam_lr1e-3_*_test.log"))


def test_missing_ground_truth_is_one_user_error(tmp_path, capsys):
    root = generate_synthetic_mpii(str(tmp_path / "mpii"), num_train=0, num_val=1, seed=2, image_size=(64, 64))
    os.remove(os.path.join(root, "annot", "gt_valid.mat"))
    weights = str(tmp_path / "w.pth")
    torch.save(build_model(load_config(QUICKSTART)).state_dict(), weights)
    code = run_cli(test_tool.main, ["--cfg", QUICKSTART, "--modelDir", str(tmp_path / "output"), "DATASET.ROOT", root,
                                    "TEST.MODEL_FILE", weights] + COMMON)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"error: MPII ground truth not found: {os.path.join(root, 'annot', 'gt_valid.mat')}" in err


def test_demo_draws_the_16_mpii_joints_with_an_mpii_config(tmp_path):
    """tools/demo.py with an MPII yaml (and its checkpoint; random weights here) predicts and draws MPII-16."""
    from hrnet_pose.apis.demo import run_demo
    from hrnet_pose.apis.estimator import PoseEstimator
    from hrnet_pose.keypoints import MPII16

    root = generate_synthetic_mpii(str(tmp_path / "mpii"), num_train=1, num_val=1, seed=2, image_size=(128, 128))
    image = sorted(glob.glob(os.path.join(root, "images", "*.jpg")))[0]
    est = PoseEstimator.from_config(QUICKSTART, None, device="cpu")
    assert est.keypoint_set.name == MPII16.name and est(image).keypoints.shape[1:] == (16, 2)
    out = tmp_path / "demo"
    summary = run_demo([image, "--config", QUICKSTART, "--weights", "none", "--device", "cpu", "--det-model", "none",
                        "--out-dir", str(out), "--no-progress"])
    with open(out / "predictions.json") as f:
        (pred,) = json.load(f)
    assert summary.persons == 1 and len(pred["keypoints"]) == 16 * 3
    assert os.path.isfile(out / os.path.basename(image))
