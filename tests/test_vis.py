"""Pictures (mvn/vis.py): sizes, colours, the plotted coordinates, best/worst frame selection."""
import cv2
import numpy as np
import pytest

from mvn import vis
from mvn.human36m.facts import ACTION_NAMES, JOINTS_LEFT, JOINTS_RIGHT, PARENTS, SKELETON

# A person standing with arms out, camera frame (x right, y down, z forward), metres.
STANDING_M = np.array([
    [0.00, 0.00, 0.00], [-0.13, 0.00, 0.00], [-0.13, 0.45, 0.05], [-0.13, 0.90, 0.00],
    [0.13, 0.00, 0.00], [0.13, 0.45, 0.05], [0.13, 0.90, 0.00], [0.00, -0.25, 0.00],
    [0.00, -0.50, 0.00], [0.00, -0.60, -0.05], [0.00, -0.72, 0.00], [0.18, -0.48, 0.00],
    [0.45, -0.48, 0.00], [0.70, -0.48, 0.00], [-0.18, -0.48, 0.00], [-0.45, -0.48, -0.10],
    [-0.70, -0.48, -0.20]])
# Its joints in crop pixels: 120 px per metre around the crop centre (all >= 10 px apart).
STANDING_CROP_PX = STANDING_M[:, :2] * 120 + [96, 128]


def test_skeleton_bones_follow_the_h36m_parents():
    bones = vis.bones(SKELETON)
    assert bones.shape == (16, 2)
    for joint, parent in bones:
        assert PARENTS[joint] == parent
    colors = vis.joint_colors_rgb(SKELETON)
    assert (colors[list(JOINTS_LEFT)] == vis.COLOR_LEFT_RGB).all()
    assert (colors[list(JOINTS_RIGHT)] == vis.COLOR_RIGHT_RGB).all()
    assert (colors[[0, 7, 8, 9, 10]] == vis.COLOR_CENTER_RGB).all()


def test_draw_skeleton_2d_marks_every_joint_in_its_colour_and_keeps_the_input():
    image = np.zeros((256, 192, 3), np.uint8)
    drawn = vis.draw_skeleton_2d(image, STANDING_CROP_PX, skeleton=SKELETON)
    assert drawn.shape == image.shape and drawn.dtype == np.uint8
    assert not image.any(), "the input image was modified"
    colors_bgr = vis.joint_colors_rgb(SKELETON)[:, ::-1]
    for joint, (x, y) in enumerate(np.round(STANDING_CROP_PX).astype(int)):
        assert (drawn[y, x] == colors_bgr[joint]).all(), joint
    # a bone: the middle of the left upper arm (shoulder 11 -> elbow 12) has the left colour
    x, y = np.round((STANDING_CROP_PX[11] + STANDING_CROP_PX[12]) / 2).astype(int)
    assert (drawn[y, x] == colors_bgr[12]).all()


def test_draw_skeleton_2d_skips_non_finite_joints():
    keypoints = STANDING_CROP_PX.copy()
    keypoints[13] = np.nan  # left wrist undetected: no disc there, no bone to it
    drawn = vis.draw_skeleton_2d(np.zeros((256, 192, 3), np.uint8), keypoints, skeleton=SKELETON)
    x, y = np.round(STANDING_CROP_PX[13]).astype(int)
    assert not drawn[y - 1:y + 2, x - 1:x + 2].any()
    x, y = np.round(STANDING_CROP_PX[12]).astype(int)
    assert drawn[y, x].any()


def test_plot_coordinates_stand_the_person_upright():
    plotted = vis.plot_coordinates(STANDING_M)
    np.testing.assert_array_equal(plotted, STANDING_M[:, [0, 2, 1]] * [1, 1, -1])
    assert plotted[10, 2] > plotted[0, 2] > plotted[3, 2]  # head above pelvis above ankle


