"""The PyTorch thread count of a training or evaluation process (mvn/threads.py)."""
import os

import torch

from conftest import REPO_ROOT

from mvn.config import load_config
from mvn.threads import apply_torch_threads, choose_torch_threads


def test_the_config_wins_then_omp_num_threads_then_the_cores_left_after_the_workers():
    assert choose_torch_threads(3, 2, {"OMP_NUM_THREADS": "1"}, cores=8)[0] == 3
    assert choose_torch_threads(0, 2, {"OMP_NUM_THREADS": "5"}, cores=8)[0] == 5
    # 2 cores, 2 DataLoader workers: 1 thread (the quick start on a 2-core machine)
    threads, why = choose_torch_threads(0, 2, {}, cores=2)
    assert threads == 1 and "2 DataLoader worker(s)" in why
    assert choose_torch_threads(0, 4, {}, cores=16)[0] == 12
    # the node's cores are shared among its processes (torchrun's LOCAL_WORLD_SIZE)
    assert choose_torch_threads(0, 4, {"LOCAL_WORLD_SIZE": "2"}, cores=16)[0] == 4
    assert choose_torch_threads(0, 8, {"LOCAL_WORLD_SIZE": "4"}, cores=16)[0] == 1  # never 0
    assert choose_torch_threads(0, 0, {"OMP_NUM_THREADS": ""}, cores=3)[0] == 3


def test_apply_sets_the_count_and_says_why():
    before = torch.get_num_threads()
    try:
        config = load_config(os.path.join(REPO_ROOT, "experiments", "synthetic", "tiny.yaml"),
                             ["torch_threads=1"])
        assert apply_torch_threads(config) == "PyTorch threads: 1 (torch_threads = 1 in the config)"
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
