"""Parity of the HRNet model with the official implementation (keys, shapes, counts, outputs) and its fixes."""

import json
import os

import pytest
import torch

from hrnet_pose.config import load_config
from hrnet_pose.models import CheckpointMismatchError, build_model, load_weights

from testpaths import EXPERIMENTS

EXP = os.path.join(EXPERIMENTS, "coco", "hrnet")


@pytest.mark.parametrize("cfg_name,keys_file,num_params", [
    ("w32_256x192_adam_lr1e-3.yaml", "official_pose_hrnet_w32_256x192.keys.json", 28_536_113),
    ("w48_384x288_adam_lr1e-3.yaml", "official_pose_hrnet_w48_384x288.keys.json", 63_595_745),
])
def test_state_dict_keys_order_shapes_and_counts_match_official(cfg_name, keys_file, num_params, fixtures_dir):
    ref = json.load(open(os.path.join(fixtures_dir, keys_file)))
    model = build_model(load_config(os.path.join(EXP, cfg_name)))
    ours = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    assert ours == ref["state_dict"]
    assert sum(p.numel() for p in model.parameters()) == num_params == ref["num_params"]


def test_all_official_yamls_build():
    for name in sorted(os.listdir(EXP)):
        model = build_model(load_config(os.path.join(EXP, name)))
        assert model.final_layer.out_channels == 17


def _tiny(tiny_cfg_path, tiny_official):
    model = build_model(load_config(tiny_cfg_path))
    load_weights(model, tiny_official["state_dict"])
    return model


def _assert_close_to_reference(out: torch.Tensor, ref: torch.Tensor, scale_tol: float) -> None:
    """`out` equals a reference made on another CPU up to `scale_tol` x the reference's largest magnitude.

    The official outputs were computed in float32 on another machine: the CPU's kernels (AVX2 or AVX-512, oneDNN's
    algorithm) change the summation order of every convolution, so each output carries rounding relative to the
    size of the values it was summed from, not to its own size (a near-zero output can be off by 100% of itself).
    """
    torch.testing.assert_close(out, ref, atol=scale_tol * float(ref.abs().max()), rtol=0)


def test_tiny_official_eval_output(tiny_cfg_path, tiny_official):
    model = _tiny(tiny_cfg_path, tiny_official).eval()
    with torch.no_grad():
        out = model(tiny_official["input"])
    # ~40 float32 convolutions summing up to 576 terms each: a random walk of rounding of about
    # sqrt(40 * 576) * 2^-24 = 9e-6 of the values' scale; 2e-5 of the scale bounds it (measured: 7e-7)
    _assert_close_to_reference(out, tiny_official["output"], 2e-5)


def test_tiny_official_train_mode_output_and_bn_buffers(tiny_cfg_path, tiny_official):
    model = _tiny(tiny_cfg_path, tiny_official).train()
    with torch.no_grad():
        out = model(tiny_official["input"])
    # Train-mode BatchNorm on a batch of 2 divides by the batch's own standard deviation, which is small for some
    # channels of the low-resolution branches, so every BN layer may amplify the rounding above (measured on
    # AVX-512 against the AVX2 reference: 4.2e-5 absolute = 6e-6 of the scale, 3x the eval output's).
    # 1e-4 of the scale leaves room for that amplification; a wrong weight or BN mode moves outputs by O(scale).
    _assert_close_to_reference(out, tiny_official["output_train_mode"], 1e-4)
    state = model.state_dict()
    buffers = tiny_official["bn_buffers_after_one_train_forward"]
    assert len(buffers) > 0
    for key, value in buffers.items():
        if value.is_floating_point():  # running mean / var: batch statistics, rounding as the outputs above
            _assert_close_to_reference(state[key].to(value.dtype), value, 1e-4)
        else:  # num_batches_tracked
            assert torch.equal(state[key].to(value.dtype), value), key


