"""`engine.distributed.cleanup` after a failed rank: no barrier, so the failing rank raises its own error at once
(not the barrier's timeout error after the group's timeout) and the healthy rank is not kept waiting either.

Two gloo processes with a 20 s group timeout: rank 1 fails before the collective that rank 0 waits in. With a barrier
in cleanup, rank 1 would sit in it for the whole timeout and then raise gloo's timeout error instead of its own."""

import datetime
import json
import os
import socket
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from hrnet_pose.engine.distributed import cleanup

GROUP_TIMEOUT_S = 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, out):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="env://", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=GROUP_TIMEOUT_S))
    start = time.monotonic()
    outcome = "ok"
    try:
        try:
            if rank == 1:
                raise ValueError("rank 1 failed while loading its data")
            dist.all_reduce(torch.ones(1))  # waits for rank 1, which never comes
        finally:
            cleanup()
    except Exception as err:  # noqa: BLE001 - recorded for the test to check
        outcome = f"{type(err).__name__}: {err}"
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"outcome": outcome, "seconds": time.monotonic() - start}, f)


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed + gloo")
def test_a_failed_rank_raises_its_own_error_without_waiting_for_the_others(tmp_path):
    context = mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=False)
    deadline = time.monotonic() + 4 * GROUP_TIMEOUT_S
    while not context.join(timeout=2):
        if time.monotonic() > deadline:
            for p in context.processes:
                p.terminate()
            pytest.fail("the two processes did not finish")
    failed = json.loads((tmp_path / "rank1.json").read_text())
    healthy = json.loads((tmp_path / "rank0.json").read_text())
    assert failed["outcome"] == "ValueError: rank 1 failed while loading its data"
    # the failing rank left at once: a barrier would have held it for the whole group timeout
    assert failed["seconds"] < GROUP_TIMEOUT_S / 2
    # the healthy rank's collective fails on the closed connection instead of waiting out the timeout
    assert healthy["outcome"] != "ok" and healthy["seconds"] < GROUP_TIMEOUT_S / 2
