"""The demo's speed: frames/s and people/s of `demo.py` on a synthetic video, per configuration,
measured side by side in one run (randomly initialised weights: speed does not depend on them).

Each configuration runs the whole command as a user does (frames decoded in the background, the
COCO heatmap head and CA-PF on one backbone pass, flip test, pictures and the MP4 written), with
the people's boxes given (the person detector needs torchvision, which the project does not
require; its cost comes on top). The figure is demo.py's own last line.

  python bench/bench_demo.py                                  # tiny and HRNet-32, CPU
  python bench/bench_demo.py --configs hrnet_32 --frames 40 --people 2 --device cuda
"""
import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile

import cv2
import numpy as np
import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)
from mvn.config import load_config  # noqa: E402
from mvn.errors import run_main  # noqa: E402
from mvn.models import build_model  # noqa: E402

CONFIGS = {"tiny": ["model.backbone.type=hrnet_tiny", "model.embed_dim_ratio=32"],
           "hrnet_32": []}
SPEED = re.compile(r"([\d.]+) frames/s, ([\d.]+) people/s")


def write_inputs(folder, name, frames, people):
    """A config, a random checkpoint and COCO head, a video and its boxes for `name`."""
    overrides = CONFIGS[name] + ["model.backbone.pretrained=none"]
    torch.manual_seed(0)
    model = build_model(load_config(None, overrides))
    checkpoint = os.path.join(folder, name + ".bin")
    torch.save({"model": model.state_dict()}, checkpoint)
    head = os.path.join(folder, name + "_head.pth")
    torch.save({"final_layer.weight": torch.randn(17, model.backbone.feature_channels[0], 1, 1),
                "final_layer.bias": torch.zeros(17)}, head)
    config = os.path.join(folder, name + ".yaml")
    with open(config, "w") as f:
        f.write("model:\n  backbone:\n    type: %s\n    pretrained: none\n"
                % ("hrnet_tiny" if name == "tiny" else "hrnet_32"))
        if name == "tiny":
            f.write("  embed_dim_ratio: 32\n")
    video = os.path.join(folder, "video.mp4")
    boxes = []
    if not os.path.exists(video):
        writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"mp4v"), 25, (640, 360))
        rng = np.random.default_rng(0)
        for i in range(frames):
            writer.write(rng.integers(0, 255, (360, 640, 3), dtype=np.uint8))
        writer.release()
    for i in range(frames):
        boxes.append([[40 + 150 * p + i, 40, 160 + 150 * p + i, 330] for p in range(people)])
    with open(os.path.join(folder, "boxes.json"), "w") as f:
        json.dump(boxes, f)
    return config, checkpoint, head, video, os.path.join(folder, "boxes.json")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--people", type=int, default=1, help="people per frame")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--amp", action="store_true")
    args = parser.parse_args(argv)

    def run():
        print("%s, torch %s, %d threads, device %s%s" % (
            platform.processor() or platform.machine(), torch.__version__,
            torch.get_num_threads(), args.device,
            " (%s)" % torch.cuda.get_device_name() if args.device == "cuda" else ""))
        with tempfile.TemporaryDirectory() as folder:
            for name in args.configs:
                config, checkpoint, head, video, boxes = write_inputs(folder, name, args.frames,
                                                                      args.people)
                command = [sys.executable, os.path.join(REPO_ROOT, "demo.py"), "--config",
                           config, "--checkpoint", checkpoint, "--coco-weights", head,
                           "--video", video, "--boxes", boxes, "--device", args.device,
                           "--out", os.path.join(folder, "out_" + name)]
                result = subprocess.run(command + (["--amp"] if args.amp else []),
                                        capture_output=True, text=True, cwd=REPO_ROOT)
                speed = SPEED.search(result.stdout)
                if result.returncode != 0 or speed is None:
                    print("%-9s failed (exit %d): %s" % (name, result.returncode,
                                                         result.stderr.strip()[-500:]))
                    continue
                print("%-9s %3d frames x %d people: %6.2f frames/s, %6.2f people/s"
                      % (name, args.frames, args.people, float(speed.group(1)),
                         float(speed.group(2))))
    return run_main(run, "bench_demo.py")


if __name__ == "__main__":
    sys.exit(main())
