"""The cost of the checkpoint checksum (mvn/checksum.py): saving and loading a CA-PF checkpoint of
real size (default: HRNet-32, the model's weights and the AdamW state of its trainable part, as
`last.bin` holds them) with plain torch.save / torch.load against this project's atomic save
(+ SHA-256 trailer) and verified load. Printed side by side, with the ratio.

  python bench/bench_checkpoint.py [--backbone hrnet_32] [--repeats 3] [--folder /tmp]

The folder's file system decides the absolute figures (page cache, disk); the ratio is what the
checksum adds. Nothing is written outside --folder (a temporary sub-folder, removed).
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

import torch

from mvn.checkpoint import atomic_save, model_state_with_module_prefix
from mvn.checksum import verify_checksum
from mvn.config import load_config
from mvn.recipe import make_optimizer
from mvn.errors import run_main
from mvn.models import build_model
from mvn.models.weights import read_weights_file


def checkpoint_of(backbone):
    """A last.bin-like dict for `backbone`: model state, AdamW state after one step."""
    config = load_config(None, ["model.backbone.type=%s" % backbone,
                                "model.backbone.pretrained=none"])
    torch.manual_seed(0)
    model = build_model(config)
    optimizer = make_optimizer(model, config)
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            parameter.grad = torch.zeros_like(parameter)
    optimizer.step()                                     # AdamW's exp_avg / exp_avg_sq
    return {"epoch": 3, "step": 500, "lr": 0.00064, "model": model_state_with_module_prefix(model),
            "optimizer": optimizer.state_dict(), "best_p1": 50.0, "history": [], "progress": {}}


def best_of(repeats, function):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="hrnet_32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--folder", default=tempfile.gettempdir())
    args = parser.parse_args(argv)
    state = checkpoint_of(args.backbone)
    work = tempfile.mkdtemp(prefix="bench_checkpoint_", dir=args.folder)
    try:
        plain, checked = os.path.join(work, "plain.bin"), os.path.join(work, "checked.bin")
        rows = [
            ("save", best_of(args.repeats, lambda: torch.save(state, plain)),
             best_of(args.repeats, lambda: atomic_save(state, checked))),
            ("load", best_of(args.repeats, lambda: torch.load(plain, map_location="cpu",
                                                              weights_only=True)),
             best_of(args.repeats, lambda: read_weights_file(checked))),
        ]
        verify_s = best_of(args.repeats, lambda: verify_checksum(checked))
        size_mb = os.path.getsize(checked) / 1e6
        print("%s checkpoint (model + AdamW state): %.1f MB; %d CPU(s), load average %s; "
              "best of %d, files in %s" % (args.backbone, size_mb, os.cpu_count(),
                                           " ".join("%.1f" % x for x in os.getloadavg()),
                                           args.repeats, args.folder))
        print("%-6s %14s %30s %8s" % ("", "torch (s)", "atomic + checksum (s)", "ratio"))
        for name, base, ours in rows:
            print("%-6s %14.3f %30.3f %8.2f" % (name, base, ours, ours / base))
        print("verify alone: %.3f s (%.0f MB/s)" % (verify_s, size_mb / verify_s))
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    sys.exit(run_main(main, "bench_checkpoint.py"))
