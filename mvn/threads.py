"""How many threads PyTorch uses in a training or evaluation process.

PyTorch's default is one thread per core, which ignores the DataLoader workers and the other
processes on the node: on a 2-core machine with 2 workers, 2 PyTorch threads oversubscribe the
cores (README, "Threads": the loaded quick start's time with one thread against the default).
So the count is chosen, in this order:

  1. `torch_threads` in the config, when > 0 (what you ask for);
  2. OMP_NUM_THREADS, when set (torchrun sets it to 1 for several processes per node);
  3. otherwise the cores this process may use (its CPU affinity, shared among the node's
     processes: LOCAL_WORLD_SIZE) less its DataLoader workers, at least 1.

Floating-point sums in PyTorch's CPU kernels depend on the thread count: runs, and 1-process
against N-process evaluations, give bit-identical numbers only at the same thread count.
"""
import os

import torch


def usable_cores():
    """The cores this process may run on (its affinity where the OS says, else all)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def choose_torch_threads(requested, num_workers, environ=os.environ, cores=None):
    """(threads, why): the PyTorch thread count for one process and the reason, in words."""
    if requested > 0:
        return requested, "torch_threads = %d in the config" % requested
    omp = environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) > 0:
        return int(omp), "OMP_NUM_THREADS=%s" % omp
    cores = usable_cores() if cores is None else cores
    processes = max(1, int(environ.get("LOCAL_WORLD_SIZE", "1")))
    per_process = max(1, cores // processes)
    threads = max(1, per_process - num_workers)
    return threads, ("auto: %d core(s) for this process (%d usable, %d process(es) on this node) "
                     "less %d DataLoader worker(s); set torch_threads to choose"
                     % (per_process, cores, processes, num_workers))


def apply_torch_threads(config):
    """Set PyTorch's intra-op thread count for `config`; returns the sentence to log."""
    threads, why = choose_torch_threads(config.torch_threads, config.dataset.num_workers)
    torch.set_num_threads(threads)
    return "PyTorch threads: %d (%s)" % (threads, why)
