"""MPI-INF-3DHP-Toolbox on a small synthetic release: synthesise -> labels -> crops.

The release (S1 and S2, 2 frames per video; TS1..TS6 with 3 frames) is made once per module by
running the README's commands as written; the checks read the raw files the way the released
scripts do (scipy cells, h5py + squeeze) and recompute the labels and crops with the released
arithmetic written out in released_behaviour.py, independently of the toolbox.
"""
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

import cv2
import h5py
import numpy as np
import pytest
import scipy.io

# End-to-end runs (subprocesses, training): left out of `pytest -m "not slow"`.
pytestmark = pytest.mark.slow


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLBOX_DIR = os.path.join(REPO_ROOT, "MPI-INF-3DHP-Toolbox")
sys.path.insert(0, TOOLBOX_DIR)  # the toolbox is a folder of scripts, not a package

import generate_labels_3dhp  # noqa: E402
import mpi_toolbox  # noqa: E402
import prepare_3dhp  # noqa: E402
import prepare_images_3dhp  # noqa: E402
import synthesize_3dhp  # noqa: E402
from conftest import read_video_frames  # noqa: E402
from released_behaviour import (released_mpi_crop_image, released_mpi_crop_keypoints,  # noqa: E402
                                released_mpi_infer_box)

SUBJECTS, FRAMES, TEST_FRAMES, SEED = (1, 2), 2, 3, 0
CAMERAS = [0, 1, 2, 4, 5, 6, 7, 8]
JOINTS = [7, 5, 14, 15, 16, 9, 10, 11, 23, 24, 25, 18, 19, 20, 4, 3, 6]   # 28 -> 17, as released
TEST_NAMES = ["TS1", "TS2", "TS3", "TS4", "TS5", "TS6"]
with open(os.path.join(REPO_ROOT, "tests", "reference", "mpi_inf_3dhp", "facts.json")) as _f:
    TABLE = json.load(_f)["training_set"]       # the release's facts, not mvn's copy
INTRINSICS = TABLE["python_intrinsics_list"]    # the released list of 15 camera dicts
# The README's commands say `python`: the interpreter running the tests (its folder first on
# PATH, as in an activated virtual environment), with the repository importable.
ENV = dict(os.environ, PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
           PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))


def _readme_commands():
    with open(os.path.join(TOOLBOX_DIR, "README.md")) as f:
        (block,) = re.findall(r"```bash\n(.*?)```", f.read(), flags=re.S)
    return block


def _hashes(root):
    out = {}
    for path in sorted(glob.glob(os.path.join(glob.escape(root), "**", "*"), recursive=True)
                       + glob.glob(os.path.join(glob.escape(root), "**", ".*"), recursive=True)):
        if os.path.isfile(path):
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


def _labels(root, split):
    with np.load(os.path.join(root, "data_%s_3dhp.npz" % split), allow_pickle=True) as data:
        assert list(data.keys()) == ["data"]
        assert data["data"].shape == () and data["data"].dtype == object
        return data["data"].item()


