"""tools/train.py and tools/test.py end to end through main([...]): official arguments, output layout, logs,
TensorBoard, debug images, metrics.json; test.py on real COCO images with official weights (GT and detector boxes)."""

import glob
import json
import os
import shutil

import pytest
import torch

from hrnet_pose.datasets.synthetic import generate_synthetic_coco
from hrnet_pose.evaluation import run_cocoeval
from hrnet_pose.models import CheckpointMismatchError

from clitest import CPU_QUIET, load_tool
from testpaths import FIXTURES, REPO, TINY_YAML


test_tool = load_tool("test")
train_tool = load_tool("train")

STATS = ["AP", "Ap .5", "AP .75", "AP (M)", "AP (L)", "AR", "AR .5", "AR .75", "AR (M)", "AR (L)"]
COMMON = CPU_QUIET


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    """tests/fixtures/coco_real_mini (val2017 part) copied into the official data/coco layout."""
    src = os.path.join(FIXTURES, "coco_real_mini")
    root = tmp_path_factory.mktemp("data") / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "images" / "val2017").mkdir(parents=True)
    (root / "person_detection_results").mkdir()
    shutil.copy(os.path.join(src, "annotations", "person_keypoints_mini_val2017.json"),
                root / "annotations" / "person_keypoints_val2017.json")
    with open(root / "annotations" / "person_keypoints_val2017.json") as f:
        for image in json.load(f)["images"]:
            shutil.copy(os.path.join(src, "images", image["file_name"]), root / "images" / "val2017")
    det = "COCO_val2017_detections_AP_H_56_person_mini.json"
    shutil.copy(os.path.join(src, "person_detection_results", det), root / "person_detection_results" / det)
    return str(root)


def _check_outputs(out_dir, result, num_instances, capsys, ann_file):
    printed = capsys.readouterr().out
    assert "| Arch | AP | Ap .5 | AP .75 | AP (M) | AP (L) | AR | AR .5 | AR .75 | AR (M) | AR (L) |" in printed
    with open(os.path.join(out_dir, "metrics.json")) as f:
        metrics = json.load(f)
    # every stat is what pycocotools computes from the results json the run wrote, not merely a number in range
    expected = run_cocoeval(ann_file, os.path.join(out_dir, "results", "keypoints_val2017_results_0.json"))
    for key in STATS:
        assert metrics[key] == result[key] == expected[key]
    assert metrics["num_instances"] == num_instances
    assert metrics["input_size"] == [64, 96] and metrics["flip_test"] is True and metrics["decoder"] == "default"
    assert metrics["protocol"] in printed  # the table is followed by boxes / flip / decoder / input size
    with open(os.path.join(out_dir, "results", "keypoints_val2017_results_0.json")) as f:
        results = json.load(f)
    assert results and len(results[0]["keypoints"]) == 51
    assert glob.glob(os.path.join(out_dir, "official_hrnet_tiny_a_*_test.log"))
    return metrics, printed


def _official_release_file(tmp_path) -> str:
    """The official tiny model's state dict saved alone, the form of an official release `.pth`."""
    path = str(tmp_path / "official_hrnet_tiny_a.pth")
    torch.save(torch.load(os.path.join(FIXTURES, "official_hrnet_tiny_a.pt"), weights_only=True)["state_dict"], path)
    return path


def test_test_py_official_weights_on_real_coco(coco_root, tmp_path, capsys):
    weights = _official_release_file(tmp_path)
    base = ["--cfg", TINY_YAML, "--modelDir", str(tmp_path / "output"),
            "--dataDir", os.path.dirname(coco_root), "DATASET.ROOT", "coco", "TEST.MODEL_FILE", weights] + COMMON
    out_dir = str(tmp_path / "output" / "coco" / "pose_hrnet" / "official_hrnet_tiny_a")

    gt = test_tool.main(base)
    ann = os.path.join(coco_root, "annotations", "person_keypoints_val2017.json")
    metrics, printed = _check_outputs(out_dir, gt, 12, capsys, ann)  # 12 persons with keypoints in the 4 images
    assert metrics["boxes"] == "GT" and "GT boxes, flip test on, decoder default, input 64x96" in printed

    det_file = os.path.join(coco_root, "person_detection_results", "COCO_val2017_detections_AP_H_56_person_mini.json")
    det = test_tool.main(base + ["TEST.USE_GT_BBOX", "False", "TEST.COCO_BBOX_FILE", det_file])
    metrics, printed = _check_outputs(out_dir, det, 118, capsys, ann)  # every detector box (IMAGE_THRE 0.0)
    assert metrics["boxes"] == "detector" and metrics["bbox_file"] == det_file
    assert f"detector boxes from {det_file}" in printed


def test_test_py_loads_prefixed_weights_strictly(coco_root, tmp_path, capsys):
    state = torch.load(_official_release_file(tmp_path), weights_only=True)
    prefixed = str(tmp_path / "ddp.pth")
    torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in state.items()}}, prefixed)
    base = ["--cfg", TINY_YAML, "--modelDir", str(tmp_path / "output"), "DATASET.ROOT", coco_root] + COMMON
    result = test_tool.main(base + ["TEST.MODEL_FILE", prefixed, "TEST.FLIP_TEST", "False"])
    assert result["flip_test"] is False and "flip test off" in capsys.readouterr().out

    del state["final_layer.bias"]
    broken = str(tmp_path / "broken.pth")
    torch.save(state, broken)
    with pytest.raises(CheckpointMismatchError, match="final_layer.bias"):
        test_tool.main(base + ["TEST.MODEL_FILE", broken])


