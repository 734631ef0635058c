"""What a frozen backbone's maps encode about 3D: a linear probe (an addition; ablation.py).

For every frame, each level's map is sampled at the 2D joints (bilinear, at the crop-pixel joints
as the model samples them), giving one vector per joint; a ridge regression from [the 2D joints,
those vectors] to the root-relative 3D joints is fitted on the training split and scored on the
validation split, beside the same regression from the 2D joints alone. If a backbone's maps
carry 3D information that the 2D joints lack (the paper's claim for a trained detector's
features), its probe beats the 2D-only one; a random backbone's maps show what mere image
statistics give. The ridge strength is chosen per input by 5-fold cross-validation on the
training split; everything is float64 NumPy.
"""
import numpy as np
import torch
import torch.nn.functional as F

from mvn.geometry import CROP_HALF_XY

RIDGE_STRENGTHS = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4)
FOLDS = 5


def sample_at_joints(maps, keypoints_2d_crop):
    """maps [(N, C_l, H_l, W_l)] per level, joints (N, J, 2) crop px -> (N, J, sum C_l), each map
    read bilinearly at the joints (grid x / 96 - 1, y / 128 - 1, as the model's sampling)."""
    joints = torch.as_tensor(np.asarray(keypoints_2d_crop), dtype=torch.float32)
    grid = (joints / joints.new_tensor(CROP_HALF_XY) - 1)[:, :, None]       # (N, J, 1, 2)
    sampled = [F.grid_sample(torch.from_numpy(np.array(m, dtype=np.float32)), grid,
                             align_corners=False)[..., 0]                  # (N, C_l, J)
               for m in maps]
    return torch.cat(sampled, 1).transpose(1, 2).double().numpy()          # (N, J, sum C_l)


def ridge_fit(inputs, targets, strength):
    """Weights (D + 1, T) of a ridge regression with an unpenalised intercept; inputs
    standardised on the fitting set."""
    mean, scale = inputs.mean(0), inputs.std(0) + 1e-8
    x = (inputs - mean) / scale
    y_mean = targets.mean(0)
    gram = x.T @ x + strength * len(x) * np.eye(x.shape[1])
    weights = np.linalg.solve(gram, x.T @ (targets - y_mean))           # (D, T)
    return mean, scale, weights, y_mean


def ridge_predict(model, inputs):
    mean, scale, weights, y_mean = model
    return (inputs - mean) / scale @ weights + y_mean


def mean_joint_error(predicted, target, joints):
    """Mean Euclidean error over joints of (N, J * 3) flattened poses (their unit)."""
    difference = (predicted - target).reshape(len(target), joints, 3)
    return float(np.linalg.norm(difference, axis=-1).mean())


def choose_strength(inputs, targets, joints, folds=FOLDS, strengths=RIDGE_STRENGTHS):
    """The ridge strength of lowest mean joint error over `folds` contiguous folds."""
    bounds = np.linspace(0, len(inputs), folds + 1).astype(int)
    errors = []
    for strength in strengths:
        fold_errors = []
        for k in range(folds):
            held = np.zeros(len(inputs), bool)
            held[bounds[k]:bounds[k + 1]] = True
            model = ridge_fit(inputs[~held], targets[~held], strength)
            fold_errors.append(mean_joint_error(ridge_predict(model, inputs[held]),
                                                targets[held], joints))
        errors.append(np.mean(fold_errors))
    return strengths[int(np.argmin(errors))]


def probe(train_inputs, train_targets_mm, val_inputs, val_targets_mm):
    """Validation mean joint error (mm) and depth error (mm) of the ridge probe fitted on the
    training split, and its error on the training split itself (the gap: what does not carry
    over to the validation subject). Inputs (N, D); targets (N, J, 3) root-relative mm."""
    joints = train_targets_mm.shape[1]
    y_train = train_targets_mm.reshape(len(train_targets_mm), -1)
    y_val = val_targets_mm.reshape(len(val_targets_mm), -1)
    strength = choose_strength(train_inputs, y_train, joints)
    model = ridge_fit(train_inputs, y_train, strength)
    predicted = ridge_predict(model, val_inputs)
    depth = np.abs(predicted.reshape(-1, joints, 3)[..., 2] - val_targets_mm[..., 2]).mean()
    return {"mean_joint_error_mm": mean_joint_error(predicted, y_val, joints),
            "depth_error_mm": float(depth), "ridge_strength": strength,
            "train_mean_joint_error_mm": mean_joint_error(ridge_predict(model, train_inputs),
                                                          y_train, joints),
            "inputs": int(train_inputs.shape[1])}


def distribution_shift(train_sampled, val_sampled, far=5.0):
    """How far the validation frames' sampled maps lie from the training frames' (N, J, C): each
    value as a z-score of its (joint, channel) over the training split; the share of values
    beyond `far` training standard deviations, on each split."""
    train = train_sampled.reshape(len(train_sampled), -1)
    val = val_sampled.reshape(len(val_sampled), -1)
    mean, scale = train.mean(0), train.std(0) + 1e-8
    return {"train_share_beyond_%g_sd" % far: float((np.abs(train - mean) / scale > far).mean()),
            "val_share_beyond_%g_sd" % far: float((np.abs(val - mean) / scale > far).mean())}


def probe_inputs(keypoints_2d, sampled=None):
    """(N, J * 2) screen-normalised 2D joints, followed by (N, J * C) sampled maps if given."""
    parts = [np.asarray(keypoints_2d, np.float64).reshape(len(keypoints_2d), -1)]
    if sampled is not None:
        parts.append(sampled.reshape(len(sampled), -1))
    return np.concatenate(parts, 1)
