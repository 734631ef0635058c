"""Pictures of poses: a 2D skeleton over an image, 3D predictions beside the ground truth.

Everything is drawn off screen (OpenCV for 2D, matplotlib's Agg canvas for 3D, no pyplot state)
and returned as uint8 arrays, ready for `cv2.imwrite` (BGR) or TensorBoard (`add_image(...,
dataformats='HWC')`, RGB). Left joints are blue, right joints orange, the spine and head green,
so a mirrored prediction is visible at a glance.

Every function that draws joints takes the benchmark's `skeleton` (mvn.skeleton.Skeleton: its
tree, root and left/right joints). 3D poses are in the camera frame (x right, y down, z forward,
metres). They are plotted as
(x, z, -y), so the person stands upright with depth going into the picture; `plot_coordinates`
is that mapping, and `pose_figure` returns the figure so tests can read the plotted lines back.
"""
import os

import cv2
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

COLOR_LEFT_RGB = (0, 114, 189)     # blue
COLOR_RIGHT_RGB = (230, 100, 20)   # orange
COLOR_CENTER_RGB = (60, 160, 60)   # green: pelvis, spine, thorax, neck, head
COLOR_TARGET_RGB = (40, 40, 40)    # ground truth, dashed

# Fixed 3D viewpoints (matplotlib elevation, azimuth in degrees): from (just above) the camera,
# and from the camera's right (+x), where depth increases from left to right.
VIEWS = (("camera view", 10.0, -90.0), ("side view", 10.0, 0.0))
MIN_RADIUS_M = 1.0  # half-size of the plotted cube: poses of a person fit, frames stay comparable


def bones(skeleton):
    """(J - 1, 2) int: (joint, its parent) for every joint but the root."""
    return np.array([(joint, parent) for joint, parent in enumerate(skeleton.parents)
                     if parent >= 0])


def joint_colors_rgb(skeleton):
    """(J, 3) uint8: the colour of every joint (and of the bone from it to its parent)."""
    colors = np.tile(np.array(COLOR_CENTER_RGB, dtype=np.uint8), (skeleton.num_joints, 1))
    colors[list(skeleton.joints_left)] = COLOR_LEFT_RGB
    colors[list(skeleton.joints_right)] = COLOR_RIGHT_RGB
    return colors


def _as_joints(array, dims, skeleton):
    """Any (..., J, dims) array with singleton leading axes (e.g. (1, 17, 3)) -> (J, dims)."""
    array = np.asarray(array, dtype=np.float64)
    return array.reshape(skeleton.num_joints, dims)


# --------------------------------------------------------------------------------------------- 2D

def draw_skeleton_2d(image_bgr, keypoints_px, thickness=None, *, skeleton):
    """A copy of `image_bgr` (H, W, 3) uint8 with the joints (J, 2) pixels drawn on it.

    Bones are lines coloured by their child joint, joints are filled discs (drawn last, so the
    pixel under every joint has that joint's colour). Sub-pixel positions are kept (cv2 `shift`);
    non-finite joints and their bones are skipped."""
    image = np.array(image_bgr, dtype=np.uint8, copy=True)
    keypoints_px = _as_joints(keypoints_px, 2, skeleton)
    if thickness is None:  # 2 px on a 256x192 crop, ~4 px on a 1000x1000 frame
        thickness = max(2, int(round(max(image.shape[:2]) / 250)))
    shift = 4  # 4 fractional bits
    points = np.round(keypoints_px * (1 << shift))
    finite = np.isfinite(points).all(axis=1)
    points = np.where(finite[:, None], points, 0).astype(np.int64)
    colors_bgr = joint_colors_rgb(skeleton)[:, ::-1]
    for joint, parent in bones(skeleton):
        if finite[joint] and finite[parent]:
            cv2.line(image, tuple(map(int, points[joint])), tuple(map(int, points[parent])),
                     tuple(map(int, colors_bgr[joint])), thickness, cv2.LINE_AA, shift)
    for joint in np.flatnonzero(finite):
        cv2.circle(image, tuple(map(int, points[joint])), (thickness + 1) << shift,
                   tuple(map(int, colors_bgr[joint])), -1, cv2.LINE_AA, shift)
    return image