def test_train_then_test_on_synthetic(tmp_path, capsys):
    root = str(tmp_path / "synthetic")
    generate_synthetic_coco(root, num_train=4, num_val=3, seed=5, image_size=(128, 128), max_people=2)
    opts = ["DATASET.DATASET", "synthetic", "DATASET.ROOT", root, "DATASET.TRAIN_SET", "train",
            "DATASET.TEST_SET", "val", "SYNTHETIC.IMAGE_SIZE", "[128, 128]", "MODEL.PRETRAINED", "",
            "TRAIN.END_EPOCH", "2", "TRAIN.BATCH_SIZE_PER_GPU", "4", "TEST.BATCH_SIZE_PER_GPU", "4",
            "PRINT_FREQ", "1", "DEBUG.DEBUG", "True", "DEBUG.SAVE_BATCH_IMAGES_GT", "True",
            "DEBUG.SAVE_BATCH_IMAGES_PRED", "True", "DEBUG.SAVE_HEATMAPS_GT", "True",
            "DEBUG.SAVE_HEATMAPS_PRED", "True", "ENGINE.TENSORBOARD", "True"] + COMMON
    dirs = ["--modelDir", str(tmp_path / "output"), "--logDir", str(tmp_path / "log")]
    trained = train_tool.main(["--cfg", TINY_YAML] + dirs + opts)
    out_dir = str(tmp_path / "output" / "synthetic" / "pose_hrnet" / "official_hrnet_tiny_a")
    assert trained["output_dir"] == out_dir
    for name in ("checkpoint.pth", "model_best.pth", "final_state.pth", "config.yaml", "history.json",
                 "train_0_gt.jpg", "train_0_pred.jpg", "train_0_hm_gt.jpg", "train_0_hm_pred.jpg", "val_0_hm_pred.jpg",
                 "results/keypoints_val_results_0.json"):
        assert os.path.isfile(os.path.join(out_dir, name)), name
    logs = glob.glob(os.path.join(out_dir, "official_hrnet_tiny_a_????-??-??-??-??_train.log"))
    assert len(logs) == 1 and "Epoch: [1]" in open(logs[0]).read()
    assert "END_EPOCH: 2" in open(os.path.join(out_dir, "config.yaml")).read()

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb_dirs = glob.glob(str(tmp_path / "log" / "synthetic" / "pose_hrnet" / "official_hrnet_tiny_a_*"))
    assert len(tb_dirs) == 1
    events = EventAccumulator(tb_dirs[0])
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train_loss", "learning_rate", "throughput", "valid_loss", "valid/AP"} <= scalars
    assert {"train/gt", "train/hm_pred", "val/pred"} <= set(events.Tags()["images"])

    capsys.readouterr()
    tested = test_tool.main(["--cfg", TINY_YAML] + dirs + opts[:10] + COMMON)  # final_state.pth of the run
    assert tested["model_file"] == os.path.join(out_dir, "final_state.pth")
    printed = capsys.readouterr().out
    assert "| Arch | AP |" in printed and "GT boxes, flip test on, decoder default, input 64x96 (WxH)" in printed
    with open(os.path.join(out_dir, "metrics.json")) as f:
        assert json.load(f)["AP"] == tested["AP"]


def _run_test_py(args, env_extra=None):
    """tools/test.py in a fresh interpreter, as a user runs it: (exit status, stdout, stderr)."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "HRNET_POSE_DEBUG"}
    env.update(OMP_NUM_THREADS="1", **(env_extra or {}))
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "test.py"), "--cfg", TINY_YAML] + args + COMMON,
                          capture_output=True, text=True, env=env, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def _assert_user_error(result, *expected):
    code, out, err = result
    tail = "\n".join(err.strip().splitlines()[-5:])
    assert code == 2, err
    assert "Traceback" not in err and "Traceback" not in out
    assert any(line.startswith("error: ") for line in tail.splitlines()), tail
    for text in expected:
        assert text in tail, (text, tail)


def test_test_py_user_errors_are_one_message_and_status_2(coco_root, tmp_path):
    weights = _official_release_file(tmp_path)
    base = ["--modelDir", str(tmp_path / "output"), "DATASET.ROOT", coco_root]

    _assert_user_error(_run_test_py(base + ["TEST.FLIP_TST", "False"]),
                       "unknown config key 'TEST.FLIP_TST'", "did you mean 'TEST.FLIP_TEST'")

    missing = _run_test_py(base + ["TEST.MODEL_FILE", weights, "DATASET.TEST_SET", "val2099"])
    _assert_user_error(missing, "annotation file not found: "
                       + os.path.join(coco_root, "annotations", "person_keypoints_val2099.json"))
    assert "FINAL_CONV_KERNEL" not in missing[1]  # the config dump is not on the console...
    out_dir = tmp_path / "output" / "coco" / "pose_hrnet" / "official_hrnet_tiny_a"
    logs = glob.glob(str(out_dir / "official_hrnet_tiny_a_*_test.log"))
    assert logs and "FINAL_CONV_KERNEL" in open(logs[0]).read()  # ... it is in the log file

    state = torch.load(weights, weights_only=True)
    del state["final_layer.bias"]
    broken = str(tmp_path / "broken.pth")
    torch.save(state, broken)
    _assert_user_error(_run_test_py(base + ["TEST.MODEL_FILE", broken]),
                       f"checkpoint {broken} does not match the model: 1 missing key (final_layer.bias)",
                       "hint: check MODEL.EXTRA")


def test_test_py_debug_shows_the_traceback(tmp_path):
    for args, env in ((["--debug"], None), ([], {"HRNET_POSE_DEBUG": "1"})):
        code, _, err = _run_test_py(args + ["TEST.FLIP_TST", "False"], env)
        assert code == 1 and "Traceback" in err and "TEST.FLIP_TST" in err
