"""Stage 1 and the detections command on MPI-INF-3DHP (the synthetic release): the benchmark's
truth_2d is annot2 in each crop image's pixels, the detector trains and is scored per test
sequence through train.py, and MPI-INF-3DHP-Toolbox/detect_2d_3dhp.py writes its joints as label
columns that dataset.keypoints_2d trains CA-PF on."""
import json
import os
import shutil
import sys

import numpy as np
import pytest

import train as train_cli
from conftest import REPO_ROOT
from test_detect_2d import decoded_joints
from test_train import only_folder
from test_train_3dhp import options
from mvn.benchmarks import build_dataset
from mvn.config import load_config
from mvn.detector import HeatmapDetector, load_detector_weights
from mvn.models import build_backbone
from mvn.mpi_inf_3dhp import facts as mpi
from mvn.mpi_inf_3dhp.benchmark import BENCHMARK as MPI
from mvn.mpi_inf_3dhp.dataset import MpiInf3dhpDataset, read_label_npz

sys.path.insert(0, os.path.join(REPO_ROOT, "MPI-INF-3DHP-Toolbox"))
import detect_2d_3dhp  # noqa: E402

pytestmark = pytest.mark.slow

CONFIG = os.path.join(REPO_ROOT, "experiments", "synthetic", "mpi_detector_tiny.yaml")
CAPF_CONFIG = os.path.join(REPO_ROOT, "experiments", "synthetic", "mpi_tiny.yaml")


def label_entry(data, labels, index):
    """The label file entry of sample `index` and its row there."""
    sequence, camera = int(labels.sequence[index]), int(labels.camera[index])
    if camera < 0:
        return data["TS%d" % sequence], int(labels.frame[index])
    return data["S%d Seq%d" % divmod(sequence, 10)][0][str(camera)], int(labels.frame[index])


def image_box(entry, row, intrinsics_index):
    """(centre (2,), zoom k) of the crop image of one label row, from the published recipe
    (docs: the crop box): pelvis R of data_3d, corners R + (-1000, -900, 0) and R + (1000, 1100,
    0) mm through the pinhole of the intrinsics entry; k = 191 / (box width - 1)."""
    fx, fy, cx, cy = mpi.INTRINSICS[intrinsics_index]
    root = np.asarray(entry["data_3d"], np.float64)[row, 14]
    corners = [root + (-1000, -900, 0), root + (1000, 1100, 0)]
    uv = np.array([[fx * x / z + cx, fy * y / z + cy] for x, y, z in corners])
    return uv.mean(0), 191 / (uv[1, 0] - uv[0, 0] - 1)


def to_crop(points_px, center, zoom):
    return (points_px - center) * zoom + np.array([95.5, 127.5])


def intrinsics_of(labels, index):
    """The camera's own entry (training), cam_8 / the GoPro (test)."""
    camera = int(labels.camera[index])
    return camera if camera >= 0 else mpi.sequence_intrinsics_index("TS%d" % labels.sequence[index])


@pytest.mark.parametrize("split", ["train", "val"])
def test_truth_2d_is_annot2_in_each_crop_images_pixels(synthetic_3dhp, split):
    root = synthetic_3dhp
    path = os.path.join(root, mpi.LABEL_FILES["train" if split == "train" else "test"])
    dataset = MpiInf3dhpDataset(root, path, split)
    truth_crop, crop_to_frame = MPI.truth_2d(dataset)
    data = read_label_npz(path)
    labels = dataset.labels
    q2_px, annot2 = [], []
    for index in range(len(dataset)):
        entry, row = label_entry(data, labels, index)
        center, zoom = image_box(entry, row, intrinsics_of(labels, index))
        annot2.append(np.asarray(entry["data_2d"], np.float64)[row])  # (17, 2) full frame
        np.testing.assert_allclose(truth_crop[index], to_crop(annot2[-1], center, zoom),
                                   atol=1e-3)
        np.testing.assert_allclose(crop_to_frame[index, :, :2] @ truth_crop[index].T
                                   + crop_to_frame[index, :, 2:], annot2[-1].T, atol=1e-3)
        q2_px.append(np.abs(truth_crop[index] - entry["data_2d_crop"][row]).max())
    np.testing.assert_allclose(MPI.ground_truth_2d_px(dataset, np.arange(len(dataset))),
                               np.stack(annot2), atol=1e-3)
    q2_px = np.array(q2_px)
    shifted = np.isin(labels.camera, (4, 5, 6, 7, 8))  # QUIRK Q2 (the default labels)
    assert q2_px[~shifted].max() < 1e-3
    assert split == "val" or q2_px[shifted].min() > 1.0


@pytest.fixture(scope="module")
def trained_detector(synthetic_3dhp, tmp_path_factory):
    logdir = str(tmp_path_factory.mktemp("detector_3dhp"))
    assert train_cli.main(["--config", CONFIG, "--logdir", logdir, "--device", "cpu", "--opts"]
                          + options(synthetic_3dhp, **{"train.batch_size": 2,
                                                       "train.max_steps_per_epoch": 1,
                                                       "dataset.val_frame_stride": 2})) == 0
    return synthetic_3dhp, only_folder(logdir)


