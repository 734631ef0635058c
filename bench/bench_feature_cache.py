"""train.feature_cache, side by side: CA-PF training steps with the frozen backbone run on every
batch (the released path: frames decoded, backbone forward) and with its maps read from the cache,
on the same model, data, batch size and DataLoader workers, in alternating rounds of one run.
Also the cache's one-off cost (two backbone passes per frame: the frame and its mirror image) and
after how many epochs it has paid for itself.

  python bench/bench_feature_cache.py --config experiments/synthetic/quickstart.yaml \
      [--steps 40] [--rounds 2] [--device cpu] [--opts KEY=VALUE ...]

The last line is `cached/uncached train samples/s ratio: X`.
"""
import argparse
import sys
import tempfile
import time

import torch
from torch.utils.data import RandomSampler

from mvn import benchmarks, engine
from mvn.config import load_config
from mvn.distributed import single_process
from mvn.errors import run_main
from mvn.feature_cache import attach_feature_cache
from mvn.recipe import make_optimizer
from mvn.threads import apply_torch_threads


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--steps", type=int, default=40, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--opts", nargs="*", default=[], help="config overrides key=value")
    return parser.parse_args(argv)


def samples_per_second(model, optimizer, dataset, config, processes, steps):
    """Training samples/s over `steps` steps after 2 warm-up steps (random order, seeded)."""
    sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(0))
    loader = engine.make_loader(dataset, config.train.batch_size, config, processes.device,
                                sampler=sampler)
    flips = torch.Generator().manual_seed(0)
    model.train()
    samples, start = 0, None
    for step, batch in enumerate(loader):
        if step == 2:
            start = time.perf_counter()
        if step == steps + 2:
            break
        engine.train_step(model, optimizer, batch, config, processes, flips)
        samples += len(batch["index"]) if step >= 2 else 0
    if processes.device.type == "cuda":
        torch.cuda.synchronize(processes.device)
    return samples / (time.perf_counter() - start)


def main(argv=None):
    args = parse_args(argv)
    config = load_config(args.config, args.opts + ["train.feature_cache=memory"])
    print(apply_torch_threads(config))
    processes = single_process(args.device)
    benchmark = benchmarks.get(config.dataset.name)
    torch.manual_seed(config.seed)
    model = engine.build_capf_model(config, processes.device)
    optimizer = make_optimizer(model, config)
    plain = engine.build_split(benchmark, config, "train")
    cached = engine.build_split(benchmark, config, "train")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as logdir:
        attach_feature_cache(model, cached, config, processes.device, benchmark.skeleton, logdir,
                             "train")
    build_s = time.perf_counter() - start
    rates = {"uncached": [], "cached": []}
    for _ in range(args.rounds):
        rates["uncached"].append(samples_per_second(model, optimizer, plain, config, processes,
                                                    args.steps))
        rates["cached"].append(samples_per_second(model, optimizer, cached, config, processes,
                                                  args.steps))
    uncached = sum(rates["uncached"]) / args.rounds
    cached_rate = sum(rates["cached"]) / args.rounds
    frames = len(plain)
    epoch_uncached_s, epoch_cached_s = frames / uncached, frames / cached_rate
    print("%s, %s, batch %d, %d DataLoader workers, %d training frames"
          % (config.model.backbone.type, args.device, config.train.batch_size,
             config.dataset.num_workers, frames))
    print("uncached (released path) train samples/s: %s -> %.1f"
          % (", ".join("%.1f" % r for r in rates["uncached"]), uncached))
    print("cached train samples/s:                    %s -> %.1f"
          % (", ".join("%.1f" % r for r in rates["cached"]), cached_rate))
    print("cache built in %.1f s (%.1f frames/s, both orientations); an epoch: %.1f s uncached, "
          "%.1f s cached; the cache has paid for itself after %.2f epochs"
          % (build_s, frames / build_s, epoch_uncached_s, epoch_cached_s,
             build_s / max(epoch_uncached_s - epoch_cached_s, 1e-9)))
    print("cached/uncached train samples/s ratio: %.2f" % (cached_rate / uncached))


if __name__ == "__main__":
    sys.exit(run_main(main, "bench_feature_cache.py"))
