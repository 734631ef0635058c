"""Does context help? The paper's claim on a synthetic Human3.6M, in one command.

    python ablation.py --logdir logs/ablation [--device cpu|cuda] [--seeds 0 1 2]
                       [--subjects 1 5 9] [--frames 25] [--detector-epochs 10] [--epochs 10]

1. a synthetic Human3.6M (H36M-Toolbox: synthesis, frames, labels) in <logdir>/data;
2. stage 1: the tiny HRNet trained as a 2D heatmap detector (experiments/synthetic/
   detector_tiny.yaml), then its 2D joints of every frame (H36M-Toolbox/detect_2d.py);
3. CA-PF (experiments/synthetic/tiny.yaml), every seed, the same data and number of steps:
   (a) the trained detector's frozen backbone (its context), (b) no image features (the 2D
   joints alone), (c) a random frozen backbone, (d) = (a) on the detector's own 2D joints
   instead of the CPN-like ones. The frozen backbones' maps are computed once per backbone
   (train.feature_cache=disk, in <logdir>/feature_cache): (a) and (d) of every seed share one
   set; (c) has one per seed (each seed's random initialisation).
It prints one table (the detector's 2D error; P1 / P2 mean +- std per variant) and writes it to
<logdir>/ablation.json, .csv and a bar chart ablation.png. Then what the frozen maps encode: a
linear probe (mvn/evaluations/feature_probe.py) from the 2D joints, alone or with the trained
detector's / a random backbone's maps sampled at them, to the 3D joints, and how far the
validation frames' maps lie from the training frames' (the share of values beyond 5 training
standard deviations) (into ablation.json). Every step is a train.py run with a
fixed --name: started again, the command continues or reuses what was done.
"""
import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.abspath(__file__))
TOOLBOX = os.path.join(REPO, "H36M-Toolbox")
DETECTOR_CONFIG = os.path.join("experiments", "synthetic", "detector_tiny.yaml")
CAPF_CONFIG = os.path.join("experiments", "synthetic", "tiny.yaml")
DETECTIONS = "stage1"
VARIANTS = (
    ("a", "trained detector's context"),
    ("b", "no image features"),
    ("c", "random frozen backbone"),
    ("d", "(a) on the detector's 2D joints"),
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--logdir", default=os.path.join("logs", "ablation"))
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--subjects", type=int, nargs="+", default=[1, 5, 9],
                        help="synthetic subjects (S9 and S11 are the validation split)")
    parser.add_argument("--actions", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--frames", type=int, default=25, help="frames per synthetic video")
    parser.add_argument("--detector-epochs", type=int, default=10,
                        help="stage-1 epochs (the lr drops x0.1 after 80%% and 90%% of them)")
    parser.add_argument("--epochs", type=int, default=10, help="CA-PF epochs")
    parser.add_argument("--batch-size", type=int, default=8, help="CA-PF batch size")
    parser.add_argument("--lr", type=float, default=0.001,
                        help="CA-PF lr (train.volume_net_lr; the quick start's, chosen there for "
                             "few CPU minutes of small batches)")
    parser.add_argument("--max-steps", type=int, default=0,
                        help="steps per epoch of every run (0: the whole split)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    return parser.parse_args(argv)


def run(command):
    print("\n$ " + " ".join(shlex.quote(c) for c in command), flush=True)
    path = os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)
    status = subprocess.run(command, cwd=REPO, env=dict(os.environ, PYTHONPATH=path)).returncode
    if status != 0:
        sys.exit("ablation: the step above failed (exit status %d); started again, the command "
                 "continues after the finished steps" % status)


def prepare_data(root, args):
    labels = [os.path.join(root, name) for name in ("h36m_train.pkl", "h36m_validation.pkl")]
    if all(os.path.isfile(path) for path in labels):
        return
    subset = ["--subjects"] + [str(s) for s in args.subjects] + \
        ["--actions"] + [str(a) for a in args.actions]
    run([sys.executable, os.path.join(TOOLBOX, "synthesize_h36m.py"), "--root", root,
         "--frames", str(args.frames), "--seed", "0"] + subset)
    run([sys.executable, os.path.join(TOOLBOX, "video_to_images.py"), "--root", root] + subset)
    run([sys.executable, os.path.join(TOOLBOX, "generate_labels_h36m.py"), "--root", root]
        + subset)


def data_options(root, args):
    return ["dataset.root=%s" % os.path.join(root, "images"),
            "dataset.train_labels_path=%s" % os.path.join(root, "h36m_train.pkl"),
            "dataset.val_labels_path=%s" % os.path.join(root, "h36m_validation.pkl"),
            "dataset.num_workers=%d" % args.workers,
            "train.max_steps_per_epoch=%d" % args.max_steps, "train.vis_every_epoch=false"]


def train(config, logdir, name, options, args):
    """train.py with --name (continued or reused when it exists); returns its folder."""
    run([sys.executable, "train.py", "--config", config, "--logdir", logdir, "--name", name,
         "--resume", "auto", "--device", args.device, "--opts"] + options)
    return os.path.join(logdir, name)


def read_json(path):
    with open(path) as f:
        return json.load(f)


def variant_options(variant, backbone_file):
    cache = "train.feature_cache=disk"  # <logdir>/feature_cache, shared by the runs
    return {"a": ["model.backbone.pretrained=%s" % backbone_file, cache],
            "b": ["model.image_features=false"],
            "c": ["model.backbone.pretrained=none", cache],
            "d": ["model.backbone.pretrained=%s" % backbone_file, cache,
                  "dataset.keypoints_2d=%s" % DETECTIONS]}[variant]


def detector_lr_steps(epochs):
    """The recipe's two lr drops (x0.1 each; 170 and 200 of its 210 epochs) at 80% and 90%."""
    return "detector.lr_steps=[%d,%d]" % (max(1, round(0.8 * epochs)),
                                          max(1, round(0.9 * epochs)))


def summary(results):
    """{variant: {'p1_mean', 'p1_std', 'p2_mean', 'p2_std', 'p1', 'p2'}} of per-seed results."""
    table = {}
    for variant, runs in results.items():
        p1 = np.array([r["p1"] for r in runs])
        p2 = np.array([r["p2"] for r in runs])
        table[variant] = {"p1": p1.tolist(), "p2": p2.tolist(),
                          "p1_mean": float(p1.mean()), "p1_std": float(p1.std()),
                          "p2_mean": float(p2.mean()), "p2_std": float(p2.std())}
    return table


def format_table(detector_row, table):
    lines = ["detector (stage 1): val 2D error %.2f px, PCK@%gpx %.1f%%"
             % (detector_row["mean_px"], detector_row["pck_threshold_px"],
                100 * detector_row["pck"]),
             "%-40s %18s %18s" % ("CA-PF variant", "P1 mm", "P2 mm")]
    for key, name in VARIANTS:
        row = table[key]
        lines.append("%-40s %9.1f +- %5.1f %9.1f +- %5.1f"
                     % ("(%s) %s" % (key, name), row["p1_mean"], row["p1_std"], row["p2_mean"],
                        row["p2_std"]))
    return "\n".join(lines)


PROBES = (
    ("2d", "2D joints alone"),
    ("a", "+ trained detector's maps at the joints"),
    ("c", "+ random backbone's maps (seed %d)"),
)


def context_probe(logdir, data, backbone_file, args):
    """What the frozen maps encode (mvn/evaluations/feature_probe.py): a ridge regression from
    the 2D joints (+ a backbone's maps sampled at them) to the 3D joints, fitted on the training
    split, scored on the validation split; the maps are the ones the CA-PF runs cached.
    Returns {probe key: {mean_joint_error_mm, depth_error_mm, ridge_strength, inputs}}."""
    import torch
    from mvn import benchmarks, engine
    from mvn.config import load_config
    from mvn.evaluations import feature_probe
    from mvn.feature_cache import build_feature_cache
    from mvn.recipe import build_training_model
    benchmark = benchmarks.get("human36m")
    device = torch.device(args.device)
    seed = args.seeds[0]
    inputs, targets, sampled_maps = {}, {}, {}
    for key, _ in PROBES:
        config = load_config(os.path.join(REPO, CAPF_CONFIG), data + ["seed=%d" % seed] + (
            variant_options(key, backbone_file) if key != "2d" else []))
        torch.manual_seed(config.seed)  # as train.py builds the model (c's random backbone)
        model = build_training_model(config).to(device) if key != "2d" else None
        for split in ("train", "val"):
            dataset = engine.build_split(benchmark, config, split)
            labels = dataset.labels
            root = benchmark.skeleton.root_joint
            targets[split] = (labels.keypoints_3d - labels.keypoints_3d[:, root:root + 1]) \
                * benchmark.unit_mm                                           # (N, 17, 3) mm
            sampled = None
            if model is not None:
                cache = build_feature_cache(model, dataset, config, device, benchmark.skeleton,
                                            logdir, split)
                maps = [level[:, 0] for level in cache.levels]  # unmirrored, per level
                sampled = feature_probe.sample_at_joints(maps, labels.keypoints_2d_crop)
                sampled_maps[key, split] = sampled
            inputs[key, split] = feature_probe.probe_inputs(labels.keypoints_2d, sampled)
    results = {}
    for key, _ in PROBES:
        results[key] = feature_probe.probe(inputs[key, "train"], targets["train"],
                                           inputs[key, "val"], targets["val"])
        if key != "2d":
            results[key].update(feature_probe.distribution_shift(sampled_maps[key, "train"],
                                                                 sampled_maps[key, "val"]))
    return results


def format_probe(probe, seed):
    lines = ["%-42s %12s %10s %12s %17s" % ("linear probe (ridge, fitted on train)",
                                            "train 3D mm", "val 3D mm", "val depth mm",
                                            "maps > 5 SD tr/val")]
    for key, name in PROBES:
        row = probe[key]
        shift = ("%7.1f%% /%5.1f%%" % (100 * row["train_share_beyond_5_sd"],
                                      100 * row["val_share_beyond_5_sd"])
                 if "val_share_beyond_5_sd" in row else "")
        lines.append("%-42s %12.1f %10.1f %12.1f %17s" % (name % seed if "%" in name else name,
                                                          row["train_mean_joint_error_mm"],
                                                          row["mean_joint_error_mm"],
                                                          row["depth_error_mm"], shift))
    return "\n".join(lines)


def write_outputs(logdir, detector_row, table, seeds, probe=None):
    with open(os.path.join(logdir, "ablation.json"), "w") as f:
        json.dump({"detector": detector_row, "variants": table, "seeds": seeds,
                   "names": dict(VARIANTS), "probe": probe,
                   "probe_names": dict(PROBES)}, f, indent=1)
    with open(os.path.join(logdir, "ablation.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["variant", "name", "p1_mean_mm", "p1_std_mm", "p2_mean_mm", "p2_std_mm"])
        for key, name in VARIANTS:
            row = table[key]
            writer.writerow([key, name, "%.3f" % row["p1_mean"], "%.3f" % row["p1_std"],
                             "%.3f" % row["p2_mean"], "%.3f" % row["p2_std"]])
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axis = plt.subplots(figsize=(7, 4))
    positions = np.arange(len(VARIANTS))
    for offset, metric in ((-0.2, "p1"), (0.2, "p2")):
        axis.bar(positions + offset, [table[k][metric + "_mean"] for k, _ in VARIANTS], 0.4,
                 yerr=[table[k][metric + "_std"] for k, _ in VARIANTS], capsize=3,
                 label=metric.upper())
    axis.set_xticks(positions)
    axis.set_xticklabels(["(%s) %s" % item for item in VARIANTS], fontsize=7)
    axis.set_ylabel("mm (mean +- std over %d seed(s))" % len(seeds))
    axis.legend()
    figure.tight_layout()
    figure.savefig(os.path.join(logdir, "ablation.png"), dpi=100)
    plt.close(figure)


def ablation(args):
    start = time.time()
    logdir = os.path.abspath(args.logdir)
    root = os.path.join(logdir, "data")
    os.makedirs(root, exist_ok=True)
    prepare_data(root, args)
    data = data_options(root, args)
    detector = train(DETECTOR_CONFIG, logdir, "detector", data + [
        "train.n_epochs=%d" % args.detector_epochs, detector_lr_steps(args.detector_epochs)],
        args)
    backbone_file = os.path.join(detector, "checkpoints", "backbone.pth")
    detector_row = dict(read_json(os.path.join(detector, "best_evaluation.json"))["average"],
                        pck_threshold_px=read_json(os.path.join(
                            detector, "best_evaluation.json"))["pck_threshold_px"])
    labels = os.path.join(root, "h36m_validation.pkl")
    from mvn.datasets.label_files import RestrictedUnpickler
    with open(labels, "rb") as f:
        has_detections = "joints_2d_%s" % DETECTIONS in RestrictedUnpickler(f).load()[0]
    if not has_detections:
        run([sys.executable, os.path.join(TOOLBOX, "detect_2d.py"), "--root", root, "--weights",
             backbone_file, "--name", DETECTIONS, "--backbone", "hrnet_tiny", "--device",
             args.device, "--workers", str(args.workers)])
    results = {key: [] for key, _ in VARIANTS}
    for seed in args.seeds:
        for key, _ in VARIANTS:
            folder = train(CAPF_CONFIG, logdir, "capf_%s_seed%d" % (key, seed),
                           data + variant_options(key, backbone_file)
                           + ["seed=%d" % seed, "train.n_epochs=%d" % args.epochs,
                              "train.batch_size=%d" % args.batch_size,
                              "train.volume_net_lr=%g" % args.lr], args)
            average = read_json(os.path.join(folder, "best_evaluation.json"))["average"]
            results[key].append({"seed": seed, "p1": average["p1"], "p2": average["p2"]})
    table = summary(results)
    probe = context_probe(logdir, data, backbone_file, args)
    write_outputs(logdir, detector_row, table, args.seeds, probe)
    print("\n" + format_table(detector_row, table))
    print("\n" + format_probe(probe, args.seeds[0]))
    print("\ntotal time %.1f min (steps reused from an earlier start not counted)"
          % ((time.time() - start) / 60))
    print("written: %s" % ", ".join(os.path.join(logdir, "ablation." + e)
                                      for e in ("json", "csv", "png")))
    return table


def main(argv=None):
    ablation(parse_args(argv))


if __name__ == "__main__":
    main()