def test_pose_figure_plots_exactly_the_input_coordinates():
    prediction = STANDING_M + 0.02
    figure = vis.pose_figure(prediction, STANDING_M, title="t", skeleton=SKELETON)
    expected = {"prediction": vis.plot_coordinates(prediction),
                "target": vis.plot_coordinates(STANDING_M)}
    axes = figure.axes
    assert len(axes) == len(vis.VIEWS)
    for ax, (_, elevation, azimuth) in zip(axes, vis.VIEWS):
        assert (ax.elev, ax.azim) == (elevation, azimuth)
        lines = {line.get_gid(): line for line in ax.lines}
        assert len(lines) == 2 * len(vis.bones(SKELETON))
        for name, pose in expected.items():
            for joint, parent in vis.bones(SKELETON):
                data = np.array(lines["%s/%d-%d" % (name, joint, parent)].get_data_3d()).T
                np.testing.assert_allclose(data, pose[[joint, parent]], rtol=0, atol=1e-12)
        ranges = [np.diff(limits)[0] for limits in (ax.get_xlim3d(), ax.get_ylim3d(),
                                                    ax.get_zlim3d())]
        np.testing.assert_allclose(ranges, ranges[0])  # equal axes


def _has_color(picture_rgb, color_rgb, tolerance=12):
    return (np.abs(picture_rgb.astype(int) - color_rgb).max(axis=-1) <= tolerance).sum()


def test_render_pose_3d_has_the_right_size_and_skeleton_colours():
    picture = vis.render_pose_3d(STANDING_M, STANDING_M * 1.1, title="frame 0", skeleton=SKELETON)
    assert picture.shape == (256, 512, 3) and picture.dtype == np.uint8
    for color in (vis.COLOR_LEFT_RGB, vis.COLOR_RIGHT_RGB, vis.COLOR_CENTER_RGB):
        assert _has_color(picture, color) > 20, color
    assert vis.render_pose_3d(STANDING_M, None, size_px=(300, 200),
                              skeleton=SKELETON).shape == (200, 300, 3)


