"""Train-step throughput of CA-PF with the speed options, each checked against fp32.

For each option set -- fp32, `train.amp` (bf16 autocast), `train.channels_last`, `train.compile`
and their combinations -- this times whole training steps, each `mvn.engine.train_step` (THE
step training runs: flip draw, batch preparation, forward through the frozen backbone, MPJPE
loss, non-finite check, backward, AdamW step) on a random batch, after checking the option's eval-mode output on the reference vectors
(`hrnet32_fill_vectors.pt`, or `cpn_fill_vectors.pt` for --backbone cpn; weights filled by the
reference's procedure) against fp32, in mm. Its last line is what rounding only the images to
bf16 costs there, the rest in fp32: a bf16 backbone does at least that rounding.

  python bench/bench_step.py                                   # CPU, HRNet-32, batch 32
  python bench/bench_step.py --device cuda --batch 512         # a GPU
  python bench/bench_step.py --options fp32 amp+channels_last compile --steps 5
"""
import argparse
import os
import platform
import sys
import time

import torch

from mvn import engine, recipe
from mvn.config import load_config
from mvn.distributed import single_process
from mvn.errors import run_main
from mvn.models import build_model

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE_DIR = os.path.join(REPO_ROOT, "tests", "reference")
sys.path.insert(0, os.path.join(REPO_ROOT, "tests"))
from reference_weights import fill_reference_weights  # noqa: E402  (the reference fill)
OPTION_KEYS = {"amp": "train.amp", "channels_last": "train.channels_last",
               "compile": "train.compile", "tf32": "train.tf32"}
DEFAULT_OPTIONS = ["fp32", "amp", "channels_last", "amp+channels_last"]
VECTOR_FILES = {"hrnet_32": "hrnet32_fill_vectors.pt", "cpn": "cpn_fill_vectors.pt"}


def option_config(option, backbone):
    """'amp+channels_last' -> the config with train.amp and train.channels_last on."""
    names = [] if option == "fp32" else option.split("+")
    unknown = [n for n in names if n not in OPTION_KEYS]
    if unknown:
        raise SystemExit("unknown option %s: use fp32 or a '+'-joined set of %s"
                         % (", ".join(unknown), ", ".join(OPTION_KEYS)))
    overrides = ["model.backbone.type=%s" % backbone, "model.backbone.pretrained=none"]
    overrides += ["%s=true" % OPTION_KEYS[n] for n in names]
    return load_config(None, overrides)


def build(config, device):
    """The filled model with the config's options, the module to call, and its optimiser."""
    recipe.configure_tf32(config)
    model = build_model(config)
    with torch.no_grad():
        fill_reference_weights(model.state_dict())
    model = recipe.apply_channels_last(model.to(device), config)
    call = torch.compile(model) if config.train.compile else model  # as engine.fit
    return model, call, recipe.make_optimizer(model, config)


def random_batch(batch_size, seed=0):
    """A DataLoader-like batch: BGR uint8 crops and joints in their ranges."""
    g = torch.Generator().manual_seed(seed)
    return {
        "images": torch.randint(0, 256, (batch_size, 256, 192, 3), dtype=torch.uint8,
                                generator=g),                                  # (B, 256, 192, 3)
        "keypoints_2d": torch.rand(batch_size, 17, 2, generator=g) * 2 - 1,      # (B, 17, 2)
        "keypoints_2d_crop": torch.rand(batch_size, 17, 2, generator=g)
        * torch.tensor([191.0, 255.0]),                                          # (B, 17, 2)
        "keypoints_3d": torch.randn(batch_size, 1, 17, 3, generator=g) * 0.3,    # (B, 1, 17, 3)
    }


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_steps(call, optimizer, config, batch, device, steps):
    """Run `steps` training steps, each `engine.train_step` (what training runs); returns
    seconds."""
    call.train()
    processes = single_process(device)
    flips = torch.Generator().manual_seed(0)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        engine.train_step(call, optimizer, batch, config, processes, flips)
    synchronize(device)
    return time.perf_counter() - start


