"""Run the evaluations the config's `evaluation` section enables and write their results.

Called by mvn.engine.run_evaluation on every process (the noise sweep predicts the whole split
again, sharded like the plain evaluation, so every process takes part); files are written and
tables printed by the first process only. Per evaluation, in the evaluation folder:
<name>.json (everything), <name>.csv (the table) and, for the sweep and the per-joint errors,
<name>.png.
"""
import csv
import json
import logging
import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mvn.errors import CAPFError
from mvn.evaluations.cost import format_cost, model_cost
from mvn.evaluations.hard_frames import format_hard_frames, hard_frame_scores, input_2d_error_px
from mvn.evaluations.noise import noise_function
from mvn.evaluations.per_joint import format_per_joint, per_joint_errors
from mvn.metrics import p_mpjpe

logger = logging.getLogger(__name__)


def enabled(config):
    """The names of the evaluations `config.evaluation` turns on, in the order they run."""
    e = config.evaluation
    return [name for name, on in (("per_joint", e.per_joint), ("hard_frames", e.hard_frames),
                                  ("noise_sweep", e.noise_sweep), ("cost", e.cost)) if on]


def check_benchmark(benchmark, config):
    """A CAPFError before any work if the benchmark lacks what an enabled evaluation (or
    train.noise_2d_px) reads."""
    needs = {"evaluation.noise_sweep": ("frame_size_px", "crop_affine"),
             "train.noise_2d_px": ("frame_size_px", "crop_affine"),
             "evaluation.hard_frames": ("frame_size_px", "ground_truth_2d_px")}
    keys = ["evaluation." + name for name in enabled(config)]
    if config.train.noise_2d_px > 0:
        keys.append("train.noise_2d_px")
    for key in keys:
        missing = [field for field in needs.get(key, ()) if getattr(benchmark, field) is None]
        if missing:
            raise CAPFError("%s: the %s benchmark gives no %s (mvn/benchmark.py); turn it off"
                            % (key, benchmark.name, ", ".join(missing)))


# ----------------------------------------------------------------------------------------------
# Each evaluation: its result (a JSON-able dict), its table rows, its text

def scores(evaluation, benchmark):
    """{p1_mm, p2_mm, frames, and the benchmark's extra scores} of an Evaluation."""
    row = {"p1_mm": float(evaluation.p1_mm), "p2_mm": float(evaluation.p2_mm),
           "frames": int(evaluation.frames)}
    if benchmark.extra_scores is not None:
        row.update({k: float(v) for k, v in benchmark.extra_scores(evaluation).items()})
    return row


def noise_sweep(evaluate_with, plain_evaluation, benchmark, dataset, config, progress=None):
    """{'rows': [{'sigma_px', p1_mm, p2_mm, ...}], 'seed'}: the evaluation under each sigma of
    evaluation.noise_sigmas_px (sigma 0: the plain evaluation itself)."""
    rows = []
    for sigma in config.evaluation.noise_sigmas_px:
        if sigma == 0:
            evaluation = plain_evaluation  # noisy_batch returns sigma 0 batches unchanged
        else:
            evaluation = evaluate_with(noise_function(benchmark, dataset, sigma,
                                                      config.evaluation.noise_seed))
        rows.append(dict(sigma_px=float(sigma), **scores(evaluation, benchmark)))
        if progress is not None:
            progress("noise sigma %.2f px: P1 %.2f mm, P2 %.2f mm"
                     % (sigma, evaluation.p1_mm, evaluation.p2_mm))
    return {"seed": config.evaluation.noise_seed, "rows": rows,
            "noise": "zero-mean Gaussian, per coordinate, full-frame pixels, on both 2D inputs"}


def frame_p2_mm(evaluation, targets, benchmark):
    """(N,) P-MPJPE of each scored frame, mm."""
    unit = benchmark.unit_mm
    return p_mpjpe(np.asarray(evaluation.predictions, np.float64) * unit,
                   np.asarray(targets[:len(evaluation.predictions)], np.float64) * unit,
                   reduce=False)


def input_2d_px(benchmark, dataset, indices):
    """(B, J, 2) the samples' 2D input joints in full-frame pixels (the inverse of the screen
    normalisation, mvn.geometry.image_coordinates, with each sample's frame size)."""
    size = benchmark.frame_size_px(dataset, indices)                  # (B, 2)
    width, height = size[:, 0, None, None], size[:, 1, None, None]    # (B, 1, 1)
    screen = dataset.labels.keypoints_2d[indices].astype(np.float64)  # (B, J, 2)
    offset = np.concatenate([np.ones_like(width), height / width], -1)  # (B, 1, 2)
    return (screen + offset) * width / 2


def hard_frames(evaluation, targets, benchmark, dataset, config):
    n = len(evaluation.predictions)
    indices = np.arange(n)
    error_px = input_2d_error_px(input_2d_px(benchmark, dataset, indices),
                                 benchmark.ground_truth_2d_px(dataset, indices))
    return hard_frame_scores(error_px, evaluation.frame_errors_mm,
                             frame_p2_mm(evaluation, targets, benchmark),
                             config.evaluation.hard_frame_threshold_px)


def per_joint(evaluation, targets, benchmark, dataset):
    n = len(evaluation.predictions)
    groups = (benchmark.averaging_groups(dataset)[:n]
              if benchmark.averaging_groups is not None else None)
    unit = benchmark.unit_mm
    return per_joint_errors(np.asarray(evaluation.predictions, np.float64) * unit,
                            np.asarray(targets[:n], np.float64) * unit,
                            benchmark.skeleton.joint_names, groups)


# ----------------------------------------------------------------------------------------------
# Files

