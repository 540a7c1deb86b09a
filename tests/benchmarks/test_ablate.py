"""tools/ablate.py: two variants trained for one epoch on a tiny synthetic set give one table; a run killed after
its first training run resumes without redoing what was recorded; variant parsing and settings checks."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from hrnet_pose.benchmarks.ablate import Ablation, AblationError, parse_variants, variant_config
from hrnet_pose.models.attention import list_attentions

from clitest import load_tool
from testpaths import EXPERIMENTS, QUICKSTART_YAML, REPO

ablate_tool = load_tool("ablate")


def _tiny_opts(root: str):
    """The quickstart network on 4 + 2 synthetic images, one epoch of one step, CPU, quiet."""
    return ["DATASET.ROOT", root, "SYNTHETIC.NUM_TRAIN_IMAGES", "4", "SYNTHETIC.NUM_VAL_IMAGES", "2",
            "SYNTHETIC.IMAGE_SIZE", "[128, 128]", "TRAIN.BATCH_SIZE_PER_GPU", "4", "TEST.BATCH_SIZE_PER_GPU", "4",
            "TRAIN.END_EPOCH", "1", "ENGINE.DEVICE", "cpu", "ENGINE.PROGRESS_BAR", "False",
            "ENGINE.TENSORBOARD", "False", "WORKERS", "0"]


def _args(out: str, root: str):
    return ["--cfg", QUICKSTART_YAML, "--variants", "plain", "se", "--seeds", "0", "--out", out, "--batch", "1",
            "--iters", "1", "--threads", "1"] + _tiny_opts(root)


def _record(out: str) -> dict:
    with open(os.path.join(out, "ablation.json")) as f:
        return json.load(f)


def test_two_variants_one_epoch_table_and_resume_after_a_kill(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the training workers: one thread each on the shared 2 cores
    out, root = str(tmp_path / "ablation"), str(tmp_path / "data")
    progress = os.path.join(out, "ablation.json")
    proc = subprocess.Popen([sys.executable, os.path.join(REPO, "tools", "ablate.py")] + _args(out, root),
                            cwd=str(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 600
        while time.time() < deadline and proc.poll() is None:
            if os.path.isfile(progress) and "ap" in _record(out)["runs"].get("plain/seed0", {}):
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the tool ended before it could be interrupted"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the tool and its training worker, as a crash or a lost machine would
        proc.wait()

    first = _record(out)  # a complete JSON file: written atomically
    assert set(first["measures"]) == {"plain", "se"} and set(first["runs"]) == {"plain/seed0"}
    with open(os.path.join(out, "ablation.md")) as f:
        partial = f.read().splitlines()
    se_row = next(line for line in partial if line.startswith("| se |"))
    assert "| ... |" in se_row  # se's training was still pending

    ablate_tool.main(_args(out, root))
    printed = capsys.readouterr().out
    final = _record(out)
    assert final["runs"]["plain/seed0"] == first["runs"]["plain/seed0"]  # recorded run kept, not retrained
    assert final["measures"] == first["measures"]  # and not re-measured
    se = final["runs"]["se/seed0"]
    assert 0.0 <= se["ap"] <= 1.0 and se["samples_per_s"] > 0 and se["peak_mem_mb"] > 0 and se["epochs"] == 1
    assert final["measures"]["se"]["params"] > final["measures"]["plain"]["params"]

    with open(os.path.join(out, "ablation.md")) as f:
        table = f.read()
    assert table.strip() in printed
    head = table.splitlines()[0]
    for column in ("AP (mean ± std over seeds)", "params", "GFLOPs", "train samples/s", "torch cpu b1 (ms)",
                   "onnxruntime cpu b1 (ms)", "peak train mem (MB)"):
        assert column in head
    rows = [line for line in table.splitlines() if line.startswith(("| plain |", "| se |"))]
    assert len(rows) == 2 and not any("..." in r or "failed" in r for r in rows)
    assert f"{final['runs']['plain/seed0']['ap']:.3f}" in rows[0]
    assert "1 epochs" in table and "GT boxes" in table  # how the numbers were made

    # the same folder with other settings is refused instead of mixing two tables
    with pytest.raises(AblationError, match="other settings"):
        Ablation(QUICKSTART_YAML, parse_variants(["plain"]), [0], out,
                 opts=_tiny_opts(root)[:-2] + ["TRAIN.END_EPOCH", "2"])


def test_variant_names_yamls_and_all():
    names = [v.name for v in parse_variants(["all"])]
    assert names == ["plain", "softgate_block"] + list_attentions()
    assert {"scconv", "res2net", "mpm"} <= set(names)
    plain, block, se = parse_variants(["plain", "softgate_block", "se"])
    assert plain.overrides()["MODEL"]["EXTRA"]["ATTENTION"] == {"NAME": ""}
    assert block.overrides()["MODEL"]["EXTRA"]["STAGE3"] == {"BLOCK": "SOFTGATE"}
    assert se.overrides()["MODEL"]["EXTRA"]["ATTENTION"] == {"NAME": "se"}
    yaml_variant = parse_variants([os.path.join(EXPERIMENTS, "coco", "hrnet_attn",
                                                 "w32_256x192_adam_lr1e-3_non_local.yaml")])[0]
    assert yaml_variant.name == "non_local"
    assert yaml_variant.attention == {"NAME": "non_local", "STAGES": [3, 4], "BRANCHES": [2, 3], "KWARGS": {}}
    w32 = os.path.join(EXPERIMENTS, "coco", "hrnet", "w32_256x192_adam_lr1e-3.yaml")
    layers = variant_config(w32, [], block).MODEL.EXTRA.PRETRAINED_LAYERS
    assert "layer1" in layers and not any(n.startswith("stage") for n in layers)  # ImageNet stages cannot load
    assert "stage4" in variant_config(w32, [], se).MODEL.EXTRA.PRETRAINED_LAYERS
    with pytest.raises(AblationError, match="unknown variant 'squeeze'.*scconv"):
        parse_variants(["squeeze"])
    with pytest.raises(AblationError, match="more than once"):
        parse_variants(["se", "se"])


def test_cli_error_is_one_line(tmp_path, capsys):
    from hrnet_pose.errors import run_cli

    assert run_cli(ablate_tool.main, ["--cfg", QUICKSTART_YAML, "--variants", "nope", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown variant 'nope'" in err[0]
