"""`tools/benchmark.py --mode live` on tiny configs: every (model, persons, schedule) row, from a clip file read back,
annotated and written; the official schedule batches nothing and detects every frame. Speed is not asserted."""

import json
import os
import subprocess
import sys

from testpaths import EXPERIMENTS, REPO, TINY_YAML

TINY_LITE = os.path.join(EXPERIMENTS, "synthetic", "litehrnet_quickstart.yaml")


def test_live_mode_runs_both_schedules_for_every_model_and_person_count(tmp_path):
    out = tmp_path / "live.json"
    env = dict(os.environ, HRNET_POSE_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "tools", "benchmark.py"), "--cfg", TINY_LITE, "--mode", "live",
         "--compare", TINY_YAML, "--persons", "1", "2", "--iters", "6", "--official-frames", "2",
         "--official-det-model", "ssdlite", "--device", "cpu", "--threads", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=600, cwd=REPO, env=env)
    errors = [line for line in proc.stderr.splitlines() if "no weights given" not in line]  # the random-weight warning
    assert proc.returncode == 0, "\n".join(errors[-30:])
    rows = json.loads(out.read_text())
    cells = {(r["model"], r["persons"], r["schedule"].split(" ")[0].rstrip(":"), r.get("paced")) for r in rows}
    assert cells == {(m, p, s, paced) for m in ("litehrnet_quickstart", "official_hrnet_tiny_a") for p in (1, 2)
                     for s, paced in (("ours", False), ("ours", True), ("official", None))}
    official = {(r["model"], r["persons"]): r["fps"] for r in rows if r["schedule"].startswith("official")}
    for r in rows:
        ours = r["schedule"].startswith("ours")
        # every frame of the file, in order; paced, a frame is processed or dropped as stale
        assert r["frames"] + r.get("dropped", 0) == (6 if ours else 2)
        assert r.get("dropped", 0) == 0 or r["paced"]
        assert r["backend"] == ("onnxruntime" if ours else "torch") and r["detector"] == "ssdlite"  # auto on a CPU
        if ours:  # stale frames per stage only when paced; the detector on every 5th processed frame
            assert set(r["stale"]) == {"detect", "pose", "finish"} and (r["paced"] or not any(r["stale"].values()))
            assert r["detector_calls"] == -(-r["pose_frames"] // 5) if not r["paced"] else r["detector_calls"] >= 1
        if ours:  # the table's last column is ours over the official schedule for the same model and persons
            ratio = f"{r['fps'] / official[(r['model'], r['persons'])]:.1f} |"
            line = next(x for x in proc.stdout.splitlines() if x.startswith(f"| {r['model']} | {r['persons']} | "
                                                                            f"{r['schedule']} |"))
            assert line.endswith(ratio)
    summary = proc.stdout.split("file against live (paced):")[1]
    assert all(f"| {m} | {p} |" in summary for m in ("litehrnet_quickstart", "official_hrnet_tiny_a") for p in (1, 2))