# --------------------------------------------------------------------------------------------- 3D

def plot_coordinates(joints_cam):
    """(..., 3) camera frame (x right, y down, z forward) -> (..., 3) plotted (x, z, -y).

    The plot's vertical axis is -y, so the person stands upright."""
    joints_cam = np.asarray(joints_cam, dtype=np.float64)
    return np.stack([joints_cam[..., 0], joints_cam[..., 2], -joints_cam[..., 1]], axis=-1)


def _view_box(poses, reference, root_joint, tall=1.0):
    """Centre (3,) and half-ranges (3,) of the equal-scale box holding `poses` (plotted
    coordinates, the last one vertical), centred on the root of `reference` (J, 3). The
    vertical half-range is `tall` times the horizontal ones (a view `tall` times as high as
    wide); a wide view's box is a cube of half-size at least MIN_RADIUS_M."""
    root = reference[root_joint]
    center = root if np.isfinite(root).all() else np.zeros(3)
    deviations = np.abs(np.concatenate(poses) - center)  # (N, 3)
    finite = np.isfinite(deviations)
    horizontal = np.max(deviations[:, :2][finite[:, :2]], initial=0.0)
    vertical = np.max(deviations[:, 2][finite[:, 2]], initial=0.0)
    half = max(MIN_RADIUS_M / tall, horizontal * 1.05, vertical * 1.05 / tall)
    return center, (half, half, half * tall)


