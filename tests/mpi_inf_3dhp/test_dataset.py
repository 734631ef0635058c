"""MPI-INF-3DHP label files read as the released loader reads them, and the evaluation the
training loop runs (the released number, Q5, the export), each against an independent
recomputation in the test."""
import os
import zipfile

import numpy as np
import pytest
import torch

from mvn.mpi_inf_3dhp import matfile
from mvn.mpi_inf_3dhp import metrics as metrics_3dhp
from mvn.mpi_inf_3dhp import facts as mpi
from mvn.datasets.label_files import LabelError
from mvn.mpi_inf_3dhp.dataset import MpiLabels, load_test_labels, load_train_labels
from mvn.mpi_inf_3dhp.protocol import evaluate_predictions, save_evaluation


def crop_of(data_2d, data_3d, intrinsics_index):
    """The label script's crop keypoints: the box from the 3D pelvis, one affine per frame."""
    center, scale = mpi.crop_center_scale(data_3d[:, mpi.ROOT_JOINT], intrinsics_index)
    return mpi.crop_keypoints(data_2d, mpi.crop_affines(center, scale))


def random_entry(rng, n, intrinsics_index=0):
    data_3d = rng.normal(0, 300, (n, 17, 3)) + [100, -200, 4000]
    data_2d = rng.uniform(0, 2048, (n, 17, 2))
    return {"data_2d": data_2d, "data_2d_crop": crop_of(data_2d, data_3d, intrinsics_index),
            "data_3d": data_3d}


def test_training_labels_as_the_released_loader_makes_them(tmp_path):
    rng = np.random.default_rng(0)
    data = {"S2 Seq1": [{"0": random_entry(rng, 3), "5": random_entry(rng, 3)}, 25],
            "S1 Seq2": [{"8": random_entry(rng, 2)}, 50]}
    path = str(tmp_path / "data_train_3dhp.npz")
    np.savez_compressed(path, data=data)
    labels = load_train_labels(path)
    assert len(labels) == 8
    entry = data["S2 Seq1"][0]["5"]  # the second camera: rows 3..5
    rows = slice(3, 6)
    # 2D: xy / 2048 * 2 - [1, 1]
    expected_2d = (entry["data_2d"] / 2048 * 2 - 1).astype(np.float32)
    np.testing.assert_array_equal(labels.keypoints_2d[rows], expected_2d)
    np.testing.assert_array_equal(labels.keypoints_2d_crop[rows],
                                  entry["data_2d_crop"].astype(np.float32))
    # 3D: every joint minus the pelvis (joint 14) in float64, the pelvis row 0
    relative = entry["data_3d"].copy()
    for j in range(17):
        if j != 14:
            relative[:, j] = entry["data_3d"][:, j] - entry["data_3d"][:, 14]
    relative[:, 14] = 0
    np.testing.assert_array_equal(labels.keypoints_3d[rows], relative.astype(np.float32))
    assert [labels.describe(i) for i in (0, 3, 7)] == \
        ["S2 Seq1 camera 0 frame 1", "S2 Seq1 camera 5 frame 1", "S1 Seq2 camera 8 frame 2"]
    assert labels.image_path(7) == os.path.join(
        "mpi_inf_3dhp", "images", "s_01_seq_02_ca_08", "s_01_seq_02_ca_08_000002.jpg")