@pytest.mark.parametrize("hw", [(256, 192), (384, 288), (264, 200), (64, 48)])
def test_any_size_divisible_by_4_gives_quarter_heatmaps(tiny_cfg_path, hw):
    model = build_model(load_config(tiny_cfg_path)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *hw))
    assert out.shape == (1, 17, hw[0] // 4, hw[1] // 4)


def test_w32_runs_at_non_multiple_of_32():
    model = build_model(load_config(os.path.join(EXP, "w32_256x192_adam_lr1e-3.yaml"))).eval()
    with torch.no_grad():  # 72x56: divisible by 4, not by 32 (odd sizes on the 1/8 and 1/16 branches, as 264x200)
        out = model(torch.randn(1, 3, 72, 56))
    assert out.shape == (1, 17, 18, 14)


def test_input_not_divisible_by_4_is_a_clear_error(tiny_cfg_path):
    model = build_model(load_config(tiny_cfg_path)).eval()
    with pytest.raises(ValueError, match="divisible by 4"):
        model(torch.randn(1, 3, 66, 48))


def test_final_conv_kernel_5_keeps_heatmap_size_and_even_is_rejected(tiny_cfg_path):
    model = build_model(load_config(tiny_cfg_path, ["MODEL.EXTRA.FINAL_CONV_KERNEL", "5"])).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 96, 64)).shape == (1, 17, 24, 16)
    with pytest.raises(ValueError, match="odd"):
        build_model(load_config(tiny_cfg_path, ["MODEL.EXTRA.FINAL_CONV_KERNEL", "4"]))


def test_stage_that_widens_an_existing_branch(tiny_cfg_path):
    # [16,32] then [24,48,64]: the official model crashes (it feeds the lowest branch to every transition)
    cfg = load_config(tiny_cfg_path, ["MODEL.EXTRA.STAGE3.NUM_CHANNELS", "[24, 48, 64]"])
    model = build_model(cfg).eval()
    assert model.transition2[0] is not None and model.transition2[1] is not None
    assert model.transition2[1][0].in_channels == 32  # takes branch 1 (32 channels), not branch -1
    with torch.no_grad():
        assert model(torch.randn(2, 3, 96, 64)).shape == (2, 17, 24, 16)


def test_loader_strips_module_prefix_and_unwraps_checkpoints(tiny_cfg_path, tiny_official, tmp_path):
    sd = tiny_official["state_dict"]
    prefixed = {"module." + k: v for k, v in sd.items()}
    path = tmp_path / "ckpt.pth"
    torch.save({"epoch": 3, "state_dict": prefixed, "perf": 0.5}, path)
    model = build_model(load_config(tiny_cfg_path)).eval()
    load_weights(model, str(path))
    with torch.no_grad():
        # reference made on another CPU: relative to its scale, as test_tiny_official_eval_output (same derivation)
        torch.testing.assert_close(model(tiny_official["input"]), tiny_official["output"],
                                   atol=2e-5 * float(tiny_official["output"].abs().max()), rtol=0)


def test_loader_rejects_wrong_checkpoints_listing_keys(tiny_cfg_path, tiny_official, tmp_path):
    model = build_model(load_config(tiny_cfg_path))
    sd = dict(tiny_official["state_dict"])
    sd.pop("final_layer.bias")
    sd["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError) as err:
        load_weights(model, sd)
    assert "final_layer.bias" in str(err.value) and "extra.weight" in str(err.value)
    wide = build_model(load_config(tiny_cfg_path, ["MODEL.NUM_JOINTS", "17", "MODEL.EXTRA.STAGE2.NUM_CHANNELS",
                                                    "[16, 48]"]))
    with pytest.raises(CheckpointMismatchError, match="shape"):
        load_weights(wide, tiny_official["state_dict"])
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_weights(model, str(tmp_path / "nope.pth"))


def test_official_init_and_pretrained_filter(tiny_cfg_path, tiny_official, tmp_path):
    path = tmp_path / "imagenet.pth"
    sd = dict(tiny_official["state_dict"])
    sd["final_layer.weight"] = torch.zeros(1000, 16, 1, 1)  # a classifier head of another shape: filtered out
    sd["classifier.weight"] = torch.zeros(1000, 2048)
    torch.save(sd, path)
    layers = "['conv1','bn1','conv2','bn2','layer1','transition1','stage2','transition2','stage3','transition3','stage4']"
    cfg = load_config(tiny_cfg_path, ["MODEL.PRETRAINED", str(path), "MODEL.EXTRA.PRETRAINED_LAYERS", layers])
    model = build_model(cfg, is_train=True)
    state = model.state_dict()
    torch.testing.assert_close(state["stage4.0.branches.3.0.conv2.weight"],
                               tiny_official["state_dict"]["stage4.0.branches.3.0.conv2.weight"])
    assert float(state["final_layer.weight"].std()) < 0.002  # official N(0, 0.001) init, not the checkpoint
    missing = load_config(tiny_cfg_path, ["MODEL.PRETRAINED", str(tmp_path / "missing.pth")])
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        build_model(missing, is_train=True)


def test_num_joints_must_match_keypoint_set(tiny_cfg_path):
    with pytest.raises(ValueError, match="NUM_JOINTS"):
        build_model(load_config(tiny_cfg_path, ["MODEL.NUM_JOINTS", "5"]))
