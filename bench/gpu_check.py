"""The GPU check: one command for a (borrowed, short-lived) GPU machine that runs everything a
GPU user relies on and writes one Markdown report. Within ~8 minutes on one H100:

  1. the environment (GPU, driver, torch, CUDA, cuDNN, cores);
  2. installs the wheels brought along (bench/fetch_wheels.sh downloads them beforehand, on a
     machine with a package index, into the git-ignored bench/wheels/);
  3. the CUDA tests (`pytest -m cuda`): reference vectors, flip test, THE training step and an
     evaluation on the GPU against the CPU's values;
  4. a small synthetic Human3.6M, `train.py` through torchrun (1 process, NCCL) on the label
     files + JPEGs and on the frame store, samples/s of each, an evaluation;
  5. `bench/bench_step.py` (batch 512: fp32, TF32, bf16 autocast, channels_last, both, compile)
     and `bench/bench_data.py` with 16 workers;
  6. peak GPU memory and the backbone forward's TFLOP/s against the card's peak;
  7. bf16 against fp32 on the model trained in 4 (`bench/bench_bf16.py`).

Every step runs under a time bound, and the report is rewritten after each, so that what
finished is there even if the machine is taken back. On a machine without a GPU,
`--device cpu --quick` runs the same steps small (the CPU stand-in).

  python bench/gpu_check.py --out gpu_report                 # on the GPU machine
  python bench/gpu_check.py --out /tmp/report --device cpu --quick
"""
import argparse
import glob
import json
import os
import platform
import shlex
import subprocess
import sys
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WHEELS = os.path.join(REPO, "bench", "wheels")
# Dense peak TFLOP/s of the cards this check is meant for (vendor figures: fp32, TF32, bf16).
PEAK_TFLOPS = {"H100": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4},
               "H200": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4}}


class Report:
    """The Markdown report, rewritten whole after every section."""

    def __init__(self, folder):
        os.makedirs(folder, exist_ok=True)
        self.path = os.path.join(folder, "report.md")
        self.sections = ["# GPU check (%s)\n" % time.strftime("%Y-%m-%d %H:%M:%S")]

    def add(self, title, text, seconds=None):
        timing = "" if seconds is None else " (%.0f s)" % seconds
        self.sections.append("## %s%s\n\n%s\n" % (title, timing, text.rstrip()))
        with open(self.path, "w") as f:
            f.write("\n".join(self.sections))
        print("[gpu_check] %s%s" % (title, timing), flush=True)


def run(command, timeout, env=None):
    """(exit status, output) of a command run from the repository root, bounded in time."""
    start = time.time()
    try:
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                                timeout=timeout, env=dict(os.environ, **(env or {})))
        status, output = result.returncode, result.stdout + result.stderr
    except subprocess.TimeoutExpired as expired:
        status = "timeout"
        output = "%s%s\n(stopped after %d s)" % (expired.stdout or "", expired.stderr or "",
                                                 timeout)
    return status, output, time.time() - start


def block(command, status, output, lines=40):
    tail = "\n".join(output.replace("\r", "\n").strip().splitlines()[-lines:])
    return "`%s` -> exit %s\n\n```\n%s\n```" % (" ".join(shlex.quote(c) for c in command),
                                                status, tail)


def environment(device):
    lines = ["- python %s, torch %s, CUDA %s, cuDNN %s, %d CPU cores, %s"
             % (platform.python_version(), torch.__version__, torch.version.cuda,
                torch.backends.cudnn.version(), os.cpu_count(), platform.platform())]
    if device == "cuda":
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            lines.append("- GPU %d: %s, %.1f GiB, %d SMs" % (i, p.name, p.total_memory / 2**30,
                                                            p.multi_processor_count))
        status, output, _ = run(["nvidia-smi"], 30)
        lines.append("\n```\n%s\n```" % output.strip())
    else:
        lines.append("- device: CPU (stand-in run; no GPU figures)")
    return "\n".join(lines)


