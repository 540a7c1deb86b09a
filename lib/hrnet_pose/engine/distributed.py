"""Process-group helpers for `torchrun` training and evaluation (single node or multi node, env:// rendezvous).

`torchrun` sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; `init_distributed` reads them, picks the
backend (NCCL on CUDA, gloo on CPU) and the device (cuda:LOCAL_RANK), and is a no-op for a plain `python` run, so the
same code path serves one process and many. Collectives here fall back to the identity when not distributed.
"""

import datetime
import logging
import os
import sys
from dataclasses import dataclass
from typing import Any, List, Optional

import torch
import torch.distributed as dist

from ..devices import resolve_device
from ..errors import ConfigError

logger = logging.getLogger(__name__)

_VALID_BACKENDS = ("", "nccl", "gloo")


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    if value == "":
        return default
    try:
        return int(value)
    except ValueError as err:
        raise ValueError(f"environment variable {name}={value!r} is not an integer (set by torchrun)") from err


def init_distributed(backend: str = "", device: str = "", timeout_min: int = 30) -> DistInfo:
    """Join the process group described by torchrun's environment (WORLD_SIZE > 1), else describe a single process."""
    if backend not in _VALID_BACKENDS:
        raise ConfigError(f"ENGINE.DIST_BACKEND is {backend!r}; valid: {list(_VALID_BACKENDS)} ('' = auto)")
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world_size > 1 and not dist.is_initialized():
        chosen = backend or ("nccl" if dev.type == "cuda" else "gloo")
        if chosen == "nccl" and dev.type != "cuda":
            raise ConfigError("ENGINE.DIST_BACKEND 'nccl' needs CUDA devices; use 'gloo' (or '') on CPU")
        dist.init_process_group(
            backend=chosen, init_method="env://", rank=rank, world_size=world_size,
            timeout=datetime.timedelta(minutes=timeout_min),
        )
        logger.info("joined process group: rank %d/%d (local %d), backend %s, device %s",
                    rank, world_size, local_rank, chosen, dev)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_dist() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if is_dist():
        dist.barrier()


def all_gather_object(obj: Any) -> List[Any]:
    """Every process's `obj`, in rank order (a one-element list when not distributed)."""
    if not is_dist():
        return [obj]
    out: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """`obj` from rank `src` on every process."""
    if not is_dist():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over processes, in place and returned (identity when not distributed)."""
    if is_dist():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_true(flag: bool, device: torch.device) -> bool:
    """True when `flag` is true on any process; every process gets the same answer (keeps DDP in lock step)."""
    if not is_dist():
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def any_true_tensor(flag: torch.Tensor) -> torch.Tensor:
    """A 0-dim bool tensor `flag` OR-ed over processes, on the device and without a host read (the all-reduce is
    queued on the stream under NCCL); `flag` itself when not distributed."""
    if not is_dist():
        return flag
    t = flag.to(torch.float32).reshape(1)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.reshape(()) > 0


def cleanup(ok: Optional[bool] = None) -> None:
    """Leave the process group. After a successful run all ranks meet first, so that none tears down its side (rank 0
    also hosts the rendezvous store) while another still talks to it, which gloo answers with an abort.

    After a failure (`ok=False`; by default: called while an exception propagates, as from a `finally`) there is no
    barrier: the peers would wait in it for the group's timeout (30 minutes) for a rank that never comes, and its own
    timeout error would replace the failure being raised. The group is destroyed at once; the peers' next collective
    then fails at once on the closed connection."""
    if not is_dist():
        return
    if ok is None:
        ok = sys.exc_info()[0] is None
    try:
        if ok:
            dist.barrier()
    except RuntimeError as err:  # a peer failed and left: this rank's own work is done, say so and leave too
        logger.warning("rank %d: leaving the process group without the others (%s)", get_rank(),
                       str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)
    finally:
        dist.destroy_process_group()