def _annot(root, subject, sequence):
    return scipy.io.loadmat(os.path.join(root, "mpi_inf_3dhp", "S%d" % subject, "Seq%d" % sequence,
                                         "annot.mat"))


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """The README's small set, made by its commands as written (ROOT = a temporary folder)."""
    root = str(tmp_path_factory.mktemp("mpi3dhp"))
    result = subprocess.run(["bash", "-e", "-c", _readme_commands()], cwd=TOOLBOX_DIR,
                            env=dict(ENV, ROOT=root), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "frames used per sequence from %s" % os.path.join(root, "synthetic_release.json") \
        in result.stdout
    return root


@pytest.fixture
def release_copy(release, tmp_path):
    """A private copy of the prepared release for tests that change or break it."""
    root = str(tmp_path / "copy")
    shutil.copytree(release, root)
    return root


# --- the synthetic raw release ------------------------------------------------------------------

def test_synthetic_release_has_the_download_layout(release):
    for s in SUBJECTS:
        for q in (1, 2):
            folder = os.path.join(release, "mpi_inf_3dhp", "S%d" % s, "Seq%d" % q)
            assert os.path.isfile(os.path.join(folder, "annot.mat"))
            assert open(os.path.join(folder, "camera.calibration")).readline().startswith(
                "tc camera calibration")
            assert sorted(os.listdir(os.path.join(folder, "imageSequence"))) == \
                ["video_%d.avi" % c for c in CAMERAS]
    for name in TEST_NAMES:
        folder = os.path.join(release, "mpi_inf_3dhp_test_set", name)
        assert sorted(os.listdir(os.path.join(folder, "imageSequence"))) == \
            ["img_%06d.jpg" % i for i in range(1, TEST_FRAMES + 1)]
    description = json.load(open(os.path.join(release, "synthetic_release.json")))
    assert description["sequences"]["S1 Seq2"] == {"frames": FRAMES, "fps": 50, "video_frames":
                                                   FRAMES + 1, "annotation_rows": FRAMES + 3}
    assert not glob.glob(os.path.join(release, "**", ".partial.*"), recursive=True)


def test_frames_used_come_from_the_synthetic_description_or_the_table(release, tmp_path):
    assert mpi_toolbox.frames_used(release, 2, 1) == (FRAMES, 25)
    assert mpi_toolbox.frames_used(str(tmp_path), 1, 1) == (6416, 25)       # the real table
    assert mpi_toolbox.frames_used(str(tmp_path), 5, 2) == (12312, 50)
    with pytest.raises(mpi_toolbox.ToolboxError, match=r"S3 Seq1 is not in synthetic_release"):
        mpi_toolbox.frames_used(release, 3, 1)


def test_annot_mat_reads_like_the_released_script(release):
    """data['cameras'][0], data['annot2'][cam_set] -> cells (rows, 56) / (rows, 84)."""
    data = _annot(release, 2, 1)
    cameras = data["cameras"][0]
    assert [cameras[i] == i for i in range(len(cameras))] == [True] * 14
    assert data["annot2"].shape == data["annot3"].shape == data["univ_annot3"].shape == (14, 1)
    annot2, univ = data["annot2"][CAMERAS], data["univ_annot3"][CAMERAS]
    for cam_idx in range(len(annot2)):
        assert annot2[cam_idx][0].shape == (FRAMES + 3, 56)
        assert univ[cam_idx][0].shape == (FRAMES + 3, 84)
        assert annot2[cam_idx][0].dtype == univ[cam_idx][0].dtype == np.float64
    assert data["frames"].shape == (FRAMES + 3, 1)


def test_annot3_projects_onto_annot2_and_univ_annot3_does_not(release):
    data = _annot(release, 1, 2)
    ratios = []
    for camera in range(14):
        annot2 = data["annot2"][camera, 0].reshape(-1, 28, 2)
        annot3 = data["annot3"][camera, 0].reshape(-1, 28, 3)
        univ = data["univ_annot3"][camera, 0].reshape(-1, 28, 3)
        (fx, fy), (cx, cy) = INTRINSICS[camera]["focal_length"], INTRINSICS[camera]["center"]
        projected = np.stack([fx * annot3[..., 0] / annot3[..., 2] + cx,
                              fy * annot3[..., 1] / annot3[..., 2] + cy], -1)
        np.testing.assert_allclose(annot2, projected, rtol=0, atol=1e-9)
        np.testing.assert_array_equal(univ[:, 4], annot3[:, 4])            # the pelvis kept
        ratio = np.linalg.norm(univ - univ[:, 4:5], axis=-1)[:, [7, 20, 25]] / \
            np.linalg.norm(annot3 - annot3[:, 4:5], axis=-1)[:, [7, 20, 25]]
        ratios.append(ratio)
        univ_projected = np.stack([fx * univ[..., 0] / univ[..., 2] + cx,
                                   fy * univ[..., 1] / univ[..., 2] + cy], -1)
        assert np.abs(univ_projected - annot2).max() > 2.0                  # does not reproject
    ratios = np.concatenate(ratios)
    np.testing.assert_allclose(ratios, ratios.flat[0], rtol=1e-9)           # one scale per subject
    assert abs(ratios.flat[0] - 1) > 1e-3
    # y points down: the head is above the pelvis in the image and in camera coordinates
    assert np.all(annot3[:, 7, 1] < annot3[:, 4, 1])


def test_videos_have_one_frame_more_than_used_at_2048(release):
    frames = read_video_frames(os.path.join(release, "mpi_inf_3dhp", "S2", "Seq2",
                                            "imageSequence", "video_6.avi"))
    assert len(frames) == FRAMES + 1 and frames[0].shape == (2048, 2048, 3)


def test_test_set_reads_like_the_released_script(release):
    """h5py.File + np.squeeze -> (n, 17, 2), (n, 17, 3), (n,); a MATLAB 7.3 header."""
    valid_all = []
    for name in TEST_NAMES:
        path = os.path.join(release, "mpi_inf_3dhp_test_set", name, "annot_data.mat")
        with open(path, "rb") as f:
            assert f.read(10) == b"MATLAB 7.3"
        with h5py.File(path, "r") as data:
            valid = np.squeeze(data["valid_frame"][:])
            activity = np.squeeze(data["activity_annotation"][:])
            annot2 = np.squeeze(data["annot2"][:])
            annot3 = np.squeeze(data["annot3"][:])
            univ = np.squeeze(data["univ_annot3"][:])
        assert annot2.shape == (TEST_FRAMES, 17, 2) and univ.shape == (TEST_FRAMES, 17, 3)
        assert annot2.dtype == univ.dtype == np.float32
        assert valid.shape == activity.shape == (TEST_FRAMES,)
        assert set(valid) <= {0, 1} and set(activity) <= set(range(1, 8))
        valid_all.append(valid)
        image = cv2.imread(os.path.join(release, "mpi_inf_3dhp_test_set", name, "imageSequence",
                                        "img_000001.jpg"))
        table = INTRINSICS[8 if name in TEST_NAMES[:4] else 14]
        assert image.shape == (table["res_h"], table["res_w"], 3)
        # annot2 = annot3 projected with the table entry; TS5-6 with its (OpenCV) distortion
        xy = annot3[..., :2].astype(np.float64) / annot3[..., 2:3]
        k1, k2, k3 = table["radial_distortion"]
        p1, p2 = table["tangential_distortion"]
        r2 = (xy ** 2).sum(-1)
        radial = 1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3
        x, y = xy[..., 0], xy[..., 1]
        distorted = np.stack([x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
                              y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y], -1)
        expected = distorted * table["focal_length"] + table["center"]
        np.testing.assert_allclose(annot2, expected, rtol=0, atol=2e-3)
        pinhole = xy * table["focal_length"] + table["center"]
        assert (np.abs(pinhole - annot2).max() > 5) == (name in ("TS5", "TS6"))
    valid_all = np.concatenate(valid_all)
    assert 0 < valid_all.sum() < len(valid_all)                             # some invalid


# --- labels -------------------------------------------------------------------------------------

def test_train_labels_have_the_released_layout_and_values(release):
    data = _labels(release, "train")
    assert list(data) == ["S1 Seq1", "S1 Seq2", "S2 Seq1", "S2 Seq2"]
    for name, value in data.items():
        subject, sequence = int(name[1]), int(name[-1])
        assert isinstance(value, list) and len(value) == 2
        cameras, fps = value
        assert type(fps) is int and fps == TABLE["frames_used_and_fps"][name][1]
        assert list(cameras) == [str(c) for c in CAMERAS]
        annot = _annot(release, subject, sequence)
        for camera in CAMERAS:
            entry = cameras[str(camera)]
            assert list(entry) == ["data_2d", "data_2d_crop", "data_3d"]
            assert entry["data_2d"].shape == entry["data_2d_crop"].shape == (FRAMES, 17, 2)
            assert entry["data_3d"].shape == (FRAMES, 17, 3)
            assert entry["data_2d"].dtype == entry["data_2d_crop"].dtype == np.float64
            annot2 = annot["annot2"][camera, 0].reshape(-1, 28, 2)
            univ = annot["univ_annot3"][camera, 0].reshape(-1, 28, 3)
            np.testing.assert_array_equal(entry["data_2d"], annot2[:FRAMES, JOINTS])
            np.testing.assert_array_equal(entry["data_3d"], univ[:FRAMES, JOINTS])


def test_test_labels_have_the_released_layout_and_values(release):
    data = _labels(release, "test")
    assert list(data) == TEST_NAMES
    for name, entry in data.items():
        assert list(entry) == ["data_2d", "data_2d_crop", "data_3d", "valid", "activity"]
        with h5py.File(os.path.join(release, "mpi_inf_3dhp_test_set", name, "annot_data.mat"),
                       "r") as raw:
            np.testing.assert_array_equal(entry["data_2d"], np.squeeze(raw["annot2"][:]))
            np.testing.assert_array_equal(entry["data_3d"], np.squeeze(raw["univ_annot3"][:]))
            np.testing.assert_array_equal(entry["valid"], np.squeeze(raw["valid_frame"][:]))
            np.testing.assert_array_equal(entry["activity"],
                                          np.squeeze(raw["activity_annotation"][:]))
        assert entry["data_2d_crop"].dtype == entry["data_2d"].dtype == np.float32
        assert entry["data_2d_crop"].shape == (TEST_FRAMES, 17, 2)


def test_crop_keypoints_equal_the_released_arithmetic_bit_for_bit(release):
    """QUIRK Q2 by default: camera c's keypoints with the table entry at c's list position."""
    for name, (cameras, _) in _labels(release, "train").items():
        for position, camera in enumerate(CAMERAS):
            entry = cameras[str(camera)]
            expected = released_mpi_crop_keypoints(entry["data_2d"], entry["data_3d"],
                                                   INTRINSICS[position])
            assert np.array_equal(entry["data_2d_crop"], expected), (name, camera)
    for name, entry in _labels(release, "test").items():         # float32: float32 boxes
        table = INTRINSICS[8 if name in TEST_NAMES[:4] else 14]
        expected = released_mpi_crop_keypoints(entry["data_2d"], entry["data_3d"], table)
        assert expected.dtype == np.float32
        assert np.array_equal(entry["data_2d_crop"], expected), name


def test_crop_intrinsics_switch_q2(release):
    """`camera`: each camera's own entry. Equal to `position` for 0 1 2, different for 4..8."""
    job = (release, 2, 2, FRAMES, 25, "camera")
    own, _fps = generate_labels_3dhp.label_train_sequence(job)
    released, _fps = _labels(release, "train")["S2 Seq2"]
    for camera in CAMERAS:
        mine, theirs = own[str(camera)], released[str(camera)]
        same = np.array_equal(mine["data_2d_crop"], theirs["data_2d_crop"])
        assert same == (camera < 3), camera
        if camera >= 4:
            assert np.all(mine["data_2d_crop"] != theirs["data_2d_crop"])
        expected = released_mpi_crop_keypoints(mine["data_2d"], mine["data_3d"], INTRINSICS[camera])
        assert np.array_equal(mine["data_2d_crop"], expected)


def test_root_lands_near_the_crop_centre_where_intrinsics_agree(release):
    """The box centre is the projection of the pelvis + 100 mm down, the zoom 191 / (w - 1):
    the pelvis lands at x = 95.5, y ~ 127.5 - 9.6 (univ_annot3 keeps annot3's pelvis). Not for
    Q2's cameras 4..8 (offsets of several px) nor the distorted TS5/TS6 (Q10)."""
    own, _ = generate_labels_3dhp.label_train_sequence((release, 1, 1, FRAMES, 25, "camera"))
    released, _ = _labels(release, "train")["S1 Seq1"]
    for camera in CAMERAS:
        for cameras, consistent in ((own, True), (released, camera < 3)):
            entry = cameras[str(camera)]
            root_mm = entry["data_3d"][:, 14]
            f = np.array(INTRINSICS[camera]["focal_length"])
            zoom = 191 / (2000 * f[0] / root_mm[:, 2] - 1)
            expected = np.stack([np.full(FRAMES, 95.5),
                                 127.5 - 100 * f[1] / root_mm[:, 2] * zoom], -1)
            error = np.abs(entry["data_2d_crop"][:, 14] - expected).max()
            assert (error < 1e-2) if consistent else (error > 1.0), (camera, error)
    for name in TEST_NAMES[:4]:
        x, y = _labels(release, "test")[name]["data_2d_crop"][:, 14].T
        assert np.abs(x - 95.5).max() < 1e-2 and np.all((y > 110) & (y < 125))


def test_labels_of_a_single_frame_keep_the_frame_axis(tmp_path):
    """QUIRK of the released np.squeeze (a 1-frame test file loses its frame axis): not here."""
    root = str(tmp_path)
    synthesize_3dhp.synthesize(root, subjects=(), frames=1, test_frames=1, seed=3)
    entry = generate_labels_3dhp.label_test_sequence((root, "TS2"))
    assert entry["data_2d"].shape == (1, 17, 2) and entry["valid"].shape == (1,)


# --- crops --------------------------------------------------------------------------------------

def test_crops_are_the_released_crops_of_the_frames(release):
    """Every crop is 256x192; it is, byte for byte, cv2.imwrite of the released warp of the
    decoded video frame (training: the camera's own intrinsics) or test frame."""
    for name, (cameras, _) in _labels(release, "train").items():
        subject, sequence = int(name[1]), int(name[-1])
        for camera in CAMERAS:
            folder = "s_%02d_seq_%02d_ca_%02d" % (subject, sequence, camera)
            paths = [os.path.join(release, "mpi_inf_3dhp", "images", folder,
                                  "%s_%06d.jpg" % (folder, i + 1)) for i in range(FRAMES)]
            for path in paths:
                assert cv2.imread(path).shape == (256, 192, 3)
            assert sorted(n for n in os.listdir(os.path.dirname(paths[0])) if n.endswith(".jpg")) \
                == [os.path.basename(p) for p in paths]
    name, camera = "S2 Seq1", 5
    capture = cv2.VideoCapture(os.path.join(release, "mpi_inf_3dhp", "S2", "Seq1", "imageSequence",
                                            "video_%d.avi" % camera))
    data_3d = _labels(release, "train")[name][0][str(camera)]["data_3d"]
    for i in range(FRAMES):
        frame = capture.read()[1]
        crop = released_mpi_crop_image(frame, data_3d[i], INTRINSICS[camera])
        path = os.path.join(release, "mpi_inf_3dhp", "images", "s_02_seq_01_ca_05",
                            "s_02_seq_01_ca_05_%06d.jpg" % (i + 1))
        assert open(path, "rb").read() == cv2.imencode(".jpg", crop)[1].tobytes()
    capture.release()
    for name, entry in _labels(release, "test").items():
        table = INTRINSICS[8 if name in TEST_NAMES[:4] else 14]
        for i in range(TEST_FRAMES):
            frame = cv2.imread(os.path.join(release, "mpi_inf_3dhp_test_set", name,
                                            "imageSequence", "img_%06d.jpg" % (i + 1)))
            crop = released_mpi_crop_image(frame, entry["data_3d"][i], table)
            path = os.path.join(release, "mpi_inf_3dhp_test_set", "images", name,
                                "%s_%06d.jpg" % (name, i + 1))
            assert open(path, "rb").read() == cv2.imencode(".jpg", crop)[1].tobytes()


def test_crops_show_the_figure_at_the_keypoints(release):
    """Against the empty room's crop: the figure covers its pelvis and spine, not the corners."""
    entry = _labels(release, "train")["S1 Seq2"][0]["0"]
    image = cv2.imread(os.path.join(release, "mpi_inf_3dhp", "images", "s_01_seq_02_ca_00",
                                    "s_01_seq_02_ca_00_000001.jpg"))
    room = released_mpi_crop_image(synthesize_3dhp.background(SEED, 0), entry["data_3d"][0],
                                   INTRINSICS[0])
    difference = np.abs(image.astype(int) - room.astype(int)).sum(-1)
    for joint in (14, 15):
        x, y = np.round(entry["data_2d_crop"][0, joint]).astype(int)
        assert difference[y, x] > 60, joint
    assert np.median(difference[:20, :20]) < 20 and np.median(difference[-20:, -20:]) < 20


def test_released_box_is_the_one_of_mvn(release):
    """mvn.mpi_inf_3dhp.crop_center_scale == the released _infer_box's c, s, in both dtypes."""
    from mvn.mpi_inf_3dhp import facts as mpi
    entry = _labels(release, "test")["TS3"]
    for data_3d in (entry["data_3d"], entry["data_3d"].astype(np.float64)):
        center, scale = mpi.crop_center_scale(data_3d[:, 14], 8)
        for i in range(len(data_3d)):
            box = released_mpi_infer_box(data_3d[i], INTRINSICS[8])
            assert box.dtype == center.dtype == data_3d.dtype
            assert center[i].tolist() == [0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])]
            assert scale[i].tolist() == [(box[2] - box[0]) / 200.0, (box[3] - box[1]) / 200.0]


