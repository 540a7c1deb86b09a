"""tools/infer.py --ray on a local Ray instance (2 CPUs, no dashboard): the Ray Data job (decoding tasks, a pose actor
pool) writes the same shards and results as one process. Skipped where Ray is not installed
(`pip install -e .[ray]`)."""

import os

import pytest

from hrnet_pose.apis.batch_infer import run_infer

from batch_infer_data import infer_args, make_synthetic

ray = pytest.importorskip("ray", reason="the Ray tests need ray[data]: pip install -e .[ray]")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_ray_local_equals_one_process(local_ray, tmp_path):
    data = make_synthetic(str(tmp_path / "synthetic"))
    single, on_ray = tmp_path / "single", tmp_path / "ray"
    run_infer(infer_args(data, single, "--jsonl", "--workers", "0"))
    summary = run_infer(infer_args(data, on_ray, "--jsonl", "--ray"))
    assert summary.where.startswith("Ray") and summary.processed == summary.total == 14
    for name in ("results.json", "results.jsonl", "errors.jsonl"):
        assert (on_ray / name).read_bytes() == (single / name).read_bytes(), name
    assert sorted(os.listdir(on_ray / "shards")) == sorted(os.listdir(single / "shards"))