def test_train_py_trains_the_detector_and_scores_it_per_test_sequence(trained_detector):
    root, folder = trained_detector
    with open(os.path.join(folder, "best_evaluation.json")) as f:
        table = json.load(f)
    val = MpiInf3dhpDataset(root, os.path.join(root, mpi.LABEL_FILES["test"]), "val",
                            frame_stride=2)
    assert set(table["groups"]) == {"TS%d" % s for s in np.unique(val.labels.sequence)}
    for name, row in table["groups"].items():
        assert row["frames"] == int((val.labels.sequence == int(name[2:])).sum())
    assert table["average"]["frames"] == len(val)
    mean = sum(r["frames"] * r["mean_px"] for r in table["groups"].values()) / len(val)
    assert table["average"]["mean_px"] == pytest.approx(mean, rel=1e-12)
    assert os.path.isfile(os.path.join(folder, "checkpoints", "backbone.pth"))


def small_copy(root, destination):
    """A copy of the release whose label files hold fewer entries: S1 Seq1 cameras 0 and 8 (Q2
    shifts the latter's data_2d_crop), TS1 and TS5 (1920x1080, distorted)."""
    shutil.copytree(root, destination)
    for key, keep in (("train", None), ("test", ("TS1", "TS5"))):
        path = os.path.join(destination, mpi.LABEL_FILES[key])
        data = read_label_npz(path)
        if keep is None:
            cameras, fps = data["S1 Seq1"]
            data = {"S1 Seq1": [{c: cameras[c] for c in ("0", "8")}, fps]}
        else:
            data = {name: data[name] for name in keep}
        with open(path, "wb") as f:
            np.savez_compressed(f, data=data)
    return destination


def arguments(root, weights):
    return ["--root", root, "--weights", weights, "--name", "tiny", "--backbone", "hrnet_tiny",
            "--no-flip-test", "--batch-size", "2", "--chunk-frames", "2", "--workers", "0"]


@pytest.fixture(scope="module")
def detected(trained_detector, tmp_path_factory):
    """(a small release after one detections run with the trained detector, the weights)."""
    root, folder = trained_detector
    small = small_copy(root, str(tmp_path_factory.mktemp("detect_3dhp") / "straight"))
    weights = os.path.join(folder, "checkpoints", "backbone.pth")
    detect_2d_3dhp.main(arguments(small, weights))
    return small, weights


@pytest.mark.parametrize("split, key", [("train", "train"), ("val", "test")])
def test_the_columns_hold_the_detectors_joints(detected, split, key):
    root, weights = detected
    model = HeatmapDetector(build_backbone("hrnet_tiny"), 17).eval()
    load_detector_weights(model, weights)
    path = os.path.join(root, mpi.LABEL_FILES[key])
    data = read_label_npz(path)
    dataset = MpiInf3dhpDataset(root, path, split)
    labels = dataset.labels
    for index in range(len(dataset)):
        entry, row = label_entry(data, labels, index)
        crop = entry["data_2d_tiny_crop"][row]
        if index in (0, len(dataset) - 1):  # training: cameras 0 and 8; test: TS1 and TS5
            np.testing.assert_allclose(crop, decoded_joints(model, dataset.load_crop(index)),
                                       atol=1e-4)
        center, zoom = image_box(entry, row, intrinsics_of(labels, index))
        np.testing.assert_allclose(to_crop(entry["data_2d_tiny"][row], center, zoom), crop,
                                   atol=2e-3)
        assert entry["data_2d_tiny"].dtype == entry["data_2d"].dtype
    if split == "val":  # test frames not marked valid are no sample: NaN
        for entry in data.values():
            invalid = np.asarray(entry["valid"]).reshape(-1) != 1
            assert invalid.any() and np.isnan(entry["data_2d_tiny"][invalid]).all()
            assert np.isfinite(entry["data_2d_tiny_crop"][~invalid]).all()
    # dataset.keypoints_2d=tiny: those joints are the inputs, the ground truth stays
    selected = MpiInf3dhpDataset(root, path, split, keypoints_2d="tiny")
    rows = [label_entry(data, labels, i) for i in range(len(dataset))]
    np.testing.assert_array_equal(selected.labels.keypoints_2d_crop,
                                  np.stack([e["data_2d_tiny_crop"][r] for e, r in rows]))
    w, h = (mpi.TRAIN_RESOLUTION if split == "train" else
            mpi.sequence_resolution("TS%d" % labels.sequence[0]))
    np.testing.assert_allclose(selected.labels.keypoints_2d[0],
                               np.asarray(rows[0][0]["data_2d_tiny"][rows[0][1]]) / w * 2
                               - [1, h / w], atol=1e-6)
    np.testing.assert_array_equal(selected.labels.keypoints_2d_truth_crop,
                                  labels.keypoints_2d_truth_crop)


def test_capf_trains_on_the_3dhp_detections(detected, tmp_path):
    root, _ = detected
    opts = options(root, **{"train.batch_size": 2, "train.max_steps_per_epoch": 1,
                            "dataset.keypoints_2d": "tiny"})
    config = load_config(CAPF_CONFIG, opts)
    data = read_label_npz(os.path.join(root, mpi.LABEL_FILES["test"]))
    val = build_dataset(config, "val")
    np.testing.assert_array_equal(val.labels.keypoints_2d_crop, np.concatenate(
        [data[name]["data_2d_tiny_crop"][data[name]["valid"].reshape(-1) == 1]
         for name in ("TS1", "TS5")]))
    logdir = str(tmp_path / "logs")
    assert train_cli.main(["--config", CAPF_CONFIG, "--logdir", logdir, "--device", "cpu",
                           "--opts"] + opts) == 0
    assert train_cli.main(["--config", CAPF_CONFIG, "--logdir", logdir, "--device", "cpu",
                           "--opts"] + opts[:-1] + ["dataset.keypoints_2d=nothere"]) == 2
