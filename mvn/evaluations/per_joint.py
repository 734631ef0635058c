"""MPJPE and P-MPJPE of each joint, averaged as the benchmark's headline P1 is averaged.

With `groups` (Human3.6M: the action of each frame), a joint's error is the mean over the groups
of the group's mean, as the per-action table averages its actions; so the mean over the joints
of the per-joint MPJPE is the table's P1 (and of P-MPJPE its P2). Without, every frame weighs
the same. Frames with a non-finite prediction or target are left out, as the table leaves them.
"""
import numpy as np
import torch

from mvn.metrics import procrustes_align


def joint_distances_mm(predicted_mm, target_mm):
    """(N, J) Euclidean distance of each joint, and the same after the per-frame Procrustes
    alignment of P2 (mvn.metrics.procrustes_align). Inputs (N, J, 3) mm."""
    predicted = torch.as_tensor(np.asarray(predicted_mm, np.float64))
    target = torch.as_tensor(np.asarray(target_mm, np.float64))
    distances = torch.linalg.vector_norm(predicted - target, dim=-1)          # (N, J)
    aligned = procrustes_align(predicted, target)
    aligned_distances = torch.linalg.vector_norm(aligned - target, dim=-1)    # (N, J)
    return distances.numpy(), aligned_distances.numpy()


def group_mean(values, groups=None):
    """(N, ...) -> (...): the mean of the groups' means (groups (N,) ids), or the plain mean."""
    if groups is None:
        return values.mean(0)
    groups = np.asarray(groups)
    return np.mean([values[groups == g].mean(0) for g in np.unique(groups)], axis=0)


def per_joint_errors(predicted_mm, target_mm, joint_names, groups=None):
    """{'joints': [{'joint', 'mpjpe_mm', 'p_mpjpe_mm'}], 'mean': {...}, 'frames': n} of
    predictions and targets (N, J, 3) in mm; `groups` (N,) as in the module's docstring."""
    predicted_mm = np.asarray(predicted_mm, np.float64)
    target_mm = np.asarray(target_mm, np.float64)
    finite = np.isfinite(predicted_mm).all((1, 2)) & np.isfinite(target_mm).all((1, 2))
    if groups is not None:
        groups = np.asarray(groups)[finite]
    distances, aligned = joint_distances_mm(predicted_mm[finite], target_mm[finite])
    mpjpe_mm = group_mean(distances, groups)          # (J,)
    p_mpjpe_mm = group_mean(aligned, groups)          # (J,)
    rows = [{"joint": name, "mpjpe_mm": float(a), "p_mpjpe_mm": float(b)}
            for name, a, b in zip(joint_names, mpjpe_mm, p_mpjpe_mm)]
    return {"joints": rows, "frames": int(finite.sum()),
            "mean": {"mpjpe_mm": float(mpjpe_mm.mean()), "p_mpjpe_mm": float(p_mpjpe_mm.mean())}}


def format_per_joint(table):
    lines = ["%-14s %9s %9s" % ("joint", "MPJPE", "P-MPJPE")]
    for row in table["joints"]:
        lines.append("%-14s %9.2f %9.2f" % (row["joint"], row["mpjpe_mm"], row["p_mpjpe_mm"]))
    mean = table["mean"]
    lines.append("%-14s %9.2f %9.2f" % ("mean", mean["mpjpe_mm"], mean["p_mpjpe_mm"]))
    return "\n".join(lines)