def pose_figure(prediction, target=None, title=None, size_px=(512, 256), dpi=100, *, skeleton):
    """A matplotlib Figure (Agg canvas) with the 3D pose from each of `VIEWS`, side by side.

    `prediction` (J, 3) is drawn in the left/right colours, `target` (J, 3) if given as dashed
    dark lines over it. Every bone is one Line3D whose gid is '<pose>/<joint>-<parent>' (pose
    'prediction' or 'target'); its data are `plot_coordinates` of those two joints. Axes have
    equal scales; a view taller than wide gets a box as tall, so a standing person fills it."""
    poses = {"prediction": plot_coordinates(_as_joints(prediction, 3, skeleton))}
    if target is not None:
        poses["target"] = plot_coordinates(_as_joints(target, 3, skeleton))
    tall = max(1.0, size_px[1] / (size_px[0] / len(VIEWS)))  # a view's height / width
    center, half_ranges = _view_box(list(poses.values()),
                                    poses.get("target", poses["prediction"]),
                                    skeleton.root_joint, tall)
    colors = joint_colors_rgb(skeleton) / 255.0
    target_color = np.array(COLOR_TARGET_RGB) / 255.0

    figure = Figure(figsize=(size_px[0] / dpi, size_px[1] / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
    for slot, (view_name, elevation, azimuth) in enumerate(VIEWS):
        axes = figure.add_subplot(1, len(VIEWS), slot + 1, projection="3d")
        axes.view_init(elev=elevation, azim=azimuth)
        for name, pose in poses.items():
            is_target = name == "target"
            for joint, parent in bones(skeleton):
                segment = pose[[joint, parent]]  # (2, 3)
                axes.plot(segment[:, 0], segment[:, 1], segment[:, 2],
                          color=target_color if is_target else colors[joint],
                          linestyle="--" if is_target else "-",
                          linewidth=1.2 if is_target else 2.5,
                          gid="%s/%d-%d" % (name, joint, parent))
        for set_limits, c, half in zip((axes.set_xlim3d, axes.set_ylim3d, axes.set_zlim3d),
                                       center, half_ranges):
            set_limits(c - half, c + half)
        axes.set_box_aspect((1, 1, tall), zoom=1.3 * min(tall, 1.5))  # equal scales
        axes.set_xticklabels([])
        axes.set_yticklabels([])
        axes.set_zticklabels([])
        axes.tick_params(length=0, pad=0)
        axes.set_xlabel("x", labelpad=-14, fontsize=7)
        axes.set_ylabel("depth z", labelpad=-14, fontsize=7)
        axes.set_zlabel("up -y", labelpad=-14, fontsize=7)
        axes.set_title(view_name, fontsize=8, pad=-4)
    if target is not None:
        figure.legend(handles=[Line2D([], [], color=colors[skeleton.joints_left[0]], lw=2.5,
                                      label="prediction"),
                               Line2D([], [], color=target_color, lw=1.2,
                                      ls="--", label="ground truth")],
                      loc="lower left", fontsize=6, frameon=False)
    if title:
        figure.suptitle(title, fontsize=9)
    figure.subplots_adjust(left=0.0, right=1.0, bottom=0.02, top=0.88 if title else 0.94,
                           wspace=0.0)
    return figure


def figure_to_rgb(figure):
    """Draw a Figure on its Agg canvas -> (H, W, 3) uint8 RGB."""
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()


def render_pose_3d(prediction, target=None, title=None, size_px=(512, 256), *, skeleton):
    """(H, W, 3) uint8 RGB picture of `pose_figure` (H, W = size_px[1], size_px[0])."""
    return figure_to_rgb(pose_figure(prediction, target, title, size_px, skeleton=skeleton))


# ------------------------------------------------------------------------------------- panels

def sample_panel(image_bgr, keypoints_crop, prediction, target=None, title=None, *, skeleton):
    """(256, 192 + 512, 3) uint8 RGB: the crop with its 2D joints, then the two 3D views
    (`prediction`, `target` in metres)."""
    crop = cv2.cvtColor(draw_skeleton_2d(image_bgr, keypoints_crop, skeleton=skeleton),
                        cv2.COLOR_BGR2RGB)
    height = crop.shape[0]
    views = render_pose_3d(prediction, target, title, size_px=(2 * height, height),
                           skeleton=skeleton)
    return np.concatenate([crop, views], axis=1)


def best_worst_indices(errors_mm, group_ids):
    """Per group present (an action, a sequence): (groups (A,), best (A,), worst (A,)) frame
    indices by `errors_mm`.

    Ties go to the earliest frame, as with np.argmin / np.argmax; NaN errors are never picked."""
    errors_mm = np.asarray(errors_mm, dtype=np.float64).reshape(-1)
    group_ids = np.asarray(group_ids).reshape(-1)
    frames = np.arange(len(errors_mm))
    groups = np.unique(group_ids)
    order_best = np.lexsort((frames, errors_mm, group_ids))   # per group: ascending error
    finite_worst = np.where(np.isnan(errors_mm), np.inf, -errors_mm)
    order_worst = np.lexsort((frames, finite_worst, group_ids))  # per group: descending
    starts = np.searchsorted(group_ids[order_best], groups)  # group_ids sorted in both
    return groups, order_best[starts], order_worst[starts]


def save_best_worst_per_group(path, crop_of, keypoints_crop, predictions, targets, errors_mm,
                              group_ids, group_names, *, skeleton):
    """One PNG: a row per group present (`group_ids` (N,): an action, a sequence; `group_names`
    {id: name}), its best and its worst frame (by `errors_mm`) as `sample_panel`s titled with
    the group's name and the error. `crop_of(i)` gives frame i's (256, 192, 3) BGR crop (only
    the chosen frames are read); `predictions`, `targets` in metres. Returns `path`."""
    groups, best, worst = best_worst_indices(errors_mm, group_ids)
    rows = []
    for group, pair in zip(groups, zip(best, worst)):
        name = group_names.get(int(group), "group %d" % int(group))
        panels = [sample_panel(crop_of(i), keypoints_crop[i], predictions[i], targets[i],
                               title="%s: %s frame (#%d), %.1f mm"
                               % (name, kind, i, float(errors_mm[i])), skeleton=skeleton)
                  for kind, i in zip(("best", "worst"), pair)]
        rows.append(np.concatenate(panels, axis=1))
    picture = np.concatenate(rows, axis=0)  # (A * 256, 2 * 704, 3) RGB
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    if not cv2.imwrite(path, cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)):
        raise OSError("could not write %s" % path)
    return path