def install_wheels():
    wheels = sorted(glob.glob(os.path.join(WHEELS, "*.whl")))
    if not wheels:
        return None, "no wheels in bench/wheels/ (run bench/fetch_wheels.sh first where a " \
                     "package index is reachable); the packages present are used", 0
    command = [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", WHEELS,
               "--quiet", "--disable-pip-version-check", "-r",
               os.path.join(REPO, "bench", "gpu_requirements.txt")]   # installed ones are kept
    status, output, seconds = run(command, 180)
    text = block(command, status, output)
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "-e", REPO]
    status, output, more = run(command, 120)
    return status, text + "\n\n" + block(command, status, output), seconds + more


def synthetic_data(root, frames):
    selection = ["--subjects", "1", "9", "--actions", "2", "3", "4", "5"]
    steps = [["synthesize_h36m.py", "--root", root, "--frames", str(frames), "--seed", "0"]
             + selection, ["video_to_images.py", "--root", root] + selection,
             ["generate_labels_h36m.py", "--root", root] + selection,
             ["prepare_store.py", "--root", root, "--out", os.path.join(root, "store"),
              "--source", "videos"]]
    outputs, total = [], 0.0
    for step in steps:
        command = [sys.executable, os.path.join("H36M-Toolbox", step[0])] + step[1:]
        status, output, seconds = run(command, 300)
        total += seconds
        outputs.append(block(command, status, output, lines=4))
        if status != 0:
            break
    return status == 0, "\n\n".join(outputs), total


def train(root, logdir, device, steps, data_format, nproc=1):
    options = ["dataset.root=%s" % os.path.join(root, "images"),
               "dataset.train_labels_path=%s" % os.path.join(root, "h36m_train.pkl"),
               "dataset.val_labels_path=%s" % os.path.join(root, "h36m_validation.pkl"),
               "dataset.store_path=%s" % os.path.join(root, "store"),
               "dataset.format=%s" % data_format, "dataset.num_workers=%d" % min(16, os.cpu_count()),
               "train.n_epochs=1", "train.max_steps_per_epoch=%d" % steps,
               "train.batch_size=%d" % (64 if device == "cuda" else 8), "train.vis_every_epoch=false",
               "val.batch_size=64"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=%d" % nproc, "train.py", "--config",
               "experiments/synthetic/tiny.yaml", "--logdir", logdir, "--device", device,
               "--name", data_format, "--opts"] + options
    status, output, seconds = run(command, 420)
    rate = None
    last = os.path.join(logdir, data_format, "checkpoints", "last.bin")
    if status == 0 and os.path.isfile(last):
        history = torch.load(last, weights_only=True)["history"]
        rate = history[-1]["samples_per_s"]
    return status, block(command, status, output, lines=6), seconds, rate