def write_json(result, folder, name):
    path = os.path.join(folder, name + ".json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    return path


def write_csv(rows, folder, name):
    """rows: a list of dicts with the same keys (the header)."""
    path = os.path.join(folder, name + ".csv")
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def flatten(result, prefix=""):
    """A nested dict as one row {'a.b': value}."""
    row = {}
    for key, value in result.items():
        if isinstance(value, dict):
            row.update(flatten(value, prefix + key + "."))
        else:
            row[prefix + key] = value
    return row


def save_figure(figure, path):
    FigureCanvasAgg(figure).print_png(path)
    return path


def plot_noise_sweep(sweep, path):
    """MPJPE (P1, P2) against the noise sigma."""
    sigmas = [row["sigma_px"] for row in sweep["rows"]]
    figure = Figure(figsize=(5, 3.5), dpi=100)
    axes = figure.add_subplot(1, 1, 1)
    axes.plot(sigmas, [row["p1_mm"] for row in sweep["rows"]], "o-", label="P1 (MPJPE)")
    axes.plot(sigmas, [row["p2_mm"] for row in sweep["rows"]], "s-", label="P2 (P-MPJPE)")
    axes.set_xlabel("2D input noise sigma (full-frame px)")
    axes.set_ylabel("error (mm)")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    return save_figure(figure, path)


def plot_per_joint(table, path):
    """Bars of MPJPE and P-MPJPE per joint."""
    names = [row["joint"] for row in table["joints"]]
    x = np.arange(len(names))
    figure = Figure(figsize=(8, 3.5), dpi=100)
    axes = figure.add_subplot(1, 1, 1)
    axes.bar(x - 0.2, [row["mpjpe_mm"] for row in table["joints"]], 0.4, label="MPJPE")
    axes.bar(x + 0.2, [row["p_mpjpe_mm"] for row in table["joints"]], 0.4, label="P-MPJPE")
    axes.set_xticks(x)
    axes.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
    axes.set_ylabel("error (mm)")
    axes.legend()
    figure.tight_layout()
    return save_figure(figure, path)


def format_sweep(sweep):
    keys = [k for k in sweep["rows"][0] if k not in ("sigma_px", "frames")]
    lines = ["%10s" % "sigma_px" + "".join(" %10s" % k for k in keys)]
    for row in sweep["rows"]:
        lines.append("%10.2f" % row["sigma_px"] + "".join(" %10.2f" % row[k] for k in keys))
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# All of them

def run_evaluations(model, dataset, config, processes, folder, evaluation, targets, benchmark,
                    evaluate_with):
    """The evaluations enabled in config.evaluation, after the plain `evaluation` (and its
    `targets`) of `dataset`. `evaluate_with(perturb)` evaluates the model again with each batch
    perturbed (mvn.engine.evaluate). Returns {name: result}; files by the main process."""
    names = enabled(config)
    results = {}
    if not names:
        return results
    main = processes.is_main

    def say(text):
        if main:
            logger.info("%s", text)

    if "per_joint" in names:
        table = per_joint(evaluation, targets, benchmark, dataset)
        results["per_joint"] = table
        say("per-joint errors (mm, averaged as P1 is):\n" + format_per_joint(table))
        if main:
            write_json(table, folder, "per_joint")
            write_csv(table["joints"], folder, "per_joint")
            plot_per_joint(table, os.path.join(folder, "per_joint.png"))
    if "hard_frames" in names:
        result = hard_frames(evaluation, targets, benchmark, dataset, config)
        results["hard_frames"] = result
        say(format_hard_frames(result))
        if main:
            write_json(result, folder, "hard_frames")
            write_csv([flatten(result)], folder, "hard_frames")
    if "noise_sweep" in names:
        sweep = noise_sweep(evaluate_with, evaluation, benchmark, dataset, config, progress=say)
        results["noise_sweep"] = sweep
        say("2D-noise sweep (seed %d):\n%s" % (sweep["seed"], format_sweep(sweep)))
        if main:
            write_json(sweep, folder, "noise_sweep")
            write_csv(sweep["rows"], folder, "noise_sweep")
            plot_noise_sweep(sweep, os.path.join(folder, "noise_sweep.png"))
    if "cost" in names:
        raw = getattr(model, "module", model)
        cost = model_cost(raw, config, processes.device, benchmark.skeleton, measure=main)
        results["cost"] = cost
        say("cost:\n" + format_cost(cost))
        if main:
            write_json(cost, folder, "cost")
            write_csv([flatten(cost)], folder, "cost")
    return results


def log_epoch(writer, config, evaluation, targets, benchmark, dataset, epoch):
    """During training: the enabled evaluations that need no new predictions (per joint, hard
    frames) of the epoch's validation, as TensorBoard scalars. The noise sweep (a full
    evaluation per sigma) and the cost run with --eval only."""
    if config.evaluation.per_joint:
        table = per_joint(evaluation, targets, benchmark, dataset)
        for row in table["joints"]:
            writer.add_scalar("val_per_joint_mpjpe_mm/" + row["joint"], row["mpjpe_mm"], epoch)
            writer.add_scalar("val_per_joint_p_mpjpe_mm/" + row["joint"], row["p_mpjpe_mm"],
                              epoch)
    if config.evaluation.hard_frames:
        result = hard_frames(evaluation, targets, benchmark, dataset, config)
        writer.add_scalar("val_hard_frames/share", result["share"], epoch)
        writer.add_scalar("val_hard_frames/p1_mm", result["hard"]["p1_mm"], epoch)
        writer.add_scalar("val_hard_frames/p2_mm", result["hard"]["p2_mm"], epoch)
