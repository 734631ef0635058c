"""The benchmarks this project trains and evaluates on: the only place that names them all.

    benchmark = benchmarks.get(config.dataset.name)
    dataset = benchmark.build_dataset(config, "val")

A new benchmark is a package (facts, labels, dataset, protocol, and a `benchmark.py` that fills
an mvn.benchmark.Benchmark) plus one line in `get`. Its package is imported when it is asked
for, so that reading a config (train.py --help, a config error) stays free of PyTorch.
"""
from mvn.errors import CAPFError

NAMES = ("human36m", "mpi_inf_3dhp")


def get(name):
    """The mvn.benchmark.Benchmark called `name` (config key dataset.name)."""
    if name == "human36m":
        from mvn.human36m.benchmark import BENCHMARK
        return BENCHMARK
    if name == "mpi_inf_3dhp":
        from mvn.mpi_inf_3dhp.benchmark import BENCHMARK
        return BENCHMARK
    raise CAPFError("no benchmark '%s'; dataset.name is one of %s" % (name, ", ".join(NAMES)))


def build_dataset(config, split):
    """The dataset of `split` ('train' or 'val') that `config.dataset` describes."""
    if split not in ("train", "val"):
        raise ValueError("split must be 'train' or 'val', got %r" % split)
    return get(config.dataset.name).build_dataset(config, split)
