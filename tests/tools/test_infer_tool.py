"""tools/infer.py as a user runs it, in subprocesses: killed with SIGKILL at a random moment and rerun with --resume
(the results equal an uninterrupted run's, finished shards are not processed again), and torchrun with 2 processes
writing the same files as 1 process."""

import importlib.util
import os
import random
import signal
import socket
import subprocess
import sys
import time

import pytest

from hrnet_pose.apis.batch_infer import run_infer
from hrnet_pose.errors import run_cli

from batch_infer_data import infer_args, load, make_synthetic
from testpaths import REPO

INFER = os.path.join(REPO, "tools", "infer.py")
TIMEOUT_S = 240


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_synthetic(str(tmp_path_factory.mktemp("synthetic")), num_images=24)


def _env():
    # one thread per process: several processes share the 2-core test machine
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def _run(argv, **kw):
    return subprocess.run([sys.executable, INFER] + argv, capture_output=True, text=True, env=_env(),
                          timeout=TIMEOUT_S, **kw)


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """An uninterrupted one-process run (in this process: the same code as the tool's): its output folder."""
    out = tmp_path_factory.mktemp("reference")
    assert run_infer(infer_args(data, out, "--workers", "1", "--jsonl")).failed == 0
    return out


def _shards(out):
    folder = os.path.join(out, "shards")
    return sorted(f for f in os.listdir(folder) if f.endswith(".jsonl")) if os.path.isdir(folder) else []


def test_sigkill_at_a_random_moment_then_resume(data, reference, tmp_path):
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)  # printed on failure: the moment can be replayed
    out = tmp_path / "killed"
    # one image per chunk and 2 per shard: 12 shards, so the kill lands among them
    argv = infer_args(data, out, "--workers", "1", "--jsonl", "--shard-size", "2", "--batch-images", "1")
    proc = subprocess.Popen([sys.executable, INFER] + argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=_env())
    target = rng.randint(1, 10)  # finished shards before the kill, plus a random delay into the next
    deadline = time.monotonic() + TIMEOUT_S
    while len(_shards(out)) < target and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(rng.uniform(0, 0.3))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    done_before = _shards(out)
    assert not (out / "results.json").exists() or len(done_before) == 12, f"seed {seed}"
    rerun = _run(argv + ["--resume"])
    assert rerun.returncode == 0, f"seed {seed}: {rerun.stderr[-3000:]}"
    # no finished shard was processed again: only the images of the missing ones (the shard in flight among them)
    assert f"{24 - 2 * len(done_before)} processed" in rerun.stdout, (seed, rerun.stdout)
    if done_before:
        assert f"resumed: {len(done_before)} shards ({2 * len(done_before)} images)" in rerun.stdout, seed
    for name in ("results.json", "results.jsonl", "errors.jsonl"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), (seed, name)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_processes_write_what_one_process_writes(data, reference, tmp_path):
    out = tmp_path / "torchrun"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), INFER] + infer_args(data, out, "--workers", "0", "--jsonl")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 processes (torchrun)" in proc.stdout and proc.stdout.count("images (") == 1  # rank 0 reports
    for name in ("results.json", "results.jsonl", "errors.jsonl"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    assert _shards(out) == _shards(reference)
    for shard in _shards(out):  # each shard the same, whichever rank wrote it
        assert load(str(out / "shards" / shard)) == load(str(reference / "shards" / shard))


def test_exit_status_two_for_bad_arguments(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("hrnet_pose_tools_infer", INFER)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert run_cli(tool.main, [str(tmp_path / "nowhere"), "--config", "x.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "x.yaml" in err and "Traceback" not in err
