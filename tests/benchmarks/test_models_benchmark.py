"""The model-family comparison (`tools/benchmark.py --mode models`) measures every (model, runtime, batch) cell of
the same models in one run, with the models' own size and cost; run on tiny configs (speed is not asserted)."""

import json
import os
import subprocess
import sys

import pytest

from hrnet_pose.config import load_config
from hrnet_pose.models import build_model
from hrnet_pose.models.complexity import count_parameters

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY_HRNET = os.path.join(REPO, "tests", "fixtures", "official_hrnet_tiny_a.yaml")
TINY_LITE = os.path.join(REPO, "experiments", "synthetic", "litehrnet_quickstart.yaml")


def test_models_mode_measures_every_cell_of_both_families(tmp_path):
    out = tmp_path / "models.json"
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "tools", "benchmark.py"), "--cfg", TINY_LITE, "--mode", "models",
         "--compare", TINY_HRNET, "--batch", "1", "3", "--threads", "1", "--iters", "2", "--json", str(out)],
        capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    cells = {(r["model"], r["runtime"], r["batch"]) for r in rows}
    assert cells == {(m, rt, b) for m in ("litehrnet_quickstart", "official_hrnet_tiny_a")
                     for rt in ("torch", "onnxruntime") for b in (1, 3)}
    assert len(rows) == len(cells)
    for path, name in ((TINY_LITE, "litehrnet_quickstart"), (TINY_HRNET, "official_hrnet_tiny_a")):
        params = count_parameters(build_model(load_config(path)))
        assert {r["params"] for r in rows if r["model"] == name} == {params}
    lite = next(r for r in rows if r["model"] == "litehrnet_quickstart")
    hrnet = next(r for r in rows if r["model"] == "official_hrnet_tiny_a")
    assert 0 < lite["gflops"] < hrnet["gflops"]  # the quickstart Lite-HRNet is the cheaper network
    for r in rows:  # throughput is the batch over the median latency
        assert r["ms_per_iter"] > 0 and r["samples_per_s"] == pytest.approx(r["batch"] * 1e3 / r["ms_per_iter"])
    table = proc.stdout
    assert "| litehrnet_quickstart |" in table and "| official_hrnet_tiny_a |" in table
    assert "torch b1 (ms)" in table and "onnxruntime b3 (ms)" in table