def backbone_throughput(device, batch):
    """(TFLOP/s of the HRNet-32 backbone forward in fp32 and bf16, peak memory GiB)."""
    from torch.utils.flop_counter import FlopCounterMode
    from mvn.config import load_config
    from mvn.models import build_model
    model = build_model(load_config(None, ["model.backbone.type=hrnet_32"])).backbone.eval()
    images = torch.randn(batch, 3, 256, 192)
    with FlopCounterMode(display=False) as counter:
        with torch.no_grad():
            model(images[:1])
    flops = counter.get_total_flops() * batch
    model, images = model.to(device), images.to(device)
    results = {}
    for name, context in (("fp32", None), ("bf16", torch.bfloat16)):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        with torch.no_grad(), torch.autocast(device.type, dtype=context or torch.float32,
                                             enabled=context is not None):
            for _ in range(2):
                model(images)
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            repeats = 5 if device.type == "cuda" else 1
            for _ in range(repeats):
                model(images)
            if device.type == "cuda":
                torch.cuda.synchronize()
        seconds = (time.perf_counter() - start) / repeats
        memory = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else 0.0
        results[name] = (flops / seconds / 1e12, memory)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder for report.md and the runs")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        choices=("cuda", "cpu"))
    parser.add_argument("--quick", action="store_true", help="small sizes (the CPU stand-in)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check.py: error: no CUDA device visible; use --device cpu --quick")
    out = os.path.abspath(args.out)
    report = Report(out)
    start = time.time()
    report.add("Environment", environment(args.device))

    status, text, seconds = install_wheels()
    report.add("Wheels brought along", text, seconds)

    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda",
               "tests"]
    status, output, seconds = run(command, 240)
    report.add("CUDA tests", block(command, status, output, lines=8), seconds)

    root = os.path.join(out, "h36m")
    ok, text, seconds = synthetic_data(root, 4 if args.quick else 40)
    report.add("Synthetic Human3.6M and its frame store", text, seconds)
    rates, trained = {}, None
    if ok:
        steps = 4 if args.quick else 300
        for data_format in ("pkl", "store"):
            status, text, seconds, rate = train(root, os.path.join(out, "runs"), args.device,
                                                steps, data_format)
            rates[data_format] = rate
            report.add("train.py, %s path, %d steps" % (data_format, steps), text, seconds)
            if status == 0 and data_format == "pkl":
                trained = os.path.join(out, "runs", "pkl", "checkpoints", "best_epoch.bin")
        if rates.get("pkl") and rates.get("store"):
            report.add("Samples/s, train.py end to end", "pkl + JPEG: %.1f, frame store: %.1f, "
                       "ratio %.2f" % (rates["pkl"], rates["store"],
                                       rates["store"] / rates["pkl"]))

    if ok:  # train.feature_cache: the tiny CA-PF's steps with the backbone's maps cached
        command = [sys.executable, "bench/bench_feature_cache.py", "--config",
                   "experiments/synthetic/tiny.yaml", "--device", args.device, "--steps",
                   "2" if args.quick else "40", "--rounds", "1" if args.quick else "2", "--opts",
                   "dataset.root=%s" % os.path.join(root, "images"),
                   "dataset.train_labels_path=%s" % os.path.join(root, "h36m_train.pkl"),
                   "dataset.num_workers=%d" % min(16, os.cpu_count()),
                   "train.batch_size=%d" % (8 if args.quick else 64)]
        status, output, seconds = run(command, 180)
        report.add("bench_feature_cache.py", block(command, status, output, lines=8), seconds)

    batch = 8 if args.quick else 512
    step = [sys.executable, "bench/bench_step.py", "--device", args.device, "--batch", str(batch),
            "--warmup", "1", "--steps", "1" if args.quick else "5", "--options"]
    command = step + ["fp32", "tf32", "amp", "channels_last", "amp+channels_last"]
    status, output, seconds = run(command, 300)
    report.add("bench_step.py", block(command, status, output, lines=20), seconds)
    if not args.quick:  # compiling takes minutes: its own run and time bound
        command = step + ["fp32", "compile", "amp+channels_last+compile"]
        status, output, seconds = run(command, 240)
        report.add("bench_step.py, torch.compile (bounded: 240 s)",
                   block(command, status, output, lines=12), seconds)
    if ok:
        command = [sys.executable, "bench/bench_data.py", "--root", root, "--stores",
                   os.path.join(root, "store"), "--workers", "2" if args.quick else "16",
                   "--seconds", "0.5" if args.quick else "4", "--samples", "10" if args.quick else "200",
                   "--label-rows", "20000" if args.quick else "1500000",
                   "--reference-label-rows", "5000" if args.quick else "300000", "--tmp", out]
        status, output, seconds = run(command, 300)
        report.add("bench_data.py", block(command, status, output, lines=30), seconds)

    results = backbone_throughput(torch.device(args.device), 4 if args.quick else 256)
    lines = []
    name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    peak = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    for precision, (tflops, memory) in results.items():
        share = " (%.0f%% of the card's %s peak)" % (100 * tflops / peak[precision], precision) \
            if peak else ""
        lines.append("- HRNet-32 backbone forward, %s: %.2f TFLOP/s%s, peak memory %.1f GiB"
                     % (precision, tflops, share, memory))
    report.add("Backbone throughput", "\n".join(lines))

    if trained and os.path.isfile(trained):
        command = [sys.executable, "bench/bench_bf16.py", "--config",
                   "experiments/synthetic/tiny.yaml", "--checkpoint", trained, "--device",
                   args.device, "--opts", "dataset.root=%s" % os.path.join(root, "images"),
                   "dataset.val_labels_path=%s" % os.path.join(root, "h36m_validation.pkl")]
        status, output, seconds = run(command, 240)
        report.add("bf16 against fp32 on the trained model", block(command, status, output),
                   seconds)
    report.add("Total", "%.0f s; report: %s" % (time.time() - start, report.path))
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump({"device": args.device, "samples_per_s": rates,
                   "backbone_tflops": {k: v[0] for k, v in results.items()}}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
