"""The cost of a model: parameters, forward FLOPs per sample, measured samples per second.

FLOPs are PyTorch's count (torch.utils.flop_counter.FlopCounterMode): 2 FLOPs per
multiply-accumulate of the convolutions and matrix products (linear layers, attention); the
bilinear sampling (grid_sample), normalisations and activations are not counted. MACs are half
the FLOPs. HRNet's authors' table counts MACs of convolutions and linear layers and divides by
2^30 ("GFLOPs" there): `gmacs_binary` gives that figure (docs/results.md).

The counts come from the model built on the meta device (no memory, no weights); the speed from
the real model on the device in use, with random inputs.
"""
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from mvn.batch import predict_pose
from mvn.geometry import CROP_SHAPE
from mvn.models import build_model


def parameter_counts(model):
    """{'trainable', 'frozen', 'total'}: parameters with and without requires_grad."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return {"trainable": trainable, "frozen": frozen, "total": trainable + frozen}


def example_inputs(batch_size, device=None, joints=17):
    """Prepared images (B, 256, 192, 3), screen-normalised joints (B, J, 2) and crop keypoints
    (B, J, 2) at the crop's centre: the shapes the model takes (their values do not change the
    count, nor, to first order, the speed)."""
    height, width = CROP_SHAPE
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch_size, height, width, 3, generator=generator)
    keypoints_2d = torch.randn(batch_size, joints, 2, generator=generator) * 0.1
    keypoints_2d_crop = torch.full((batch_size, joints, 2), 0.0)
    keypoints_2d_crop[..., 0], keypoints_2d_crop[..., 1] = width / 2, height / 2
    return tuple(t.to(device) for t in (images, keypoints_2d, keypoints_2d_crop))


def flop_counts(config):
    """{'backbone', 'lifter'}: forward FLOPs of one sample (one forward, no flip test) of the
    model `config` describes, built on the meta device."""
    with torch.device("meta"):
        model = build_model(config)
    model.eval()
    images, keypoints_2d, keypoints_2d_crop = (t.to("meta") for t in example_inputs(1))
    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            features = model.backbone_features(images)
        backbone = counter.get_total_flops()
        with FlopCounterMode(display=False) as counter:
            model.lift(keypoints_2d, keypoints_2d_crop, features)
        lifter = counter.get_total_flops()
    return {"backbone": int(backbone), "lifter": int(lifter)}


def samples_per_second(model, batch_size, device, flip_test, skeleton, min_seconds=1.0,
                       min_runs=3):
    """Measured samples/s of the evaluation's forward (predict_pose, with the flip test if
    `flip_test`) at `batch_size` on `device`: one warm-up run, then runs until `min_seconds`
    and `min_runs` are both reached."""
    inputs = example_inputs(batch_size, device, skeleton.num_joints)

    def synchronize():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    model.eval()
    with torch.no_grad():
        predict_pose(model, *inputs, flip_test, skeleton=skeleton)  # warm-up
        synchronize()
        runs, start = 0, time.perf_counter()
        while runs < min_runs or time.perf_counter() - start < min_seconds:
            predict_pose(model, *inputs, flip_test, skeleton=skeleton)
            runs += 1
        synchronize()
        elapsed = time.perf_counter() - start
    return runs * batch_size / elapsed


def device_name(device):
    if device.type == "cuda":
        return "%s (%s)" % (torch.cuda.get_device_name(device), device)
    return "cpu (%d PyTorch threads)" % torch.get_num_threads()


def model_cost(model, config, device, skeleton, measure=True, min_seconds=1.0, min_runs=3):
    """The cost table: parameters, FLOPs and MACs per sample (backbone, lifter, whole
    forward; the flip test doubles them), samples/s at batch 1 and at val.batch_size."""
    flops = flop_counts(config)
    flops["forward"] = flops["backbone"] + flops["lifter"]
    result = {"parameters": parameter_counts(model),
              "flops_per_sample": flops,
              "gflops_per_sample": {k: v / 1e9 for k, v in flops.items()},
              "gmacs_per_sample": {k: v / 2e9 for k, v in flops.items()},
              "gmacs_binary_per_sample": {k: v / 2 / 2 ** 30 for k, v in flops.items()},
              "flop_convention": "2 FLOPs per multiply-accumulate (torch FlopCounterMode); "
                                 "convolutions and matrix products only",
              "flip_test": bool(config.val.flip_test), "device": device_name(device)}
    if measure:
        result["samples_per_s"] = {
            "batch_%d" % size: samples_per_second(model, size, device, config.val.flip_test,
                                                  skeleton, min_seconds, min_runs)
            for size in (1, config.val.batch_size)}
    return result


def format_cost(cost):
    p = cost["parameters"]
    g, m = cost["gflops_per_sample"], cost["gmacs_per_sample"]
    lines = ["parameters: %s trainable, %s frozen, %s in all"
             % tuple("{:,}".format(p[k]) for k in ("trainable", "frozen", "total")),
             "per sample, one forward (%s): backbone %.3f GFLOPs = %.3f GMACs, lifter %.3f GFLOPs"
             " = %.3f GMACs, together %.3f GFLOPs" % (cost["flop_convention"], g["backbone"],
                                                      m["backbone"], g["lifter"], m["lifter"],
                                                      g["forward"])]
    if "samples_per_s" in cost:
        lines.append("measured on %s, %s flip test: %s" % (
            cost["device"], "with" if cost["flip_test"] else "without",
            ", ".join("%.1f samples/s at %s" % (v, k.replace("_", " "))
                      for k, v in cost["samples_per_s"].items())))
    return "\n".join(lines)