def test_label_files_of_another_crop_size_are_refused(tmp_path):
    """Crop keypoints of a 288x384 crop (the same boxes, a larger crop) are refused, naming the
    file, the entry and the command; those of either reading of a camera's intrinsics (Q2) load."""
    rng = np.random.default_rng(2)
    entry = random_entry(rng, 4, intrinsics_index=mpi.TRAIN_CAMERAS.index(5))  # Q2's reading
    path = str(tmp_path / "data_train_3dhp.npz")
    np.savez_compressed(path, data={"S1 Seq1": [{"5": entry}, 25]})
    assert len(load_train_labels(path)) == 4
    entry["data_2d_crop"] = crop_of(entry["data_2d"], entry["data_3d"], 5)  # the camera's own
    np.savez_compressed(path, data={"S1 Seq1": [{"5": entry}, 25]})
    assert len(load_train_labels(path)) == 4
    entry["data_2d_crop"] = entry["data_2d_crop"] * (384 / 256)
    np.savez_compressed(path, data={"S1 Seq1": [{"5": entry}, 25]})
    with pytest.raises(LabelError, match=r"S1 Seq1 camera 5.*256x192 crops.*generate_labels_3dhp"):
        load_train_labels(path)
    test_entry = random_entry(rng, 3, mpi.sequence_intrinsics_index("TS2"))
    test_entry["valid"] = np.ones(3)
    test_entry["activity"] = np.ones(3)
    test_entry["data_2d_crop"][1, 4] += 3.0  # one joint 3 px off
    test_path = str(tmp_path / "data_test_3dhp.npz")
    np.savez_compressed(test_path, data={"TS2": test_entry})
    with pytest.raises(LabelError, match=r"data_test_3dhp.npz \(TS2\).* up to 3.0 px"):
        load_test_labels(test_path, str(tmp_path))


def test_test_labels_valid_frames_q10_resolution_and_activities(tmp_path):
    """Only valid frames, in order; TS5/TS6 2D normalised with 1920x1080 (QUIRK Q10), the others
    with 2048x2048; a label file of the released script (no 'activity') takes the activities
    from the test set's annot_data.mat."""
    rng = np.random.default_rng(1)
    data = {}
    for k in (1, 5):
        entry = random_entry(rng, 5, mpi.sequence_intrinsics_index("TS%d" % k))
        entry["valid"] = np.array([1, 0, 1, 1, 0])
        data["TS%d" % k] = entry
        folder = tmp_path / "mpi_inf_3dhp_test_set" / ("TS%d" % k)
        folder.mkdir(parents=True)
        matfile.write_v73(str(folder / "annot_data.mat"),
                          {"activity_annotation": np.array([[3.0, 4, 5, 6, 7]]).T})
    path = str(tmp_path / "data_test_3dhp.npz")
    np.savez_compressed(path, data=data)
    labels = load_test_labels(path, str(tmp_path))
    assert len(labels) == 6
    assert labels.frame.tolist() == [0, 2, 3, 0, 2, 3]
    assert labels.sequence.tolist() == [1, 1, 1, 5, 5, 5]
    assert labels.activity.tolist() == [3, 5, 6, 3, 5, 6]
    ts5 = data["TS5"]["data_2d"][[0, 2, 3]]
    expected = np.stack([ts5[..., 0] / 1920 * 2 - 1, ts5[..., 1] / 1920 * 2 - 1080 / 1920], -1)
    np.testing.assert_array_equal(labels.keypoints_2d[3:], expected.astype(np.float32))
    ts1 = data["TS1"]["data_2d"][[0, 2, 3]]
    np.testing.assert_array_equal(labels.keypoints_2d[:3], (ts1 / 2048 * 2 - 1).astype(np.float32))
    assert labels.image_path(4) == os.path.join(
        "mpi_inf_3dhp_test_set", "images", "TS5", "TS5_000003.jpg")


