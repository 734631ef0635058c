"""mvn.distributed: evaluation shards (every frame exactly once, batch-aligned) and their gather
across real gloo processes, empty shards included."""
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from conftest import free_port
from mvn.distributed import Processes, all_ranks_finite, gather_in_order, shard_range, \
    single_process


@pytest.mark.parametrize("length, world_size, batch_size", [
    (11, 2, 4), (11, 3, 4), (8, 2, 4), (1, 4, 4), (0, 2, 4), (100, 3, 1), (5, 8, 2)])
def test_shards_cover_every_frame_once_in_order(length, world_size, batch_size):
    shards = [shard_range(length, r, world_size, batch_size) for r in range(world_size)]
    assert [i for shard in shards for i in shard] == list(range(length))
    for shard in shards:
        if len(shard):
            assert shard.start % batch_size == 0  # batches hold the same frames for any N


def test_more_processes_than_batches_leaves_the_last_shards_empty():
    shards = [shard_range(5, r, 4, 2) for r in range(4)]  # 3 batches, 4 processes
    assert [list(s) for s in shards] == [[0, 1], [2, 3], [4], []]


def test_one_process_gather_returns_its_tensor():
    local = torch.arange(6.0).reshape(2, 3)
    assert gather_in_order(local, 2, single_process(), batch_size=4) is local
    assert all_ranks_finite(torch.tensor(1.0), single_process())
    assert not all_ranks_finite(torch.tensor(float("inf")), single_process())


def _gather_worker(rank, world_size, port, length, batch_size, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        processes = Processes(rank, world_size, rank, torch.device("cpu"))
        shard = shard_range(length, rank, world_size, batch_size)
        local = torch.tensor([[float(i), 10.0 * i] for i in shard]).reshape(-1, 2)
        gathered = gather_in_order(local, length, processes, batch_size)
        loss = torch.tensor(float("nan") if rank == world_size - 1 else 1.0)
        results[rank] = (gathered.tolist(), all_ranks_finite(loss, processes))
    finally:
        dist.destroy_process_group()


def test_gather_across_processes_with_an_empty_shard():
    length, world_size, batch_size = 5, 4, 2  # rank 3's shard is empty
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_gather_worker, args=(world_size, free_port(), length, batch_size, results),
                 nprocs=world_size, join=True)
        results = dict(results)
    expected = [[float(i), 10.0 * i] for i in range(length)]
    for rank in range(world_size):
        gathered, finite = results[rank]
        assert gathered == expected       # every rank: every frame once, in order
        assert finite is False            # one rank's NaN makes every rank skip the step


def _silent_rank_worker(rank, world_size, port, silent, results):
    import datetime
    import time
    from mvn.distributed import is_timeout, unresponsive_ranks
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size,
                            timeout=datetime.timedelta(seconds=2))
    if rank == silent:          # frozen: never reaches the collective, never checks in
        time.sleep(6)      # past the others' timeout (2 s) and their check (2 s)
        return
    try:
        dist.all_reduce(torch.ones(1))
        results[rank] = "no timeout"
    except RuntimeError as error:
        processes = Processes(rank, world_size, rank, torch.device("cpu"))
        results[rank] = (is_timeout(error), unresponsive_ranks(processes, timeout_s=2))


def test_a_collective_timeout_names_the_silent_rank():
    """gloo closes the group's connections after a timeout; the ranks that timed out still tell
    the silent one through the launcher's store (what train.py's timeout line names)."""
    world_size, silent = 3, 2
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_silent_rank_worker, args=(world_size, free_port(), silent, results),
                 nprocs=world_size, join=True)
        results = dict(results)
    assert results == {0: (True, [2]), 1: (True, [2])}
