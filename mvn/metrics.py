"""3D pose errors (VideoPose3D conventions) and the per-action table of the protocol
(docs/fidelity.md, "Evaluation").

Every metric accepts torch tensors or NumPy arrays of shape (..., J, 3) and returns the same kind
(a 0-d tensor, or a Python float for NumPy input). `reduce=False` gives one value per frame.
"""
import csv
import json
import logging
import os

import numpy as np
import torch

from mvn.h36m import ACTION_NAMES, ACTIONS

logger = logging.getLogger(__name__)


def _check_shapes(name, predicted, target):
    """Both (..., J, 3) of one shape: a mismatch is an error, never a broadcast."""
    if tuple(predicted.shape) != tuple(target.shape) or len(predicted.shape) < 2 \
            or predicted.shape[-1] != 3:
        raise ValueError("%s: predicted %s and target %s must both be (..., joints, 3) of the "
                         "same shape" % (name, tuple(predicted.shape), tuple(target.shape)))


def _as_tensors(*arrays):
    is_numpy = isinstance(arrays[0], np.ndarray)
    if is_numpy:
        arrays = tuple(torch.from_numpy(np.asarray(a, dtype=np.float64)) for a in arrays)
    return is_numpy, arrays


def _result(value, is_numpy, reduce):
    if is_numpy:
        return float(value) if reduce else value.numpy()
    return value


def mpjpe(predicted, target, reduce=True):
    """Mean per-joint position error: mean Euclidean distance (P1 when in mm)."""
    _check_shapes("mpjpe", predicted, target)
    is_numpy, (predicted, target) = _as_tensors(predicted, target)
    per_joint = torch.linalg.vector_norm(predicted - target, dim=-1)  # (..., J)
    value = per_joint.mean() if reduce else per_joint.mean(-1)
    return _result(value, is_numpy, reduce)


def n_mpjpe(predicted, target, reduce=True):
    """MPJPE after scaling the prediction to the target in the least-squares sense. A frame
    predicted all at the origin (no scale to fit) keeps scale 0 instead of dividing by zero,
    as P-MPJPE guards its degenerate frames."""
    _check_shapes("n_mpjpe", predicted, target)
    is_numpy, (predicted, target) = _as_tensors(predicted, target)
    norm_predicted = (predicted ** 2).sum(-1, keepdim=True).mean(-2, keepdim=True)
    norm_target = (target * predicted).sum(-1, keepdim=True).mean(-2, keepdim=True)
    safe = torch.where(norm_predicted > 0, norm_predicted, torch.ones_like(norm_predicted))
    scale = torch.where(norm_predicted > 0, norm_target / safe, torch.zeros_like(norm_target))
    per_joint = torch.linalg.vector_norm(scale * predicted - target, dim=-1)
    value = per_joint.mean() if reduce else per_joint.mean(-1)
    return _result(value, is_numpy, reduce)


