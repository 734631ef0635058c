"""Cameras, projection, crops and screen normalisation, shared by the toolbox and training.

Small pure functions over numpy arrays (leading axes broadcast). Conventions (Human3.6M):
world and camera coordinates in millimetres; `R` (3,3) rotates world -> camera and `T` (3,) is the
camera centre in world coordinates, so `X_cam = R @ (X_world - T)`; pixels have x to the right,
y down. Crops are 256 high x 192 wide (docs/fidelity.md, "Crop").
"""
import cv2
import numpy as np

CROP_SHAPE = (256, 192)  # (height, width) of the crop in pixels: the one home of the crop size
# What follows from it: the pose heads' heatmaps (a quarter of the crop: (64, 48)), and the crop's
# half-size (x, y) = (96, 128) by which the model turns crop pixels into sampling-grid coordinates.
HEATMAP_SHAPE = (CROP_SHAPE[0] // 4, CROP_SHAPE[1] // 4)
CROP_HALF_XY = (CROP_SHAPE[1] / 2, CROP_SHAPE[0] / 2)
BOX_UNIT_PX = 200.0     # a label's `scale` is the box size in units of 200 pixels


def world_to_camera(points_world_mm, R, T_mm):
    """(..., 3) world points -> (..., 3) camera coordinates: R @ (X - T)."""
    R = np.asarray(R, dtype=np.float64)                      # (3, 3)
    T_mm = np.asarray(T_mm, dtype=np.float64).reshape(3)     # (3,) camera centre, world mm
    return (np.asarray(points_world_mm) - T_mm) @ R.T


def camera_to_world(points_cam_mm, R, T_mm):
    """(..., 3) camera coordinates -> (..., 3) world points: R^T @ X + T."""
    R = np.asarray(R, dtype=np.float64)
    T_mm = np.asarray(T_mm, dtype=np.float64).reshape(3)
    return np.asarray(points_cam_mm) @ R + T_mm


def project_pinhole(points_cam_mm, f_px, c_px):
    """(..., 3) camera points -> (..., 2) pixels, `x = fx * X / Z + cx` (no distortion).

    Evaluated as (X / Z) * f + c, the reference's order of operations (bit-identical boxes).
    """
    points_cam_mm = np.asarray(points_cam_mm, dtype=np.float64)
    f_px = np.asarray(f_px, dtype=np.float64).reshape(2)
    c_px = np.asarray(c_px, dtype=np.float64).reshape(2)
    return points_cam_mm[..., :2] / points_cam_mm[..., 2:3] * f_px + c_px


def project_to_2d(points_cam_mm, f_px, c_px, k, p):
    """(..., 3) camera points -> (..., 2) pixels with Human3.6M radial + tangential distortion.

    The formula of VideoPose3D's `project_to_2d` (its clamp of X/Z, Y/Z to [-1, 1] included):
    `xy' = xy * (radial + tan) + p_v * r2`, radial = 1 + k1 r2 + k2 r2^2 + k3 r2^3,
    tan = p_v . xy, where p_v = (p2, p1). `p` is given in the calibration table's order (p1, p2),
    the dataset's MATLAB / cameras.h5 order used in `h36m_facts.json`; VideoPose3D's
    `tangential_distortion` lists the same two numbers reversed (it is p_v).
    """
    points_cam_mm = np.asarray(points_cam_mm, dtype=np.float64)
    f_px = np.asarray(f_px, dtype=np.float64).reshape(2)
    c_px = np.asarray(c_px, dtype=np.float64).reshape(2)
    k = np.asarray(k, dtype=np.float64).reshape(3)
    p_v = np.asarray(p, dtype=np.float64).reshape(2)[::-1]   # VideoPose3D order (p2, p1)
    xy = np.clip(points_cam_mm[..., :2] / points_cam_mm[..., 2:3], -1, 1)  # (..., 2)
    r2 = np.sum(xy ** 2, axis=-1, keepdims=True)                           # (..., 1)
    radial = 1 + k[0] * r2 + k[1] * r2 ** 2 + k[2] * r2 ** 3
    tan = np.sum(p_v * xy, axis=-1, keepdims=True)
    xy_distorted = xy * (radial + tan) + p_v * r2
    return f_px * xy_distorted + c_px


def undistort_normalized(uv_px, f_px, c_px, k, p, iterations=8):
    """(..., 2) pixels -> (..., 2) undistorted x/z, y/z: inverts `project_to_2d` (within its
    [-1, 1] clamp) by fixed-point iteration, which converges fast for |k| < 0.3."""
    distorted = (np.asarray(uv_px, dtype=np.float64) - np.reshape(c_px, 2)) / np.reshape(f_px, 2)
    k = np.asarray(k, dtype=np.float64).reshape(3)
    p_v = np.asarray(p, dtype=np.float64).reshape(2)[::-1]   # VideoPose3D order (p2, p1)
    xy = distorted.copy()
    for _ in range(iterations):
        r2 = np.sum(xy ** 2, axis=-1, keepdims=True)
        radial = 1 + k[0] * r2 + k[1] * r2 ** 2 + k[2] * r2 ** 3
        tan = np.sum(p_v * xy, axis=-1, keepdims=True)
        xy = (distorted - p_v * r2) / (radial + tan)
    return xy


def box_from_root(root_cam_mm, f_px, c_px):
    """(..., 3) root joint (camera mm) -> (..., 4) box [x1, y1, x2, y2] in pixels.

    The corners root + (-1000, -900, 0) and root + (1000, 1100, 0) mm, projected with the pinhole
    model: a 2 m wide, 2 m high window around the pelvis, more of it below (the legs).
    """
    root_cam_mm = np.asarray(root_cam_mm, dtype=np.float64)
    top_left = project_pinhole(root_cam_mm + np.array([-1000.0, -900.0, 0.0]), f_px, c_px)
    bottom_right = project_pinhole(root_cam_mm + np.array([1000.0, 1100.0, 0.0]), f_px, c_px)
    return np.concatenate([top_left, bottom_right], axis=-1)


def center_scale_from_box(box_px):
    """(..., 4) boxes -> center (..., 2) pixels and scale (..., 2) = (width, height) / 200."""
    box_px = np.asarray(box_px, dtype=np.float64)
    x1, y1, x2, y2 = box_px[..., 0], box_px[..., 1], box_px[..., 2], box_px[..., 3]
    center_px = np.stack([0.5 * (x1 + x2), 0.5 * (y1 + y2)], axis=-1)
    scale = np.stack([(x2 - x1) / BOX_UNIT_PX, (y2 - y1) / BOX_UNIT_PX], axis=-1)
    return center_px, scale


def _third_point(a, b):
    """The point completing a right angle at b: b + (-d_y, d_x), d = a - b (float32)."""
    d = a - b
    return b + np.array([-d[1], d[0]], dtype=np.float32)


def get_affine_transform(center, scale, output_shape=CROP_SHAPE):
    """2x3 float64 matrix mapping full-frame pixels into the crop (no rotation).

    Source points: `center`, `center + d` with d = (0, -(sw - 1) / 2), sw = scale[0] * 200, and
    the point completing the right angle; destination: the crop centre ((w - 1) / 2, (h - 1) / 2),
    that point + (0, -(w - 1) / 2), and likewise. Only the box width sets the zoom.

    Bit-identical to CA-PF's copy of HRNet's function (docs/fidelity.md, "Crop"): `d` is rounded
    to float32 before it is added to the centre, the inputs keep their own dtype (float64 label
    values stay float64, float32 ones are computed in float32), the points are stored as float32
    and solved with `cv2.getAffineTransform`.
    """
    center = np.asarray(center).reshape(2)                   # dtype kept, as np.array() does
    scale_px = np.asarray(scale).reshape(2) * BOX_UNIT_PX    # (w, h) of the box in pixels
    height, width = output_shape
    source_direction = np.array([0, (scale_px[0] - 1) * -0.5], dtype=np.float32)
    target_direction = np.array([0, (width - 1) * -0.5], dtype=np.float32)
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0, :] = center
    src[1, :] = center + source_direction
    dst[0, :] = [(width - 1) * 0.5, (height - 1) * 0.5]
    dst[1, :] = np.array([(width - 1) * 0.5, (height - 1) * 0.5]) + target_direction
    src[2, :] = _third_point(src[0, :], src[1, :])
    dst[2, :] = _third_point(dst[0, :], dst[1, :])
    return cv2.getAffineTransform(src, dst)