def test_via_full_frames_is_the_released_route(release, release_copy):
    """Full frames first (the video's every frame), the used ones cropped in place, the extra
    frame kept full size (Q13); crops within JPEG error of the direct route's."""
    done = prepare_images_3dhp.prepare_images(release_copy, ["train"], via_full_frames=True,
                                              backend="opencv")
    assert done == {"train": len(SUBJECTS) * 2 * len(CAMERAS) * FRAMES}
    folder = "s_01_seq_02_ca_07"
    names = sorted(n for n in os.listdir(os.path.join(release_copy, "mpi_inf_3dhp", "images",
                                                      folder)) if n.endswith(".jpg"))
    assert names == ["%s_%06d.jpg" % (folder, i) for i in range(1, FRAMES + 2)]
    path = lambda root, i: os.path.join(root, "mpi_inf_3dhp", "images", folder,  # noqa: E731
                                        "%s_%06d.jpg" % (folder, i))
    assert cv2.imread(path(release_copy, FRAMES + 1)).shape == (2048, 2048, 3)
    for i in range(1, FRAMES + 1):
        via, direct = cv2.imread(path(release_copy, i)), cv2.imread(path(release, i))
        assert via.shape == (256, 192, 3)
        assert np.abs(via.astype(int) - direct.astype(int)).mean() < 3.0
    done = prepare_images_3dhp.prepare_images(release_copy, ["train"], via_full_frames=True,
                                              backend="opencv")
    assert done == {"train": 0}