def test_label_files_that_cannot_be_used(tmp_path):
    missing = str(tmp_path / "none.npz")
    with pytest.raises(LabelError, match="does not exist.*MPI-INF-3DHP-Toolbox"):
        load_train_labels(missing)
    # a pickle that would run code when loaded with allow_pickle=True is refused
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))
    evil = np.empty((), dtype=object)
    evil[()] = {"S1 Seq1": Evil()}
    path = str(tmp_path / "evil.npz")
    with zipfile.ZipFile(path, "w") as archive, archive.open("data.npy", "w") as f:
        np.lib.format.write_array(f, evil, allow_pickle=True)
    with pytest.raises(LabelError, match="could not be read"):
        load_train_labels(path)
    rng = np.random.default_rng(2)
    test_like = str(tmp_path / "test.npz")
    entry = random_entry(rng, 2)
    entry["valid"] = np.ones(2)
    np.savez_compressed(test_like, data={"TS1": entry})
    with pytest.raises(LabelError, match="is not a training sequence"):
        load_train_labels(test_like)
    bad = random_entry(rng, 3)
    bad["data_3d"][1, 4, 2] = np.nan
    np.savez_compressed(str(tmp_path / "nan.npz"), data={"S1 Seq1": [{"0": bad}, 25]})
    with pytest.raises(LabelError, match="S1 Seq1 camera 0 'data_3d' is not finite in 1 "
                                         "frame.*rows 2"):
        load_train_labels(str(tmp_path / "nan.npz"))


def test_labels(n_per_sequence=(4, 3, 2, 3, 2, 4), seed=3):
    rng = np.random.default_rng(seed)
    n = sum(n_per_sequence)
    sequence = np.repeat(np.arange(1, 7), n_per_sequence)
    return MpiLabels(keypoints_2d=np.zeros((n, 17, 2), np.float32),
                     keypoints_2d_crop=np.zeros((n, 17, 2), np.float32),
                     keypoints_3d=np.zeros((n, 17, 3), np.float32),
                     sequence=sequence.astype(np.int16), camera=np.full(n, -1, np.int16),
                     frame=np.arange(n, dtype=np.int32),
                     activity=rng.integers(1, 8, n).astype(np.int16),
                     record=np.arange(n, dtype=np.int64))


test_labels.__test__ = False  # a helper, not a test


@pytest.mark.parametrize("root_in_mpjpe", [True, False])
def test_the_released_number_q5_and_the_tables(tmp_path, root_in_mpjpe):
    """p1: the flip-averaged prediction's pelvis set to 0, then the frame-weighted mean of the
    17-joint mean (QUIRK Q5; 16 joints with val.root_in_mpjpe=false); with the root it equals
    the MATLAB activitywise 'All' Average. The export holds the predictions per sequence."""
    labels = test_labels()
    n = len(labels)
    g = torch.Generator().manual_seed(0)
    targets = torch.randn(n, 17, 3, generator=g) * 100
    targets[:, 14] = 0
    predictions = targets + torch.randn(n, 17, 3, generator=g) * 30
    errors, zeroed = evaluate_predictions(predictions, targets, labels, root_in_mpjpe)
    assert torch.all(zeroed[:, 14] == 0) and torch.equal(zeroed[:, :14], predictions[:, :14])
    joints = range(17) if root_in_mpjpe else [j for j in range(17) if j != 14]
    per_frame = []
    for i in range(n):
        distances = [float(np.linalg.norm(zeroed[i, j].double() - targets[i, j].double()))
                     for j in joints]
        per_frame.append(sum(distances) / len(distances))
    assert errors["average"]["p1"] == pytest.approx(sum(per_frame) / n, rel=1e-9)
    assert errors["average"]["frames"] == n
    result = errors["mpi_inf_3dhp"]
    if root_in_mpjpe:
        assert result.overall["mpjpe_mm"] == pytest.approx(errors["average"]["p1"], rel=1e-6)
    else:
        assert errors["average"]["p1"] == pytest.approx(result.overall["mpjpe_mm"] * 17 / 16,
                                                        rel=1e-6)
    folder = save_evaluation(errors, str(tmp_path / "eval"))
    loaded = metrics_3dhp.load_inference_data(os.path.join(folder, "inference_data.mat"))
    for k in range(1, 7):
        rows = labels.sequence == k
        np.testing.assert_array_equal(loaded["TS%d" % k], zeroed[rows].numpy())
    for name in ("mpii_3dhp_evaluation_sequencewise.csv", "mpii_3dhp_evaluation_activitywise.csv"):
        assert os.path.isfile(os.path.join(folder, name))
    assert mpi.ROOT_JOINT == 14