def procrustes_align(predicted, target):
    """(N, J, 3) predictions aligned per frame to the targets by rotation (no reflection),
    uniform scale and translation. Degenerate frames (all joints at one point) do not divide
    by zero: their scale becomes 0 and they are aligned to the target centroid. A frame with a
    non-finite value comes out all NaN (the others are unaffected; nothing raises)."""
    predicted = predicted.double()
    target = target.double()
    finite = (torch.isfinite(predicted).flatten(1).all(1)
              & torch.isfinite(target).flatten(1).all(1))  # (N,)
    if not bool(finite.all()):
        aligned = torch.full_like(predicted, float("nan"))
        if bool(finite.any()):
            aligned[finite] = procrustes_align(predicted[finite], target[finite])
        return aligned
    mu_target = target.mean(1, keepdim=True)  # (N, 1, 3)
    mu_predicted = predicted.mean(1, keepdim=True)
    x0 = target - mu_target
    y0 = predicted - mu_predicted
    norm_x = torch.linalg.vector_norm(x0, dim=(1, 2), keepdim=True)  # (N, 1, 1)
    norm_y = torch.linalg.vector_norm(y0, dim=(1, 2), keepdim=True)
    norm_x_safe = torch.where(norm_x > 0, norm_x, torch.ones_like(norm_x))
    norm_y_safe = torch.where(norm_y > 0, norm_y, torch.ones_like(norm_y))
    x0 = x0 / norm_x_safe
    y0 = y0 / norm_y_safe

    h = x0.transpose(1, 2) @ y0  # (N, 3, 3)
    u, s, vt = torch.linalg.svd(h)
    v = vt.transpose(1, 2)
    r = v @ u.transpose(1, 2)
    # No reflections: flip the last singular direction where det(R) < 0.
    sign = torch.sign(torch.linalg.det(r))  # (N,)
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    v = torch.cat([v[:, :, :-1], v[:, :, -1:] * sign[:, None, None]], 2)
    s = torch.cat([s[:, :-1], s[:, -1:] * sign[:, None]], 1)
    r = v @ u.transpose(1, 2)

    trace = s.sum(1)[:, None, None]  # (N, 1, 1)
    scale = trace * norm_x / norm_y_safe
    translation = mu_target - scale * (mu_predicted @ r)
    return scale * (predicted @ r) + translation


def p_mpjpe(predicted, target, reduce=True):
    """MPJPE after per-frame similarity alignment (P2). Inputs (N, J, 3) or (N, 1, J, 3)."""
    _check_shapes("p_mpjpe", predicted, target)
    is_numpy, (predicted, target) = _as_tensors(predicted, target)
    shape = target.shape
    predicted = predicted.reshape(-1, shape[-2], 3)
    target = target.reshape(-1, shape[-2], 3)
    aligned = procrustes_align(predicted, target)
    per_frame = torch.linalg.vector_norm(aligned - target.double(), dim=-1).mean(-1)
    value = per_frame.mean() if reduce else per_frame.reshape(shape[:-2])
    if not is_numpy:
        value = value.to(target.dtype)
    return _result(value, is_numpy, reduce)


def mpjve(predicted, target, reduce=True):
    """Mean per-joint velocity error: first differences along dim 0 (frame order)."""
    _check_shapes("mpjve", predicted, target)
    is_numpy, (predicted, target) = _as_tensors(predicted, target)
    velocity_error = torch.diff(predicted, dim=0) - torch.diff(target, dim=0)
    per_joint = torch.linalg.vector_norm(velocity_error, dim=-1)
    value = per_joint.mean() if reduce else per_joint.mean(-1)
    return _result(value, is_numpy, reduce)


