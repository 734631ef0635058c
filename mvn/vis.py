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
from mpl_toolkits.mplot3d import proj3d

COLOR_LEFT_RGB = (0, 114, 189)     # blue
COLOR_RIGHT_RGB = (230, 100, 20)   # orange
COLOR_CENTER_RGB = (60, 160, 60)   # green: pelvis, spine, thorax, neck, head
COLOR_TARGET_RGB = (40, 40, 40)    # ground truth, dashed

# Fixed 3D viewpoints (matplotlib elevation, azimuth in degrees): from (just above) the camera,
# and from the camera's right (+x), where depth increases from left to right.
VIEWS = (("camera view", 10.0, -90.0), ("side view", 10.0, 0.0))
# What each view's horizontal axis shows (its caption; up is -y, the person's up, in both)
VIEW_CAPTIONS = {"camera view": "x right, up = -y", "side view": "depth z right, up = -y"}
MIN_RADIUS_M = 0.5  # smallest half-size of the plotted box: a crouching person is not magnified
TEXT_HEIGHT_PX = 14  # one line of the figure's text (title, view names, captions, legend)


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
    equal scales and an orthographic projection; the box fits the person (a view taller than
    wide gets a box as tall), so the person fills the view. All text sits outside the 3D boxes,
    one line each: the title and the view names above, each view's caption (what its axes show)
    and the legend below; nothing overlaps or leaves the figure (tested)."""
    poses = {"prediction": plot_coordinates(_as_joints(prediction, 3, skeleton))}
    if target is not None:
        poses["target"] = plot_coordinates(_as_joints(target, 3, skeleton))
    width_px, height_px = size_px
    line = TEXT_HEIGHT_PX / height_px                      # one text line, figure fraction
    top = 1 - line * (2 if title else 1)                   # view names (and title) above
    bottom = line * (2 if target is not None else 1)       # captions (and legend) below
    tall = max(1.0, (top - bottom) * height_px / (width_px / len(VIEWS)))  # view height / width
    center, half_ranges = _view_box(list(poses.values()),
                                    poses.get("target", poses["prediction"]),
                                    skeleton.root_joint, tall)
    colors = joint_colors_rgb(skeleton) / 255.0
    target_color = np.array(COLOR_TARGET_RGB) / 255.0
    font = 0.62 * TEXT_HEIGHT_PX * 72 / dpi                # points: fits a line with margin

    figure = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
    view_width = 1 / len(VIEWS)
    for slot, (view_name, elevation, azimuth) in enumerate(VIEWS):
        axes = figure.add_axes((slot * view_width, bottom, view_width, top - bottom),
                               projection="3d")
        axes.set_proj_type("ortho")
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
        axes.set_box_aspect((1, 1, tall))  # equal scales
        _fill_axes_with_box(axes)
        axes.set_xticklabels([])
        axes.set_yticklabels([])
        axes.set_zticklabels([])
        axes.tick_params(length=0, pad=0)
        axes.set_xlabel("")
        axes.set_ylabel("")
        axes.set_zlabel("")
        middle = (slot + 0.5) * view_width
        figure.text(middle, top + line / 2, view_name, ha="center", va="center", fontsize=font)
        figure.text(middle, bottom - line / 2, VIEW_CAPTIONS.get(view_name, ""), ha="center",
                    va="center", fontsize=font * 0.9, color="0.35")
    if target is not None:
        figure.legend(handles=[Line2D([], [], color=colors[skeleton.joints_left[0]], lw=2.5,
                                      label="prediction"),
                               Line2D([], [], color=target_color, lw=1.2,
                                      ls="--", label="ground truth")],
                      loc="center", bbox_to_anchor=(0.5, line / 2), ncol=2, fontsize=font * 0.9,
                      frameon=False, borderpad=0, borderaxespad=0, handlelength=2.0,
                      columnspacing=1.5)
    if title:
        figure.text(0.5, 1 - line / 2, title, ha="center", va="center", fontsize=font,
                    fontweight="bold")
    return figure


def box_corners_px(axes):
    """(8, 2) display pixels of the corners of a 3D axes' box, as it is drawn."""
    corners = np.array(np.meshgrid(axes.get_xlim3d(), axes.get_ylim3d(), axes.get_zlim3d(),
                                   indexing="ij")).reshape(3, -1)     # (3, 8)
    x, y, _ = proj3d.proj_transform(*corners, axes.get_proj())
    return axes.transData.transform(np.stack([x, y], -1))


def _fill_axes_with_box(axes, margin=0.96):
    """Zoom the 3D box so that its projection fills `margin` of the axes (the person large,
    nothing outside the axes): the eight corners are projected and the zoom scaled once (an
    orthographic projection scales linearly with the zoom)."""
    axes.apply_aspect()  # the position matplotlib draws the 3D axes at
    pixels = box_corners_px(axes)
    extent = pixels.max(0) - pixels.min(0)
    box = axes.get_position(original=True).transformed(axes.figure.transFigure)
    zoom = margin * min(box.width / extent[0], box.height / extent[1])
    axes.set_box_aspect(axes.get_box_aspect(), zoom=zoom)


def figure_texts(figure):
    """The visible, non-empty Text artists of `figure` (for layout checks)."""
    texts = list(figure.texts)
    for legend in figure.legends:
        texts += legend.get_texts()
    for axes in figure.axes:
        texts += [axes.title, axes.xaxis.label, axes.yaxis.label]
        if hasattr(axes, "zaxis"):
            texts.append(axes.zaxis.label)
        for axis in (axes.xaxis, axes.yaxis) + ((axes.zaxis,) if hasattr(axes, "zaxis") else ()):
            texts += [tick for tick in axis.get_ticklabels()]
    return [t for t in texts if t.get_visible() and t.get_text()]


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