# --- reruns -------------------------------------------------------------------------------------

def test_rerun_skips_everything_and_changes_nothing(release_copy, capsys):
    before = _hashes(release_copy)
    prepare_3dhp.make_tiny_dataset(release_copy, frames=FRAMES, test_frames=TEST_FRAMES,
                                   subjects=SUBJECTS, seed=SEED)
    output = capsys.readouterr().out
    assert "0 training and 0 test sequence(s) written, 4 and 6 already complete" in output
    assert output.count("is up to date") == 2
    assert "0 frames cropped in 0 folder(s), 32 folder(s) already complete" in output
    assert _hashes(release_copy) == before


def test_interrupted_work_is_redone_identically(release_copy):
    before = _hashes(release_copy)
    folder = os.path.join(release_copy, "mpi_inf_3dhp", "images", "s_02_seq_02_ca_01")
    os.remove(os.path.join(folder, prepare_images_3dhp.MARKER))          # killed mid-folder
    os.remove(os.path.join(folder, "s_02_seq_02_ca_01_000002.jpg"))
    os.remove(os.path.join(release_copy, "mpi_inf_3dhp", "S1", "Seq2", "annot.mat"))
    os.remove(os.path.join(release_copy, "mpi_inf_3dhp_test_set", "TS4", "annot_data.mat"))
    release = synthesize_3dhp.synthesize(release_copy, SUBJECTS, FRAMES, TEST_FRAMES, SEED)
    assert release["sequences"]["S1 Seq2"]["frames"] == FRAMES
    results = generate_labels_3dhp.generate_labels(release_copy)
    assert results["train"][1] and results["test"][1]        # inputs rewritten: labels redone
    done = prepare_images_3dhp.prepare_images(release_copy)
    # the folder cut short, and those of S1 Seq2, whose videos were written again
    assert done == {"train": FRAMES + len(CAMERAS) * FRAMES, "test": 0}
    unchanged = lambda hashes: {k: v for k, v in hashes.items()  # noqa: E731
                                if not k.endswith(".npz.json")}  # they record the input times
    assert unchanged(_hashes(release_copy)) == unchanged(before)