def test_sample_panel_is_the_drawn_crop_beside_the_3d_views():
    crop = np.full((256, 192, 3), 128, np.uint8)
    panel = vis.sample_panel(crop, STANDING_CROP_PX, STANDING_M[None], STANDING_M, title="x",
                             skeleton=SKELETON)
    assert panel.shape == (256, 192 + 512, 3) and panel.dtype == np.uint8
    expected_crop = cv2.cvtColor(vis.draw_skeleton_2d(crop, STANDING_CROP_PX, skeleton=SKELETON),
                                 cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(panel[:, :192], expected_crop)
    assert _has_color(panel[:, 192:], vis.COLOR_LEFT_RGB) > 20


def test_best_worst_indices_per_action():
    errors = np.array([50.0, 10.0, 80.0, 30.0, 30.0, 70.0, np.nan, 70.0, 5.0])
    actions = np.array([2, 2, 2, 5, 5, 5, 5, 5, 16])
    found, best, worst = vis.best_worst_indices(errors, actions)
    np.testing.assert_array_equal(found, [2, 5, 16])
    np.testing.assert_array_equal(best, [1, 3, 8])   # ties -> the first frame; NaN never
    np.testing.assert_array_equal(worst, [2, 5, 8])


def test_save_best_worst_per_group_shows_the_right_frames(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    n = 6
    images = rng.integers(0, 255, (n, 256, 192, 3), dtype=np.uint8)
    keypoints = np.broadcast_to(STANDING_CROP_PX, (n, 17, 2))
    targets = np.broadcast_to(STANDING_M, (n, 17, 3))
    predictions = targets + rng.normal(0, 0.03, (n, 17, 3))
    errors = np.array([40.0, 20.0, 60.0, 90.0, 10.0, 30.0])
    actions = np.array([3, 3, 3, 14, 14, 14])
    shown = []
    original = vis.sample_panel

    def recording_panel(image, keypoints_crop, prediction, target, title=None, *, skeleton):
        index = next(i for i in range(n) if image is images[i] or np.array_equal(image, images[i]))
        np.testing.assert_array_equal(prediction, predictions[index])
        shown.append((index, title))
        return original(image, keypoints_crop, prediction, target, title, skeleton=skeleton)

    monkeypatch.setattr(vis, "sample_panel", recording_panel)
    path = str(tmp_path / "sub" / "best_worst.png")
    read = []

    def crop_of(index):
        read.append(index)
        return images[index]
    assert vis.save_best_worst_per_group(path, crop_of, keypoints, predictions, targets, errors,
                                         actions, ACTION_NAMES, skeleton=SKELETON) == path
    assert [index for index, _ in shown] == [1, 2, 4, 3]  # per action: best, worst
    assert read == [1, 2, 4, 3]  # only the frames shown are read
    assert shown[0][1].startswith("Discussion: best") and "20.0 mm" in shown[0][1]
    assert shown[3][1].startswith("Walking: worst") and "90.0 mm" in shown[3][1]
    picture = cv2.imread(path)
    assert picture.shape == (2 * 256, 2 * (192 + 512), 3)


@pytest.mark.parametrize("bad", [np.zeros((16, 3)), np.zeros((2, 17, 3))])
def test_render_pose_3d_refuses_other_shapes(bad):
    with pytest.raises(ValueError):
        vis.render_pose_3d(bad, skeleton=SKELETON)


def drawn_rows(picture):
    """Indices of the rows holding any coloured (not grey/white) pixel: the skeleton."""
    colour = picture.astype(int).max(-1) - picture.astype(int).min(-1) > 60  # (H, W)
    return np.flatnonzero(colour.any(1))


def test_a_tall_view_draws_the_person_taller():
    # The demo gives one person the whole 512 x 512 column: the person must fill its height,
    # not the middle half of it (a square box would).
    wide = vis.render_pose_3d(STANDING_M, size_px=(512, 256), skeleton=SKELETON)
    tall = vis.render_pose_3d(STANDING_M, size_px=(512, 512), skeleton=SKELETON)
    wide_rows, tall_rows = drawn_rows(wide), drawn_rows(tall)
    wide_span = wide_rows[-1] - wide_rows[0]
    tall_span = tall_rows[-1] - tall_rows[0]
    assert tall_span > 1.4 * wide_span
    assert tall_span > 0.4 * 512


@pytest.mark.parametrize("size_px,title,with_target", [((512, 256), "frame 0", True),
                                                       ((512, 512), None, False),
                                                       ((512, 128), "person 3", True),
                                                       ((384, 192), "x", False)])
def test_the_figures_text_neither_overlaps_nor_leaves_the_picture(size_px, title, with_target):
    """Title, view names, captions and legend: each inside the figure, no two overlapping, and
    the 3D boxes stay within their axes (nothing cut, no label inside another view)."""
    figure = vis.pose_figure(STANDING_M, STANDING_M * 1.05 if with_target else None, title,
                             size_px, skeleton=SKELETON)
    renderer = figure.canvas.get_renderer()
    figure.canvas.draw()
    texts = vis.figure_texts(figure)
    names = [t.get_text() for t in texts]
    assert "camera view" in names and "side view" in names and (title in names or not title)
    assert ("ground truth" in names) == with_target
    boxes = [t.get_window_extent(renderer) for t in texts]
    for text, box in zip(names, boxes):
        assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= size_px[0] and box.y1 <= size_px[1], text
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert not boxes[i].overlaps(boxes[j]), (names[i], names[j])
    for axes in figure.axes:  # each 3D box inside its own slot, filling it, clear of the text
        corners = vis.box_corners_px(axes)                             # (8, 2)
        low, high = corners.min(0), corners.max(0)
        slot = axes.get_position(original=True).transformed(figure.transFigure)
        assert low[0] >= slot.x0 and high[0] <= slot.x1 and low[1] >= slot.y0 \
            and high[1] <= slot.y1
        assert max((high[0] - low[0]) / slot.width, (high[1] - low[1]) / slot.height) > 0.9
        for box in boxes:
            assert box.x1 <= low[0] or box.x0 >= high[0] or box.y1 <= low[1] \
                or box.y0 >= high[1], box
