"""H36M-Toolbox on a small synthetic release: synthesise -> extract frames -> labels.

Two subjects (S1 train, S9 validation) x 2 actions x 2 trials x 4 cameras x 5 frames, made once
per module; the checks recompute the labels independently from the pose files and calibration.
"""
import glob
import hashlib
import os
import pickle
import shutil
import subprocess
import sys

import tarfile

import cdflib
import cv2
import numpy as np
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLBOX_DIR = os.path.join(REPO_ROOT, "H36M-Toolbox")
sys.path.insert(0, TOOLBOX_DIR)  # the toolbox is a folder of scripts, not a package

import extract_archives  # noqa: E402
import generate_labels_h36m  # noqa: E402
import h36m_toolbox  # noqa: E402
import synthesize_h36m  # noqa: E402
import video_to_images  # noqa: E402
from mvn import geometry  # noqa: E402
from mvn.human36m import facts as h36m  # noqa: E402
from conftest import read_video_frames  # noqa: E402
from released_behaviour import released_affine, released_crop_keypoints  # noqa: E402

SUBJECTS, ACTIONS, FRAMES, SEED = [1, 9], [2, 3], 5, 7
SELECTION = ["--subjects", "1", "9", "--actions", "2", "3"]
RECORD_KEYS = ["image", "joints_2d_gt", "joints_2d_cpn", "joints_3d", "joints_vis", "video_id",
               "image_id", "subject", "action", "subaction", "camera_id", "source", "camera",
               "nposes", "center", "scale", "box", "joints_2d_gt_crop", "joints_2d_cpn_crop"]


def _run_pipeline(root, workers=2):
    synthesize_h36m.main(["--root", root, "--frames", str(FRAMES), "--seed", str(SEED),
                          "--workers", str(workers)] + SELECTION)
    video_to_images.main(["--root", root, "--backend", "opencv", "--workers", str(workers)]
                         + SELECTION)
    generate_labels_h36m.main(["--root", root, "--workers", str(workers)] + SELECTION)


def _hashes(root):
    out = {}
    for path in sorted(glob.glob(os.path.join(glob.escape(root), "**", "*"), recursive=True)):
        if os.path.isfile(path):
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


def _labels(root):
    with open(os.path.join(root, "h36m_train.pkl"), "rb") as f:
        train = pickle.load(f)
    with open(os.path.join(root, "h36m_validation.pkl"), "rb") as f:
        validation = pickle.load(f)
    return train, validation


def _cdf_pose(path):
    return np.asarray(cdflib.CDF(path).varget("Pose"))


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("h36m"))
    _run_pipeline(root)
    return root


@pytest.fixture
def release_copy(release, tmp_path):
    """A private copy of the synthetic release (without labels) for tests that break it."""
    root = str(tmp_path / "copy")
    shutil.copytree(release, root, ignore=shutil.ignore_patterns("*.pkl"))
    return root


def _sequence(subject, action, subaction, camera_index):
    return h36m_toolbox.Sequence(subject, action, subaction, camera_index)


# --- the synthetic raw release ------------------------------------------------------------------

def test_synthetic_release_has_the_real_layout_and_file_names(release):
    for s in SUBJECTS:
        for a in ACTIONS:
            for sa in (1, 2):
                base = h36m.sequence_name(s, a, sa)
                folder = os.path.join(release, "extracted", "S%d" % s)
                assert os.path.isfile(os.path.join(folder, "Poses_D3_Positions", base + ".cdf"))
                for camera_id in h36m.CAMERA_IDS:
                    name = "%s.%s" % (base, camera_id)
                    assert os.path.isfile(os.path.join(folder, "Videos", name + ".mp4"))
                    assert os.path.isfile(os.path.join(folder, "Poses_D3_Positions_mono", name + ".cdf"))
                    assert os.path.isfile(os.path.join(folder, "Poses_D2_Positions", name + ".cdf"))
    assert os.path.isfile(os.path.join(release, "extracted", "S1", "Videos",
                                       "Directions 1.54138969.mp4"))
    assert not glob.glob(os.path.join(release, "**", ".partial.*"), recursive=True)