@torch.no_grad()
def reference_output(call, config, vectors, device, round_images_to_bf16=False):
    """(B, 1, 17, 3) eval-mode output on the reference inputs, float32 on the CPU.

    With `round_images_to_bf16`, the prepared images alone are rounded to bfloat16 first, as a
    bf16 backbone's first convolution rounds them; with the model in fp32 this gives the
    difference that this rounding alone makes on these vectors."""
    call.eval()
    inputs = [vectors[k].to(device) for k in ("images", "keypoints_2d", "keypoints_2d_crop")]
    if round_images_to_bf16:
        inputs[0] = inputs[0].bfloat16().float()
    if config.train.channels_last:
        inputs[0] = inputs[0].contiguous()  # the prepared (B, 256, 192, 3) NHWC batch
    with recipe.autocast(config, device):
        return call(*inputs).float().cpu()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, help="default: 512 on cuda, 32 on cpu")
    parser.add_argument("--backbone", default="hrnet_32",
                        help="hrnet_32 or cpn (checked against their fill vectors), or "
                        "hrnet_tiny (not checked)")
    parser.add_argument("--options", nargs="+", default=DEFAULT_OPTIONS,
                        help="fp32, or '+'-joined sets of amp, channels_last, compile")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per option")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per option")
    parser.add_argument("--reference-dir", default=REFERENCE_DIR)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    batch_size = args.batch or (512 if device.type == "cuda" else 32)
    vectors = None
    if args.backbone in VECTOR_FILES:
        path = os.path.join(args.reference_dir, VECTOR_FILES[args.backbone])
        if not os.path.isfile(path):
            raise SystemExit("reference vectors %s not found: pass --reference-dir with the "
                             "folder holding %s (tests/reference/ of this repository)"
                             % (path, VECTOR_FILES[args.backbone]))
        vectors = torch.load(path, map_location="cpu", weights_only=True)
    print("device %s (%s), torch %s, %d threads; %s batch %d, %d warm-up + %d timed steps"
          % (device, torch.cuda.get_device_name(device) if device.type == "cuda"
             else platform.processor() or platform.machine(), torch.__version__,
             torch.get_num_threads(), args.backbone, batch_size, args.warmup, args.steps))
    batch = random_batch(batch_size)
    if device.type == "cuda":  # as the training DataLoader hands it over (pin_memory on cuda)
        batch = {name: tensor.pin_memory() for name, tensor in batch.items()}
    options = ["fp32"] + [o for o in args.options if o != "fp32"]  # fp32 first: the baseline
    rows, fp32, floor_mm = [], None, None
    for option in options:
        config = option_config(option, args.backbone)
        model, call, optimizer = build(config, device)
        output = reference_output(call, config, vectors, device) if vectors else None
        if option == "fp32":
            fp32 = output
            if vectors:
                floor = reference_output(call, config, vectors, device, True)
                floor_mm = (floor - fp32).abs().max().item() * 1000
        start = time.perf_counter()
        train_steps(call, optimizer, config, batch, device, args.warmup)
        warmup_s = time.perf_counter() - start
        seconds = train_steps(call, optimizer, config, batch, device, args.steps)
        rate = batch_size * args.steps / seconds
        diff_mm = (output - fp32).abs().max().item() * 1000 if vectors else float("nan")
        ref_mm = (output - vectors["output"]).abs().max().item() * 1000 if vectors else float("nan")
        rows.append((option, rate, diff_mm, ref_mm, warmup_s))
        print("  %-28s %8.1f samples/s  (warm-up %.0f s)" % (option, rate, warmup_s), flush=True)
        del model, call, optimizer
    base = rows[0][1]
    print("\n%-28s %12s %8s %18s %18s" % ("option", "samples/s", "x fp32", "max |d| vs fp32",
                                          "max |d| vs ref"))
    for option, rate, diff_mm, ref_mm, _ in rows:
        print("%-28s %12.1f %8.2f %15.4f mm %15.4f mm" % (option, rate, rate / base, diff_mm,
                                                          ref_mm))
    if floor_mm is not None:
        print("\nfp32 model, images alone rounded to bf16: max |d| vs fp32 %.4f mm (rounding"
              " its input costs any bf16 backbone this much on these vectors)" % floor_mm)


if __name__ == "__main__":
    sys.exit(run_main(main, "bench_step.py"))