def test_other_synthesis_options_are_refused(release):
    with pytest.raises(mpi_toolbox.ToolboxError, match=r"made with --seed 0 --frames 2 "
                                                       r"--test-frames 3"):
        synthesize_3dhp.synthesize(release, SUBJECTS, FRAMES + 1, TEST_FRAMES, SEED)


# --- user errors --------------------------------------------------------------------------------

def test_missing_video_is_named(release_copy):
    shutil.rmtree(os.path.join(release_copy, "mpi_inf_3dhp", "images", "s_01_seq_01_ca_05"))
    os.remove(os.path.join(release_copy, "mpi_inf_3dhp", "S1", "Seq1", "imageSequence",
                           "video_5.avi"))
    with pytest.raises(mpi_toolbox.ToolboxError,
                       match=r"S1 Seq1 camera 5: video .*S1/Seq1/imageSequence/video_5\.avi not "
                             r"found: unzip vnect_cameras\.zip"):
        prepare_images_3dhp.prepare_images(release_copy)


def test_short_video_is_named(release_copy):
    path = os.path.join(release_copy, "mpi_inf_3dhp", "S2", "Seq1", "imageSequence", "video_2.avi")
    capture = cv2.VideoCapture(path)
    frame = capture.read()[1]
    capture.release()
    synthesize_3dhp.write_video(path, [frame], 25)
    with pytest.raises(mpi_toolbox.ToolboxError,
                       match=r"S2 Seq1 camera 2: video .*video_2\.avi has 1 frames but the labels "
                             r"use 2"):
        prepare_images_3dhp.prepare_images(release_copy, ["train"])


