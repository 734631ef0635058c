"""mvn.geometry: cameras, projection, boxes, crop transforms and screen normalisation."""
import numpy as np

from conftest import reference_path
from mvn import geometry
from mvn.human36m import facts as h36m


def _random_camera_points(rng, n=50):
    """Points in front of a camera: x, y within about +-40 degrees, 2..7 m away (mm)."""
    z = rng.uniform(2000, 7000, size=n)
    xy = rng.uniform(-0.8, 0.8, size=(n, 2)) * z[:, None]
    return np.concatenate([xy, z[:, None]], axis=1)


def test_affine_transform_maps_hand_computed_points():
    center, scale = (500.0, 400.0), (2.0, 2.5)          # box 400 px wide
    M = geometry.get_affine_transform(center, scale)
    assert M.shape == (2, 3) and M.dtype == np.float64
    source = np.array([[500.0, 400.0], [500.0, 400.0 - 199.5], [500.0 - 199.5, 400.0 - 199.5]])
    expected = np.array([[95.5, 127.5], [95.5, 32.0], [0.0, 32.0]])
    np.testing.assert_allclose(geometry.affine_transform_points(source, M), expected, atol=1e-4)
    zoom = 95.5 / 199.5                                  # only the width sets the zoom
    np.testing.assert_allclose(M, [[zoom, 0, 95.5 - zoom * 500], [0, zoom, 127.5 - zoom * 400]],
                               atol=1e-6)


def test_affine_transform_equals_released_matrices_bit_for_bit():
    vectors = np.load(reference_path("crop_vectors.npz"))
    for center_key, scale_key, matrix_key in [("center", "scale", "matrix_from_float64"),
                                              ("center_float32", "scale_float32",
                                               "matrix_from_float32")]:
        got = np.stack([geometry.get_affine_transform(c, s)
                        for c, s in zip(vectors[center_key], vectors[scale_key])])
        assert got.dtype == np.float64
        assert np.array_equal(got, vectors[matrix_key]), matrix_key
    # The label script's tuples of float64 scalars give the float64 matrices too.
    tuples = np.stack([geometry.get_affine_transform(tuple(c), tuple(s))
                       for c, s in zip(vectors["center"], vectors["scale"])])
    assert np.array_equal(tuples, vectors["matrix_from_float64"])


def test_float32_cast_of_label_boxes_changes_matrices():
    # Why the datasets keep the label file's float64 centre and scale: the float32 cast alone
    # gives other matrices for most of these boxes.
    vectors = np.load(reference_path("crop_vectors.npz"))
    differ = sum(not np.array_equal(a, b) for a, b in zip(vectors["matrix_from_float64"],
                                                          vectors["matrix_from_float32"]))
    assert differ > len(vectors["center"]) // 10


def test_affine_transform_points_equals_homogeneous_product():
    rng = np.random.default_rng(1)
    M = rng.normal(size=(2, 3))
    points = rng.uniform(0, 1000, size=(17, 2))
    expected = np.array([M @ np.array([x, y, 1.0]) for x, y in points])
    np.testing.assert_allclose(geometry.affine_transform_points(points, M), expected, rtol=1e-12)
    batched = geometry.affine_transform_points(points.reshape(1, 17, 2), M)
    assert batched.shape == (1, 17, 2)


def test_crop_image_is_256x192_bilinear_with_zeros_outside():
    image = np.full((1002, 1000, 3), 200, dtype=np.uint8)
    image[600:610, 300:310] = (0, 0, 255)
    center, scale = (305.0, 605.0), (1.0, 1.0)          # a 200 px window around the red square
    crop = geometry.crop_image(image, center, scale)
    assert crop.shape == (256, 192, 3) and crop.dtype == np.uint8
    x, y = geometry.affine_transform_points(np.array([304.5, 604.5]),
                                            geometry.get_affine_transform(center, scale))
    assert tuple(crop[int(round(y)), int(round(x))]) == (0, 0, 255)
    assert tuple(crop[128, 20]) == (200, 200, 200)
    corner = geometry.crop_image(image, (0.0, 0.0), (1.0, 1.0))   # mostly outside the frame
    assert tuple(corner[5, 5]) == (0, 0, 0) and tuple(corner[250, 185]) == (200, 200, 200)


def test_projection_without_distortion_equals_pinhole():
    rng = np.random.default_rng(2)
    points = _random_camera_points(rng)
    f, c = (1145.0, 1143.8), (512.5, 515.4)
    pinhole = geometry.project_pinhole(points, f, c)
    np.testing.assert_allclose(pinhole[:, 0], f[0] * points[:, 0] / points[:, 2] + c[0])
    np.testing.assert_allclose(pinhole[:, 1], f[1] * points[:, 1] / points[:, 2] + c[1])
    np.testing.assert_allclose(geometry.project_to_2d(points, f, c, (0, 0, 0), (0, 0)), pinhole,
                               rtol=1e-12)


