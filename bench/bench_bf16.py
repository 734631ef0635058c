"""bf16 against fp32 on a TRAINED model: the validation P1 / P2 of each, and which part moves them.

A trained checkpoint, its config and its validation split are evaluated (flip test on) four ways:
fp32; bf16 autocast over the whole model (`train.amp`); bf16 for the backbone only; bf16 for the
transformer (`volume_net`, with its deformable sampling) only. The printed differences say
whether bf16 stays within the 0.5 mm target and, if not, which part causes it.

  python bench/bench_bf16.py --config experiments/synthetic/quickstart.yaml \\
      --checkpoint logs/quickstart/<run>/checkpoints/best_epoch.bin [--device cuda] [--frames N]
"""
import argparse
import sys
from contextlib import nullcontext

import numpy as np
import torch

from mvn.batch import flip_batch, mirror_x, prepare_batch
from mvn.config import load_config
from mvn.benchmarks import build_dataset
from mvn.errors import run_main
from mvn.human36m.facts import SKELETON
from mvn.human36m.protocol import per_action_errors
from mvn.models import build_model
from mvn.models.weights import load_model_weights

TARGET_MM = 0.5
VARIANTS = ("fp32", "bf16 (whole model)", "bf16 backbone only", "bf16 volume_net only")


def forward(model, images, keypoints_2d, keypoints_2d_crop, variant):
    """CA_PF's forward with bf16 autocast around the parts `variant` names (float32 output)."""
    device = images.device.type
    bf16 = torch.autocast(device_type=device, dtype=torch.bfloat16)
    backbone_context = bf16 if variant in (VARIANTS[1], VARIANTS[2]) else nullcontext()
    head_context = bf16 if variant in (VARIANTS[1], VARIANTS[3]) else nullcontext()
    with backbone_context:
        features = [f.float() for f in model.backbone_features(images)]
    with head_context:
        return model.lift(keypoints_2d, keypoints_2d_crop, features).float()    # (B, 1, 17, 3)


def flip_tested(model, images, keypoints_2d, keypoints_2d_crop, variant):
    prediction = forward(model, images, keypoints_2d, keypoints_2d_crop, variant)
    flipped = forward(model, *flip_batch(images, keypoints_2d, keypoints_2d_crop,
                                         skeleton=SKELETON), variant)
    return ((prediction + mirror_x(flipped, skeleton=SKELETON)) / 2)[:, 0]                         # (B, 17, 3)


@torch.no_grad()
def tables(model, dataset, config, device, frames, batch_size=64):
    predictions = {v: [] for v in VARIANTS}
    targets = []
    count = min(frames or len(dataset), len(dataset))
    for start in range(0, count, batch_size):
        batch = torch.utils.data.default_collate(
            [dataset[i] for i in range(start, min(start + batch_size, count))])
        images, keypoints_2d, keypoints_2d_crop, target = prepare_batch(
            batch, config.model.backbone.type, device, skeleton=SKELETON)
        for variant in VARIANTS:
            predictions[variant].append(
                flip_tested(model, images, keypoints_2d, keypoints_2d_crop, variant).cpu())
        targets.append(target[:, 0].cpu())
    target = torch.cat(targets).numpy()
    labels = dataset.labels
    return {v: per_action_errors(torch.cat(p).numpy(), target, labels.action[:count],
                                 labels.subaction[:count]) for v, p in predictions.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--frames", type=int, default=0, help="validation frames (0: all)")
    parser.add_argument("--opts", nargs="*", default=[], help="config overrides")
    args = parser.parse_args(argv)
    config = load_config(args.config, args.opts)
    device = torch.device(args.device)
    model = build_model(config)
    load_model_weights(model, args.checkpoint)
    model.to(device).eval()
    dataset = build_dataset(config, "val")
    results = tables(model, dataset, config, device, args.frames)
    reference = results[VARIANTS[0]]["average"]
    print("device %s, %s, %d validation frames, flip test; %s"
          % (device, config.model.backbone.type, reference["frames"], args.checkpoint))
    print("%-24s %9s %9s %12s %12s" % ("", "P1 mm", "P2 mm", "dP1 mm", "dP2 mm"))
    worst = {}
    for variant in VARIANTS:
        average = results[variant]["average"]
        d1, d2 = average["p1"] - reference["p1"], average["p2"] - reference["p2"]
        worst[variant] = max(abs(d1), abs(d2))
        print("%-24s %9.3f %9.3f %+12.4f %+12.4f" % (variant, average["p1"], average["p2"], d1, d2))
    whole = worst[VARIANTS[1]]
    verdict = "within" if whole <= TARGET_MM else "NOT within"
    culprit = max(VARIANTS[2:], key=lambda v: worst[v])
    print("bf16 whole model: %.4f mm from fp32, %s the %.1f mm target; the larger part: %s "
          "(%.4f mm)" % (whole, verdict, TARGET_MM, culprit, worst[culprit]))
    return 0 if np.isfinite(whole) else 1


if __name__ == "__main__":
    sys.exit(run_main(main, "bench_bf16.py"))