def test_missing_test_frame_is_named(release_copy):
    shutil.rmtree(os.path.join(release_copy, "mpi_inf_3dhp_test_set", "images", "TS6"))
    os.remove(os.path.join(release_copy, "mpi_inf_3dhp_test_set", "TS6", "imageSequence",
                           "img_000002.jpg"))
    with pytest.raises(mpi_toolbox.ToolboxError, match=r"TS6: frame .*img_000002\.jpg not found"):
        prepare_images_3dhp.prepare_images(release_copy, ["test"])


@pytest.mark.parametrize("stray", ["mpi_inf_3dhp/S1/notes.mat",
                                   "mpi_inf_3dhp/S1/Seq1/annot_old.mat",
                                   "mpi_inf_3dhp/S12/Seq1/annot.mat",
                                   "mpi_inf_3dhp_test_set/TS1/backup.mat"])
def test_stray_mat_files_are_refused_not_misread_q13(release_copy, stray):
    path = os.path.join(release_copy, stray)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    shutil.copy(os.path.join(release_copy, "mpi_inf_3dhp", "S1", "Seq1", "annot.mat"), path)
    with pytest.raises(mpi_toolbox.ToolboxError,
                       match=r"%s: unexpected MATLAB file.*move it out" % re.escape(path)):
        generate_labels_3dhp.generate_labels(release_copy)


