"""3D pose errors (VideoPose3D conventions), for any dataset. (Each benchmark's tables are in its
own package: mvn.human36m.protocol, mvn.mpi_inf_3dhp.metrics.)

Every metric accepts torch tensors or NumPy arrays of shape (..., J, 3) and returns the same kind
(a 0-d tensor, or a Python float for NumPy input). `reduce=False` gives one value per frame.
"""
import numpy as np
import torch


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