def affine_transform_points(points_px, M):
    """(..., 2) points times the 2x3 matrix M as [x, y, 1] (float64) -> (..., 2)."""
    points_px = np.asarray(points_px, dtype=np.float64)
    M = np.asarray(M, dtype=np.float64)
    x, y = points_px[..., 0], points_px[..., 1]
    return np.stack([M[0, 0] * x + M[0, 1] * y + M[0, 2],
                     M[1, 0] * x + M[1, 1] * y + M[1, 2]], axis=-1)


def crop_to_frame_affines(center, scale, output_shape=CROP_SHAPE):
    """(N, 2) box centres and (N, 2) scales -> (N, 2, 3) float64 matrices mapping crop pixels
    back to full-frame pixels: the inverse of `get_affine_transform` (no rotation, zoom set by
    the box width), in closed form for all N at once. It agrees with inverting the float32
    matrices of `get_affine_transform` to their rounding (~1e-4 px)."""
    center = np.asarray(center, dtype=np.float64).reshape(-1, 2)
    scale_px = np.asarray(scale, dtype=np.float64).reshape(-1, 2)[:, 0] * BOX_UNIT_PX  # (N,)
    height, width = output_shape
    frame_per_crop_px = (scale_px - 1) / (width - 1)    # (N,): the inverse zoom
    affines = np.zeros((len(center), 2, 3))
    affines[:, 0, 0] = affines[:, 1, 1] = frame_per_crop_px
    affines[:, 0, 2] = center[:, 0] - frame_per_crop_px * (width - 1) / 2
    affines[:, 1, 2] = center[:, 1] - frame_per_crop_px * (height - 1) / 2
    return affines


