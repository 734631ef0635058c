"""Processes under torch.distributed: who is who, and how evaluation is sharded and gathered.

One process per GPU (torchrun / torch.distributed.launch set RANK, WORLD_SIZE, LOCAL_RANK), or a
single plain process. NCCL on CUDA, gloo on CPU. Evaluation shards the frames contiguously and
gathers them in rank order, so 1 and N processes give exactly the same table.
"""
import datetime
import math
import os
import socket
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist

from mvn.errors import DeviceError


@dataclass
class Processes:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    control_group: object = None  # gloo group for CPU control messages (None: the default group)
    node: str = ""                # host name (several nodes: the logs say who wrote what)

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def distributed(self):
        return self.world_size > 1


def single_process(device="cpu"):
    """The Processes of one plain process on `device` (benchmarks, tests, notebooks)."""
    return Processes(0, 1, 0, torch.device(device))


def setup_processes(device=None, local_rank=None, timeout_s=1800):
    """Rank, world size and device from the launcher's variables; joins the process group.

    `device` is 'cpu', 'cuda' or None (cuda when available). `timeout_s` bounds every
    collective: a frozen or dead process ends the others' wait after it (instead of a hang)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", local_rank if local_rank is not None else 0))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("--device cuda was asked for but no CUDA device is visible; "
                              "use --device cpu")
        torch.cuda.set_device(local_rank)
        torch_device = torch.device("cuda", local_rank)
    elif device == "cpu":
        torch_device = torch.device("cpu")
    else:
        raise DeviceError("--device must be cpu or cuda, got %r" % device)
    control_group = None
    timeout = datetime.timedelta(seconds=timeout_s)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device == "cuda" else "gloo"
        restart = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
        if restart > 0 and "MASTER_ADDR" in os.environ:
            # A torchrun restart: the launcher's store still holds the previous attempt's
            # addresses under the same keys, and a restarted process may read a dead one.
            # A prefix per attempt keeps the attempts apart.
            agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
            store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                                  world_size, is_master=rank == 0 and not agent_store,
                                  timeout=timeout)
            dist.init_process_group(backend, store=dist.PrefixStore("attempt%d" % restart, store),
                                    rank=rank, world_size=world_size, timeout=timeout)
        else:
            dist.init_process_group(backend, timeout=timeout)
        if device == "cuda":  # control messages are small CPU tensors: a gloo group for them
            control_group = dist.new_group(backend="gloo", timeout=timeout)
    return Processes(rank, world_size, local_rank, torch_device, control_group,
                     socket.gethostname())


def cleanup_processes(processes):
    if processes.distributed and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(value, processes):
    """Rank 0's `value` on every rank (e.g. the experiment folder's name)."""
    if not processes.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0, group=processes.control_group)
    return box[0]


def barrier(processes):
    if processes.distributed:
        dist.barrier(group=processes.control_group)


def is_timeout(error):
    """True for the error a collective raises when another process stops answering."""
    text = str(error).lower()
    return any(word in text for word in ("timed out", "timeout", "connection closed by peer",
                                         "connection reset by peer", "broken pipe"))


def unresponsive_ranks(processes, timeout_s=10):
    """After a collective timed out: the ranks that do not check in within `timeout_s`, as this
    rank sees it ([] when it cannot tell).

    The process group itself cannot ask: after a timeout gloo closes its connections ("Application
    timeout caused pair closure"), so a barrier on it fails at once. The check goes through the
    launcher's key-value store instead (MASTER_ADDR:MASTER_PORT: torchrun's agent, or rank 0's
    store without one), which outlives the group: every rank that timed out writes its key, and
    the keys missing after `timeout_s` are the silent ranks. Where that store is gone too (a
    frozen rank 0 hosting it outside torchrun), [] ("another process")."""
    if not processes.distributed or "MASTER_ADDR" not in os.environ:
        return []
    prefix = "capf_silent/%s/%s/" % (os.environ.get("TORCHELASTIC_RUN_ID", "run"),
                                     os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    keys = [prefix + str(rank) for rank in range(processes.world_size)]
    try:
        store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                              is_master=False, timeout=datetime.timedelta(seconds=timeout_s))
        store.set(keys[processes.rank], "here")
        deadline = time.monotonic() + timeout_s
        while True:
            missing = [rank for rank, key in enumerate(keys) if not store.check([key])]
            if not missing or time.monotonic() > deadline:
                return missing
            time.sleep(0.1)
    except (RuntimeError, ValueError, OSError):   # the store is unreachable too
        return []


def all_ranks_finite(loss, processes):
    """True when the loss is finite on every process (so that all skip a bad step together).

    On PyTorch's "meta" device (shapes only, the device-placement test) there is no value to
    test: True."""
    if loss.device.type == "meta":
        return True
    finite = torch.isfinite(loss.detach()).to(torch.int32).reshape(1)
    if processes.distributed:
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)  # on the model's device (NCCL on GPUs)
    return bool(finite.item())


def shard_range(length, rank, world_size, batch_size=1):
    """Contiguous shard of [0, length) for `rank`: every frame exactly once, no padding.

    Shards start on multiples of `batch_size`, so every batch holds the same frames whatever the
    number of processes: batched kernels then give bit-identical predictions for 1 and N. With
    more processes than batches, the last ranks get empty shards."""
    batches = math.ceil(length / batch_size)
    per_rank = math.ceil(batches / world_size) * batch_size
    return range(min(rank * per_rank, length), min((rank + 1) * per_rank, length))


def gather_in_order(local, length, processes, batch_size=1):
    """Concatenate every rank's shard of `shard_range` (rank order): the (length, ...) result."""
    if not processes.distributed:
        return local
    sizes = [len(shard_range(length, r, processes.world_size, batch_size))
             for r in range(processes.world_size)]
    device = processes.device
    padded = torch.zeros((max(max(sizes), 1),) + tuple(local.shape[1:]), dtype=local.dtype,
                         device=device)
    padded[:len(local)] = local.to(device)
    gathered = [torch.empty_like(padded) for _ in range(processes.world_size)]
    dist.all_gather(gathered, padded)
    return torch.cat([g[:size].cpu() for g, size in zip(gathered, sizes)])