def test_pose_cdfs_read_like_the_real_ones(release):
    sequence = _sequence(9, 3, 2, 1)
    mono = _cdf_pose(sequence.pose3d_mono_path(release))
    d2 = _cdf_pose(sequence.pose2d_path(release))
    world = _cdf_pose(sequence.pose3d_world_path(release))
    assert mono.shape == (1, FRAMES, 96) and d2.shape == (1, FRAMES, 64)
    assert world.shape == (1, FRAMES, 96)
    assert mono.dtype == d2.dtype == world.dtype == np.float64


def test_videos_have_the_camera_resolution_and_all_frames(release):
    for camera_index in range(4):
        frames = read_video_frames(_sequence(1, 2, 1, camera_index).video_path(release))
        width, height = h36m.resolution(camera_index)
        assert len(frames) == FRAMES
        assert frames[0].shape == (height, width, 3)


def test_2d_poses_are_the_3d_poses_projected_with_distortion(release):
    for s in SUBJECTS:
        for camera_index in range(4):
            sequence = _sequence(s, 3, 1, camera_index)
            cam = h36m.camera(s, camera_index)
            R, T = np.array(cam["R"]), np.array(cam["T"])
            world = _cdf_pose(sequence.pose3d_world_path(release)).reshape(-1, 32, 3)
            mono = _cdf_pose(sequence.pose3d_mono_path(release)).reshape(-1, 32, 3)
            d2 = _cdf_pose(sequence.pose2d_path(release)).reshape(-1, 32, 2)
            np.testing.assert_allclose(mono, np.einsum("ij,fkj->fki", R, world - T), atol=1e-6)
            # Human3.6M's projection written out here (MATLAB order of p), not the library's
            f, c, k, p = (np.array(cam[key]) for key in "fckp")
            xx = mono[..., :2] / mono[..., 2:]
            r2 = np.sum(xx ** 2, axis=-1, keepdims=True)
            radial = 1 + k[0] * r2 + k[1] * r2 ** 2 + k[2] * r2 ** 3
            tan = p[0] * xx[..., 1:] + p[1] * xx[..., :1]
            projected = f * (xx * (radial + tan) + r2 * np.array([p[1], p[0]])) + c
            assert np.abs(projected - d2).max() < 1.0
            width, height = h36m.resolution(camera_index)
            assert (d2 > 0).all() and (d2[..., 0] < width).all() and (d2[..., 1] < height).all()


def test_skeleton_stands_on_the_floor_with_subject_specific_bones(release):
    world = {s: _cdf_pose(_sequence(s, 2, 1, 0).pose3d_world_path(release)).reshape(-1, 32, 3)
             for s in SUBJECTS}
    for s, poses in world.items():
        assert np.all(np.abs(poses[..., 2].min(axis=1) - 25.0) < 1e-6)   # lowest point 25 mm
        assert np.all(poses[:, 15, 2] > 1200)                             # head up
    thigh = {s: np.linalg.norm(p[:, 2] - p[:, 1], axis=-1) for s, p in world.items()}
    for s in SUBJECTS:                                  # rigid bones within a subject
        assert np.ptp(thigh[s]) < 1e-6
    assert abs(thigh[1][0] - thigh[9][0]) > 1.0         # differ between subjects