def per_action_errors(predicted_m, target_m, action_ids, subaction_ids):
    """The protocol's per-action table from root-relative poses in metres (docs/fidelity.md,
    "Evaluation").

    predicted_m, target_m: (N, 17, 3) (or (N, 1, 17, 3)) in label-list order; action_ids (N,)
    ints 2..16 and subaction_ids (N,) ints 1..2 (the trial). Per trial (action, subaction), in
    label-list order: P1 and P2 are per-frame means, MPJVE the mean velocity error of the trial's
    frames as they stand in the list (differences cross camera and subject boundaries, as the
    released evaluation's do); an action's value is the frame-weighted mean of its trials.
    Returns {'actions': {name: {'p1', 'p2', 'mpjve', 'frames'}}, 'average': {...},
    'missing': [names], 'non_finite_frames': [indices]} in millimetres. Averages are the plain
    mean over the actions present; an action with no frames is reported missing and left out
    (the released code prints NaN); a frame with a non-finite prediction or target is reported
    (warning and 'non_finite_frames') and left out instead of crashing the alignment.
    """
    action_ids = np.asarray(action_ids)
    subaction_ids = np.asarray(subaction_ids)
    n = len(action_ids)
    if subaction_ids.shape != (n,):
        raise ValueError("per_action_errors: %d action ids but subaction ids of shape %s"
                         % (n, subaction_ids.shape))
    predicted = np.asarray(predicted_m, dtype=np.float64).reshape(n, -1, 3) * 1000
    target = np.asarray(target_m, dtype=np.float64).reshape(n, -1, 3) * 1000
    finite = np.isfinite(predicted).all((1, 2)) & np.isfinite(target).all((1, 2))  # (N,)
    non_finite = np.flatnonzero(~finite)
    if len(non_finite):  # e.g. a diverged model: reported, and left out of every number
        logger.warning("%d of %d evaluation frames have non-finite predictions or targets and "
                       "are left out of the table: frames %s", len(non_finite), n,
                       ", ".join(str(i) for i in non_finite[:10])
                       + (", ..." if len(non_finite) > 10 else ""))
        keep = np.flatnonzero(finite)
        predicted, target = predicted[keep], target[keep]
        action_ids, subaction_ids = action_ids[keep], subaction_ids[keep]
    p1_frames = mpjpe(predicted, target, reduce=False)  # (N,)
    p2_frames = p_mpjpe(predicted, target, reduce=False)  # (N,)

    actions, missing = {}, []
    for action in ACTIONS:
        name = ACTION_NAMES[action]
        index = np.flatnonzero(action_ids == action)  # label-list order
        if len(index) == 0:
            missing.append(name)
            continue
        velocity_sum, velocity_frames = 0.0, 0
        for trial in np.unique(subaction_ids[index]):
            rows = index[subaction_ids[index] == trial]  # this trial's frames, in list order
            if len(rows) > 1:  # one frame has no velocity (the released code would give NaN)
                velocity_sum += len(rows) * mpjve(predicted[rows], target[rows])
                velocity_frames += len(rows)
        actions[name] = {"p1": float(p1_frames[index].mean()),
                         "p2": float(p2_frames[index].mean()),
                         "mpjve": velocity_sum / velocity_frames if velocity_frames else float("nan"),
                         "frames": int(len(index))}
    if missing:
        logger.warning("no evaluation frames for %d action(s): %s; they are left out of the "
                       "averages", len(missing), ", ".join(missing))
    average = {key: float(np.nanmean([row[key] for row in actions.values()])) if actions
               else float("nan") for key in ("p1", "p2", "mpjve")}
    average["frames"] = int(sum(row["frames"] for row in actions.values()))
    return {"actions": actions, "average": average, "missing": missing,
            "non_finite_frames": [int(i) for i in non_finite]}


def format_table(errors):
    """The per-action table as aligned text (mm)."""
    lines = ["%-16s %8s %8s %8s %8s" % ("action", "P1", "P2", "MPJVE", "frames")]
    for name, row in errors["actions"].items():
        lines.append("%-16s %8.2f %8.2f %8.2f %8d"
                     % (name, row["p1"], row["p2"], row["mpjve"], row["frames"]))
    for name in errors["missing"]:
        lines.append("%-16s %8s %8s %8s %8d" % (name, "-", "-", "-", 0))
    avg = errors["average"]
    lines.append("%-16s %8.2f %8.2f %8.2f %8d"
                 % ("average", avg["p1"], avg["p2"], avg["mpjve"], avg["frames"]))
    return "\n".join(lines)


def save_table(errors, folder, name="evaluation"):
    """The per-action table as `folder/<name>.json` and `.csv` (mm); returns the two paths."""
    json_path = os.path.join(folder, name + ".json")
    csv_path = os.path.join(folder, name + ".csv")
    with open(json_path, "w") as f:
        json.dump(errors, f, indent=2)
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["action", "p1_mm", "p2_mm", "mpjve_mm", "frames"])
        for action, row in errors["actions"].items():
            writer.writerow([action, "%.4f" % row["p1"], "%.4f" % row["p2"],
                             "%.4f" % row["mpjve"], row["frames"]])
        for action in errors["missing"]:
            writer.writerow([action, "", "", "", 0])
        average = errors["average"]
        writer.writerow(["average", "%.4f" % average["p1"], "%.4f" % average["p2"],
                         "%.4f" % average["mpjve"], average["frames"]])
    return json_path, csv_path