def test_projection_with_distortion_matches_the_datasets_matlab_model():
    """Human3.6M's ProjectPointRadial (3d-pose-baseline's port), p in the calibration order."""
    rng = np.random.default_rng(3)
    points = _random_camera_points(rng)
    cam = h36m.camera(9, 1)
    f, c, k, p = (np.array(cam[key], dtype=np.float64) for key in "fckp")
    xx = points[:, :2] / points[:, 2:]
    r2 = np.sum(xx ** 2, axis=1)
    radial = 1 + k[0] * r2 + k[1] * r2 ** 2 + k[2] * r2 ** 3
    tan = p[0] * xx[:, 1] + p[1] * xx[:, 0]
    xxx = xx * (radial + tan)[:, None] + np.outer(r2, [p[1], p[0]])
    expected = f * xxx + c
    np.testing.assert_allclose(geometry.project_to_2d(points, f, c, k, p), expected, rtol=1e-12)
    shift = np.abs(expected - geometry.project_pinhole(points, f, c)).max()
    assert shift > 5.0                                  # the distortion is not negligible


def test_world_camera_round_trip_and_convention():
    cam = h36m.camera(1, 0)
    R, T = np.array(cam["R"]), np.array(cam["T"])
    np.testing.assert_allclose(geometry.world_to_camera(T, R, T), 0, atol=1e-9)  # T is the centre
    rng = np.random.default_rng(4)
    world = rng.uniform(-2000, 2000, size=(3, 32, 3))
    camera = geometry.world_to_camera(world, R, T)
    np.testing.assert_allclose(camera[1, 5], R @ (world[1, 5] - T), rtol=1e-12)
    np.testing.assert_allclose(geometry.camera_to_world(camera, R, T), world, atol=1e-9)


def test_box_center_scale_from_root():
    f, c = (1000.0, 1000.0), (500.0, 500.0)
    box = geometry.box_from_root(np.array([[0.0, 0.0, 5000.0]]), f, c)
    np.testing.assert_allclose(box, [[300.0, 320.0, 700.0, 720.0]])
    center, scale = geometry.center_scale_from_box(box)
    np.testing.assert_allclose(center, [[500.0, 520.0]])
    np.testing.assert_allclose(scale, [[2.0, 2.0]])


def test_normalize_screen_coordinates_and_inverse():
    X = np.array([[0.0, 0.0], [1000.0, 1002.0], [500.0, 501.0]])
    np.testing.assert_allclose(geometry.normalize_screen_coordinates(X, 1000, 1002),
                               [[-1.0, -1.002], [1.0, 1.002], [0.0, 0.0]])
    rng = np.random.default_rng(5)
    points = rng.uniform(0, 1000, size=(4, 17, 2))
    normalized = geometry.normalize_screen_coordinates(points, 1000, 1002)
    np.testing.assert_allclose(geometry.image_coordinates(normalized, 1000, 1002), points, atol=1e-9)
    # float32 detections are scaled in float32 and promoted by the offset, as in the reference
    detections = points.astype(np.float32)
    ours = geometry.normalize_screen_coordinates(detections, 1000, 1002)
    assert ours.dtype == np.float64
    assert np.array_equal(ours, detections / 1000 * 2 - [1, 1002 / 1000])


def test_undistortion_inverts_the_distortion():
    rng = np.random.default_rng(3)
    points = _random_camera_points(rng, 40)
    for subject in (1, 9):
        cam = h36m.camera(subject, 2)
        pixels = geometry.project_to_2d(points, cam["f"], cam["c"], cam["k"], cam["p"])
        xy = geometry.undistort_normalized(pixels, cam["f"], cam["c"], cam["k"], cam["p"])
        np.testing.assert_allclose(xy, points[:, :2] / points[:, 2:], atol=1e-6)  # ~1e-3 px


def test_invert_affines_undoes_each_map():
    """The inverse of crop_to_frame_affines is the frame -> crop matrix get_affine_transform
    solves with cv2 (to its float32 rounding), and any (N, 2, 3) map composed with its inverse
    leaves points where they were."""
    rng = np.random.default_rng(0)
    centers = rng.uniform(300, 700, (5, 2))
    scales = np.repeat(rng.uniform(2, 6, (5, 1)), 2, 1)
    inverse = geometry.invert_affines(geometry.crop_to_frame_affines(centers, scales))
    for i in range(5):
        np.testing.assert_allclose(inverse[i], geometry.get_affine_transform(centers[i],
                                                                             scales[i]),
                                   rtol=1e-5, atol=1e-3)
    affines = rng.normal(size=(5, 2, 3))
    points = rng.normal(size=(5, 17, 2))
    np.testing.assert_allclose(geometry.apply_affines(geometry.apply_affines(points, affines),
                                                      geometry.invert_affines(affines)),
                               points, atol=1e-9)