def test_detection_file_is_vp3d_format_with_noisy_true_joints(release):
    with np.load(os.path.join(release, "data", "data_2d_h36m_cpn_ft_h36m_dbb.npz"),
                 allow_pickle=True) as data:
        assert data["positions_2d"].dtype == object and data["positions_2d"].shape == ()
        positions = data["positions_2d"].item()
        metadata = data["metadata"].item()
    assert metadata == {"layout_name": "h36m", "num_joints": 17,
                        "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}
    assert list(positions) == ["S1", "S9"]
    assert list(positions["S1"]) == ["Directions 1", "Directions", "Discussion 1", "Discussion"]
    errors = []
    for s in SUBJECTS:
        for a in ACTIONS:
            for sa in (1, 2):
                arrays = positions["S%d" % s][h36m.sequence_name(s, a, sa)]
                assert len(arrays) == 4
                for camera_index, detections in enumerate(arrays):
                    assert detections.shape == (FRAMES, 17, 2) and detections.dtype == np.float32
                    d2 = _cdf_pose(_sequence(s, a, sa, camera_index).pose2d_path(release))
                    true = d2.reshape(-1, 32, 2)[:, list(h36m.JOINTS_17_FROM_32)]
                    errors.append(np.linalg.norm(detections - true, axis=-1).ravel())
    errors = np.concatenate(errors)
    assert 1.0 < np.median(errors) < 5.0                # a few pixels ...
    assert errors.max() < 100.0


def test_detection_file_uses_the_renamed_actions(tmp_path):
    path = str(tmp_path / "data" / "detections.npz")
    arrays = [np.zeros((2, 17, 2), np.float32)] * 4
    synthesize_h36m.write_detections(path, {(1, 12, 1): arrays, (1, 15, 2): arrays,
                                            (5, 12, 1): arrays})
    with np.load(path, allow_pickle=True) as data:
        positions = data["positions_2d"].item()
    assert h36m.sequence_name(1, 12, 1) == "TakingPhoto 1"
    assert list(positions["S1"]) == ["Photo 1", "WalkDog"]
    assert list(positions["S5"]) == ["Photo"]
    found = generate_labels_h36m.find_detections(positions, _sequence(1, 12, 1, 3))
    assert found is not None and found.shape == (2, 17, 2)


def test_frames_show_the_figure_where_the_joints_are(release):
    """The rendered figure covers its projected torso; the background shows elsewhere."""
    for s in SUBJECTS:
        sequence = _sequence(s, 2, 2, 2)
        image = cv2.imread(os.path.join(release, "images", h36m.image_name(s, 2, 2, 2, 1)))
        background = synthesize_h36m.room_background(SEED, s, 2)
        d2 = _cdf_pose(sequence.pose2d_path(release)).reshape(-1, 32, 2)[0]
        spine_x, spine_y = np.round(d2[12]).astype(int)
        diff = np.abs(image.astype(int) - background.astype(int)).sum(-1)
        assert diff[spine_y, spine_x] > 60
        assert np.median(diff[:100]) < 20                # the top rows: room, no figure


def test_archives_extract_into_the_toolbox_layout(release, tmp_path):
    """Archives as the dataset site serves them (S9/MyPoseFeatures/...) -> extracted/S9/..."""
    archives = tmp_path / "archives"
    archives.mkdir()
    source = os.path.join(release, "extracted", "S9")
    for kind in extract_archives.KINDS:
        inner = "Videos" if kind == "Videos" else "MyPoseFeatures/" + kind[len("Poses_"):]
        with tarfile.open(archives / ("%s_S9.tgz" % kind), "w:gz") as archive:
            archive.add(os.path.join(source, kind), arcname="S9/" + inner)
    root = str(tmp_path / "root")
    assert extract_archives.extract_archives(root, str(archives), [9]) == 16 + 16 + 16 + 4
    assert _hashes(os.path.join(root, "extracted")) == {
        os.path.join("S9", k): v for k, v in _hashes(source).items()}
    assert extract_archives.extract_archives(root, str(archives), [9]) == 0   # already there
    with pytest.raises(h36m_toolbox.ToolboxError, match=r"Videos_S1\.tgz not found.*--subjects"):
        extract_archives.extract_archives(root, str(archives), [1])


# --- frames --------------------------------------------------------------------------------------

def test_frames_are_extracted_one_based_with_a_completion_marker(release):
    for sequence in h36m_toolbox.sequences(SUBJECTS, ACTIONS):
        folder = sequence.image_dir(release)
        names = sorted(n for n in os.listdir(folder) if n.endswith(".jpg"))
        assert names == ["%s_%06d.jpg" % (sequence.image_dir_name, i) for i in range(1, FRAMES + 1)]
        assert os.path.isfile(os.path.join(folder, video_to_images.MARKER))


def test_interrupted_sequence_is_extracted_again_identically(release_copy):
    sequence = _sequence(9, 2, 1, 3)
    folder = sequence.image_dir(release_copy)
    before = _hashes(folder)
    os.remove(os.path.join(folder, video_to_images.MARKER))   # as if killed mid-sequence
    os.remove(os.path.join(folder, "%s_%06d.jpg" % (sequence.image_dir_name, 4)))
    with open(os.path.join(folder, "%s_%06d.jpg" % (sequence.image_dir_name, 99)), "wb") as f:
        f.write(b"torn")
    done = video_to_images.video_to_images(release_copy, SUBJECTS, ACTIONS, backend="opencv")
    assert list(done) == [sequence]                     # the others were skipped
    assert _hashes(folder) == before


# --- labels ----------------------------------------------------------------------------------------

def test_labels_load_as_lists_of_dicts_with_the_published_keys(release):
    train, validation = _labels(release)
    assert isinstance(train, list) and isinstance(validation, list)
    assert len(train) == len(validation) == len(ACTIONS) * 2 * 4 * FRAMES
    for record in train + validation:
        assert isinstance(record, dict) and list(record) == RECORD_KEYS
        assert list(record["camera"]) == ["R", "T", "fx", "fy", "cx", "cy", "k", "p"]
    assert {r["subject"] for r in train} == {1} and {r["subject"] for r in validation} == {9}


def test_labels_are_in_reference_order(release):
    for records in _labels(release):
        keys = [(r["subject"], r["action"], r["subaction"], r["camera_id"], r["image_id"])
                for r in records]
        assert keys == sorted(keys) and len(set(keys)) == len(keys)


def test_labels_recomputed_independently_from_poses_and_calibration(release):
    with np.load(os.path.join(release, "data", "data_2d_h36m_cpn_ft_h36m_dbb.npz"),
                 allow_pickle=True) as data:
        positions = data["positions_2d"].item()
    joints = list(h36m.JOINTS_17_FROM_32)
    for record in sum(_labels(release), []):
        s, a, sa, ci, i = (record[k] for k in ("subject", "action", "subaction", "camera_id",
                                               "image_id"))
        sequence = _sequence(s, a, sa, ci)
        cam = h36m.camera(s, ci)
        width, height = h36m.resolution(ci)
        mono = _cdf_pose(sequence.pose3d_mono_path(release)).reshape(-1, 32, 3)[i - 1, joints]
        d2 = _cdf_pose(sequence.pose2d_path(release)).reshape(-1, 32, 2)[i - 1, joints]
        cpn = positions["S%d" % s][h36m.sequence_name(s, a, sa)][ci][i - 1]
        folder = "s_%02d_act_%02d_subact_%02d_ca_%02d" % (s, a, sa, ci + 1)
        assert record["image"] == "%s/%s_%06d.jpg" % (folder, folder, i)
        assert record["source"] == "h36m" and record["nposes"] == FRAMES
        assert record["video_id"] == ((([1, 5, 6, 7, 8, 9, 11].index(s) * 15 + a - 2) * 2 + sa - 1)
                                      * 4 + ci)
        # box: the root +(-1000, -900) / +(1000, 1100) mm, pinhole
        (fx, fy), (cx, cy) = cam["f"], cam["c"]
        X, Y, Z = mono[0]
        box = [fx * (X - 1000) / Z + cx, fy * (Y - 900) / Z + cy,
               fx * (X + 1000) / Z + cx, fy * (Y + 1100) / Z + cy]
        np.testing.assert_allclose(record["box"], box, rtol=1e-12)
        center = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        scale = ((box[2] - box[0]) / 200, (box[3] - box[1]) / 200)
        np.testing.assert_allclose(record["center"], center, rtol=1e-12)
        np.testing.assert_allclose(record["scale"], scale, rtol=1e-12)
        # crop: zoom (191 / 2) / ((w_box - 1) / 2) about the centre onto (95.5, 127.5)
        zoom = 95.5 / ((scale[0] * 200 - 1) / 2)
        matrix = released_affine(record["center"], record["scale"])
        for crop, full in ((record["joints_2d_gt_crop"], d2), (record["joints_2d_cpn_crop"], cpn)):
            assert crop.dtype == np.float32 and crop.shape == (17, 2)
            expected = (np.asarray(full, np.float64) - center) * zoom + [95.5, 127.5]
            np.testing.assert_allclose(crop, expected, atol=2e-3)
            # and exactly what the released label script stores
            assert np.array_equal(crop, released_crop_keypoints(full, matrix))
        # screen normalisation with the full frame's size; metres
        np.testing.assert_allclose(record["joints_2d_gt"], d2 / width * 2 - [1, height / width],
                                   rtol=1e-12)
        np.testing.assert_allclose(record["joints_2d_cpn"], cpn / width * 2 - [1, height / width],
                                   rtol=1e-6)
        np.testing.assert_allclose(record["joints_3d"], mono / 1000, rtol=1e-12)
        for key in ("joints_2d_gt", "joints_2d_cpn", "joints_3d", "joints_vis", "box"):
            assert record[key].dtype == np.float64
        assert np.array_equal(record["joints_vis"], np.ones((17, 3)))
        camera = record["camera"]
        np.testing.assert_array_equal(camera["R"], cam["R"])
        np.testing.assert_array_equal(camera["T"].ravel(), cam["T"])
        assert camera["T"].shape == (3, 1) and camera["k"].shape == (3, 1)
        assert camera["p"].shape == (2, 1) and camera["fx"].shape == (1,)
        assert (camera["fx"][0], camera["fy"][0], camera["cx"][0], camera["cy"][0]) == \
            (fx, fy, cx, cy)


def test_crop_of_the_frame_shows_the_figure_at_the_crop_keypoints(release):
    train, _ = _labels(release)
    record = train[7]
    image = cv2.imread(os.path.join(release, "images", record["image"]))
    crop = geometry.crop_image(image, record["center"], record["scale"])
    assert crop.shape == (256, 192, 3)
    expected = cv2.warpAffine(image, geometry.get_affine_transform(record["center"], record["scale"]),
                              (192, 256), flags=cv2.INTER_LINEAR)
    assert np.array_equal(crop, expected)
    assert np.all((record["joints_2d_gt_crop"] > 0) & (record["joints_2d_gt_crop"] < [191, 255]))


def test_rerun_is_idempotent(release):
    before = _hashes(release)
    _run_pipeline(release, workers=1)
    assert _hashes(release) == before


# --- user errors and the reference's skips ---------------------------------------------------------

def test_missing_subject_folder_names_the_sequence(release):
    with pytest.raises(h36m_toolbox.ToolboxError, match=r"S5 'Directions 1'.*extracted/S5.*--subjects"):
        generate_labels_h36m.generate_labels(release, [1, 5], ACTIONS)
    with pytest.raises(h36m_toolbox.ToolboxError, match=r"S5 'Directions 1'.*extracted/S5"):
        video_to_images.video_to_images(release, [5], ACTIONS, backend="opencv")


def test_missing_cdf_names_the_sequence(release_copy):
    sequence = _sequence(9, 3, 1, 2)
    os.remove(sequence.pose2d_path(release_copy))
    with pytest.raises(h36m_toolbox.ToolboxError,
                       match=r"S9 'Discussion 1' camera 58860488 \(s_09_act_03_subact_01_ca_03\).*"
                             r"2D pose file .*Discussion 1\.58860488\.cdf not found"):
        generate_labels_h36m.generate_labels(release_copy, SUBJECTS, ACTIONS)


def test_short_video_labels_only_the_frames_with_images(release, release_copy):
    sequence = _sequence(1, 3, 2, 1)
    capture = cv2.VideoCapture(sequence.video_path(release_copy))
    frames = [capture.read()[1] for _ in range(3)]
    capture.release()
    synthesize_h36m.write_video(sequence.video_path(release_copy), frames,
                                h36m.resolution(sequence.camera_index))
    done = video_to_images.video_to_images(release_copy, SUBJECTS, ACTIONS, backend="opencv")
    assert done == {sequence: 3}                        # a video newer than its frames: redone
    with pytest.warns(h36m_toolbox.ToolboxWarning,
                      match=r"S1 'Discussion' camera 55011271.*3 of 5 posed frames have an image"):
        generate_labels_h36m.generate_labels(release_copy, SUBJECTS, ACTIONS)
    train, validation = _labels(release_copy)
    ours = [r for r in train if (r["action"], r["subaction"], r["camera_id"]) == (3, 2, 1)]
    assert [r["image_id"] for r in ours] == [1, 2, 3] and all(r["nposes"] == 5 for r in ours)
    full_train, full_validation = _labels(release)
    assert len(train) == len(full_train) - 2 and len(validation) == len(full_validation)


def test_sequence_without_detections_is_skipped_with_a_warning(release, release_copy):
    path = os.path.join(release_copy, "data", "data_2d_h36m_cpn_ft_h36m_dbb.npz")
    with np.load(path, allow_pickle=True) as data:
        positions, metadata = data["positions_2d"].item(), data["metadata"].item()
    del positions["S9"][h36m.sequence_name(9, 3, 2)]       # 'Discussion 2' 
    np.savez_compressed(path, positions_2d=positions, metadata=metadata)
    with pytest.warns(h36m_toolbox.ToolboxWarning) as caught:
        generate_labels_h36m.generate_labels(release_copy, SUBJECTS, ACTIONS)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 4 and all("S9 'Discussion 2' camera" in m and "skipping" in m
                                      for m in messages)
    train, validation = _labels(release_copy)
    full_train, full_validation = _labels(release)
    assert len(train) == len(full_train)
    assert len(validation) == len(full_validation) - 4 * FRAMES
    assert not [r for r in validation if (r["action"], r["subaction"]) == (3, 2)]


def test_images_of_the_wrong_size_are_reported(release_copy):
    sequence = _sequence(9, 2, 2, 0)
    first = os.path.join(sequence.image_dir(release_copy), sequence.image_dir_name + "_000001.jpg")
    cv2.imwrite(first, np.zeros((1000, 1000, 3), np.uint8))
    with pytest.raises(h36m_toolbox.ToolboxError, match=r"S9 'Directions'.*1000x1000.*1000x1002"):
        generate_labels_h36m.generate_labels(release_copy, SUBJECTS, ACTIONS)


def test_scripts_have_help_and_exit_cleanly_on_user_errors(tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for script in ("synthesize_h36m.py", "video_to_images.py", "generate_labels_h36m.py"):
        result = subprocess.run([sys.executable, os.path.join(TOOLBOX_DIR, script), "--help"],
                                capture_output=True, text=True, env=env)
        assert result.returncode == 0 and "--root" in result.stdout and "--workers" in result.stdout
    result = subprocess.run([sys.executable, os.path.join(TOOLBOX_DIR, "generate_labels_h36m.py"),
                             "--root", str(tmp_path)], capture_output=True, text=True, env=env)
    assert result.returncode == 2
    assert "data_2d_h36m_cpn_ft_h36m_dbb.npz not found" in result.stderr
    assert "Traceback" not in result.stderr
    result = subprocess.run([sys.executable, os.path.join(TOOLBOX_DIR, "video_to_images.py"),
                             "--root", str(tmp_path), "--subjects", "11", "--actions", "4"],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "S11 'Eating 1' camera 54138969" in result.stderr and "extracted/S11" in result.stderr


def test_synthesis_cli_writes_a_release(tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, os.path.join(TOOLBOX_DIR, "synthesize_h36m.py"),
                             "--root", str(tmp_path), "--subjects", "11", "--actions", "12",
                             "--frames", "1", "--workers", "1"], capture_output=True, text=True,
                            env=env)
    assert result.returncode == 0, result.stderr
    assert os.path.isfile(tmp_path / "extracted" / "S11" / "Videos" / "Photo 1.60457274.mp4")
    with np.load(tmp_path / "data" / "data_2d_h36m_cpn_ft_h36m_dbb.npz", allow_pickle=True) as data:
        assert list(data["positions_2d"].item()["S11"]) == ["Photo 1", "Photo"]