def apply_affines(points_px, affines):
    """(N, ..., 2) points and (N, 2, 3) matrices, one per row -> (N, ..., 2) float64."""
    points_px = np.asarray(points_px, dtype=np.float64)
    affines = np.asarray(affines, dtype=np.float64)
    shape = (len(affines),) + (1,) * (points_px.ndim - 2) + (2, 3)
    affines = affines.reshape(shape)
    x, y = points_px[..., 0], points_px[..., 1]
    return np.stack([affines[..., 0, 0] * x + affines[..., 0, 1] * y + affines[..., 0, 2],
                     affines[..., 1, 0] * x + affines[..., 1, 1] * y + affines[..., 1, 2]], -1)


def invert_affines(affines):
    """(N, 2, 3) matrices -> (N, 2, 3) float64 matrices of the inverse maps."""
    affines = np.asarray(affines, dtype=np.float64)
    inverse = np.linalg.inv(affines[:, :, :2])                        # (N, 2, 2)
    return np.concatenate([inverse, -inverse @ affines[:, :, 2:]], -1)


def crop_image(image, center, scale, output_shape=CROP_SHAPE):
    """(H, W, C) full frame -> (256, 192, C) crop: bilinear warp, zeros outside the frame."""
    M = get_affine_transform(center, scale, output_shape)
    height, width = output_shape
    return cv2.warpAffine(image, M, (int(width), int(height)), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def normalize_screen_coordinates(X_px, w, h):
    """(..., 2) pixels -> [-1, 1] along x, the aspect ratio kept: X / w * 2 - [1, h / w].

    Like VideoPose3D: float32 input is scaled in float32, then the offset (float64) promotes it.
    """
    assert X_px.shape[-1] == 2
    return X_px / w * 2 - np.array([1, h / w])


def image_coordinates(X_normalized, w, h):
    """Inverse of `normalize_screen_coordinates`: (..., 2) -> pixels."""
    assert X_normalized.shape[-1] == 2
    return (X_normalized + np.array([1, h / w])) * w / 2
