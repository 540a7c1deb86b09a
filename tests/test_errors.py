"""hrnet_pose.errors: which errors count as the user's, and what run_cli prints and returns for them."""

import sys

import pytest
import torch

from hrnet_pose.config import ConfigError, load_config
from hrnet_pose.datasets import ImageReadError
from hrnet_pose.errors import DEBUG_ENV, UserError, format_user_error, is_user_error, run_cli
from hrnet_pose.models import CheckpointMismatchError, build_model
from hrnet_pose.models.inference import autocast_context


def _raiser(err):
    def main(argv):
        raise err
    return main


@pytest.fixture(autouse=True)
def _no_debug_env(monkeypatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)


def test_importing_errors_pulls_in_no_torch():
    import subprocess

    code = "import sys, hrnet_pose.errors; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_our_error_types_are_user_errors_and_keep_their_old_bases():
    assert issubclass(ConfigError, UserError) and issubclass(ConfigError, ValueError)
    assert issubclass(CheckpointMismatchError, UserError) and issubclass(CheckpointMismatchError, RuntimeError)
    assert issubclass(ImageReadError, UserError) and issubclass(ImageReadError, OSError)


def test_is_user_error_sorts_user_input_from_bugs():
    with pytest.raises(ConfigError) as misspelt:
        load_config(None, ["TEST.FLIP_TST", "True"])
    with pytest.raises(ConfigError) as wrong_type:  # yacs' own merge error, raised through load_config
        load_config(None, ["TEST.FLIP_TEST", "[1, 2]"])
    with pytest.raises(ConfigError) as amp:  # the code that checks a config value raises the user error type
        autocast_context(torch.device("cpu"), "fp8")
    with pytest.raises(ConfigError) as joints:
        build_model(load_config(None, ["MODEL.NUM_JOINTS", "5"]))
    user = [misspelt.value, FileNotFoundError("annotation file not found: a.json"), PermissionError("out/"),
            wrong_type.value, amp.value, joints.value, CheckpointMismatchError("x"),
            ImageReadError("image a.jpg does not exist")]
    # the type decides, not the words: a bare ValueError is a bug even when its message names a config key
    bugs = [ValueError("operands could not be broadcast together with shapes (3,) (4,)"), KeyError("joints"),
            RuntimeError("CUDA out of memory"), IndexError("list index out of range"), TypeError("bad operand"),
            ValueError("ENGINE.AMP is 'fp8'; valid: '', 'bf16'"), KeyError("Non-existent config key: TEST.FOO")]
    assert [is_user_error(e) for e in user] == [True] * len(user)
    assert [is_user_error(e) for e in bugs] == [False] * len(bugs)


def test_run_cli_prints_one_error_line_and_returns_2(capsys):
    err = ConfigError("command line: unknown config key 'TEST.FLIP_TST' (did you mean 'TEST.FLIP_TEST'?)")
    assert run_cli(_raiser(err), ["--cfg", "x.yaml"]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [f"error: {err}"] and captured.out == ""


def test_run_cli_message_and_hint_of_multiline_and_hinted_errors(capsys):
    layout = FileNotFoundError("annotation file not found: /d/annotations/x.json\nexpected layout:\n  /d/\n"
                               "    annotations/person_keypoints_x.json")
    assert run_cli(_raiser(layout), []) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["error: annotation file not found: /d/annotations/x.json",
                     "hint: expected layout: /d/ annotations/person_keypoints_x.json"]
    hinted = UserError("weights w.pth do not fit\n  long list\n  of keys", hint="check MODEL.EXTRA")
    assert format_user_error(hinted) == ["error: weights w.pth do not fit", "hint: check MODEL.EXTRA"]


def test_error_reraised_from_a_dataloader_worker_shows_the_original_message():
    wrapped = ImageReadError("Caught ImageReadError in DataLoader worker process 0.\nOriginal Traceback (most recent "
                             "call last):\n  File \"coco.py\", line 48, in read_image\n    raise ImageReadError(...)\n"
                             "hrnet_pose.datasets.coco.ImageReadError: image /d/images/a.jpg does not exist\n")
    assert format_user_error(wrapped) == ["error: image /d/images/a.jpg does not exist"]


def test_run_cli_returns_0_and_strips_debug_flag():
    seen = []
    assert run_cli(seen.append, ["--cfg", "a.yaml", "--debug", "TRAIN.LR", "0.1"]) == 0
    assert seen == [["--cfg", "a.yaml", "TRAIN.LR", "0.1"]]


def test_debug_flag_or_environment_reraises_user_errors(monkeypatch, capsys):
    err = FileNotFoundError("config file not found: nope.yaml")
    with pytest.raises(FileNotFoundError):
        run_cli(_raiser(err), ["--debug"])
    monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(FileNotFoundError):
        run_cli(_raiser(err), [])
    assert "error:" not in capsys.readouterr().err


def test_bugs_propagate_and_ctrl_c_is_130(capsys):
    with pytest.raises(ZeroDivisionError):
        run_cli(_raiser(ZeroDivisionError("division by zero")), [])
    assert run_cli(_raiser(KeyboardInterrupt()), []) == 130
    assert len(capsys.readouterr().err.splitlines()) == 1