def test_fewer_annotation_rows_than_frames_used_is_named(release_copy):
    description_path = os.path.join(release_copy, "synthetic_release.json")
    description = json.load(open(description_path))
    description["sequences"]["S2 Seq2"]["frames"] = FRAMES + 4
    json.dump(description, open(description_path, "w"))
    with pytest.raises(mpi_toolbox.ToolboxError, match=r"S2 Seq2 camera 0: .*annot\.mat has 5 "
                                                       r"annotation rows but 6 frames are used"):
        generate_labels_3dhp.generate_labels(release_copy, ["train"])


def test_scripts_have_help_and_exit_with_one_line_on_user_errors(tmp_path):
    for script in ("synthesize_3dhp.py", "generate_labels_3dhp.py", "prepare_images_3dhp.py",
                   "prepare_3dhp.py"):
        result = subprocess.run([sys.executable, os.path.join(TOOLBOX_DIR, script), "--help"],
                                capture_output=True, text=True, env=ENV)
        assert result.returncode == 0 and "--root" in result.stdout and "--workers" in result.stdout
    for script, expected in (("generate_labels_3dhp.py", "mpi_inf_3dhp not found"),
                             ("prepare_images_3dhp.py", "data_train_3dhp.npz not found: run "
                                                        "generate_labels_3dhp.py")):
        result = subprocess.run([sys.executable, os.path.join(TOOLBOX_DIR, script), "--root",
                                 str(tmp_path)], capture_output=True, text=True, env=ENV)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("error: ") and expected in line
