"""H36M-Toolbox/detect_2d.py: a detector's 2D joints of every labelled frame as label columns and
as VideoPose3D's npz, resumable; dataset.keypoints_2d trains CA-PF on them."""
import os
import pickle
import shutil
import sys

import cv2
import numpy as np
import pytest
import torch

import train as train_cli
from conftest import REPO_ROOT
from mvn import detections, geometry
from mvn.batch import prepare_images
from mvn.datasets.label_files import read_npz_array
from mvn.detector import HeatmapDetector, backbone_file_state
from mvn.human36m import facts as h36m
from mvn.human36m.dataset import Human36MDataset
from mvn.human36m.labels import load_label_columns
from mvn.models import build_backbone

sys.path.insert(0, os.path.join(REPO_ROOT, "H36M-Toolbox"))
import detect_2d  # noqa: E402

pytestmark = pytest.mark.slow


def arguments(root, weights):
    return ["--root", root, "--weights", weights, "--name", "tiny", "--backbone", "hrnet_tiny",
            "--no-flip-test", "--batch-size", "4", "--chunk-frames", "8", "--workers", "0"]


@pytest.fixture(scope="module")
def detected(synthetic_h36m, tmp_path_factory):
    """(the toolbox root after one uninterrupted run, the weights, the model)."""
    base = tmp_path_factory.mktemp("detect")
    torch.manual_seed(0)
    model = HeatmapDetector(build_backbone("hrnet_tiny"), 17).eval()
    weights = str(base / "backbone.pth")
    torch.save(backbone_file_state(model), weights)
    root = str(base / "straight")
    shutil.copytree(synthetic_h36m, root)
    for split in ("train", "val"):  # every 4th record: 24 frames per split
        path = os.path.join(root, h36m.LABEL_FILES[split])
        with open(path, "rb") as f:
            records = pickle.load(f)[::4]
        with open(path, "wb") as f:
            pickle.dump(records, f, protocol=4)
    detect_2d.main(arguments(root, weights))
    return root, weights, model


def decoded_joints(model, crop_bgr):
    """(17, 2) crop pixels, recomputed here: the heatmaps of one crop (the tiny HRNet, no flip
    test), argmax + a quarter pixel towards the higher neighbour, x 4."""
    images = prepare_images(torch.from_numpy(crop_bgr)[None], "hrnet_tiny")
    with torch.no_grad():
        heatmaps = model(images)[0].numpy()  # (17, 64, 48)
    joints = np.zeros((17, 2))
    for joint in range(17):
        y, x = np.unravel_index(np.argmax(heatmaps[joint]), heatmaps[joint].shape)
        expected = np.array([x, y], np.float64)
        if 1 < x < 47 and 1 < y < 63:
            expected += 0.25 * np.sign([heatmaps[joint, y, x + 1] - heatmaps[joint, y, x - 1],
                                        heatmaps[joint, y + 1, x] - heatmaps[joint, y - 1, x]])
        joints[joint] = expected * 4
    return joints


def interrupted_after(monkeypatch, saves, run):
    """`run()` stopped by a KeyboardInterrupt when it is about to save its chunk `saves` + 1
    (the chunks before it saved)."""
    calls = []
    original = detections.save_atomic

    def interrupt(path, array):
        if len(calls) == saves:
            raise KeyboardInterrupt
        calls.append(path)
        original(path, array)

    with monkeypatch.context() as patch:
        patch.setattr(detections, "save_atomic", interrupt)
        with pytest.raises(KeyboardInterrupt):
            run()


def test_columns_hold_the_detectors_joints(detected):
    root, _, model = detected
    path = os.path.join(root, h36m.LABEL_FILES["val"])
    columns = load_label_columns(path, keypoints_2d="tiny")
    cpn = load_label_columns(path)
    assert not np.array_equal(columns.keypoints_2d_crop, cpn.keypoints_2d_crop)
    np.testing.assert_array_equal(columns.keypoints_3d, cpn.keypoints_3d)  # the rest unchanged
    dataset = Human36MDataset(os.path.join(root, "images"), path)
    for index in (0, len(dataset) - 1):
        np.testing.assert_allclose(columns.keypoints_2d_crop[index],
                                   decoded_joints(model, dataset.load_crop(index)), atol=1e-5)
    # full frame: the crop joints mapped back through the label's box, screen-normalised
    for index in (0, 5):
        width, height = h36m.resolution(int(columns.camera_id[index]))
        inverse = cv2.invertAffineTransform(
            geometry.get_affine_transform(columns.center[index], columns.scale[index]))
        frame_px = geometry.affine_transform_points(columns.keypoints_2d_crop[index], inverse)
        np.testing.assert_allclose(
            geometry.image_coordinates(columns.keypoints_2d[index].astype(np.float64), width,
                                       height), frame_px, atol=2e-3)


def test_npz_is_videopose3d_format_and_equals_the_columns(detected):
    root, _, _ = detected
    path = os.path.join(root, "data", "data_2d_h36m_tiny.npz")
    positions = read_npz_array(path, "positions_2d").item()
    metadata = read_npz_array(path, "metadata").item()
    assert metadata["layout_name"] == "h36m" and metadata["num_joints"] == 17
    assert metadata["keypoints_symmetry"] == [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]
    assert set(positions) == {"S1", "S9"}
    assert set(positions["S1"]) == {h36m.sequence_name(1, action, subaction)
                                    for action in (2, 3) for subaction in (1, 2)}
    checked = 0
    for split in ("train", "val"):
        with open(os.path.join(root, h36m.LABEL_FILES[split]), "rb") as f:
            records = pickle.load(f)
        for record in records:
            width, height = h36m.resolution(int(record["camera_id"]))
            cameras = positions["S%d" % record["subject"]][h36m.sequence_name(
                record["subject"], record["action"], record["subaction"])]
            assert len(cameras) == 4 and cameras[record["camera_id"]].ndim == 3
            np.testing.assert_allclose(
                cameras[record["camera_id"]][record["image_id"] - 1],
                geometry.image_coordinates(record["joints_2d_tiny"], width, height), atol=1e-3)
            checked += 1
    assert checked == 48  # every labelled frame
    # frames without a label are NaN
    assert np.isnan(positions["S1"][h36m.sequence_name(1, 2, 1)][0][1]).all()


def test_an_interrupted_run_resumed_writes_identical_files(detected, tmp_path, monkeypatch):
    straight, weights, _ = detected
    root = str(tmp_path / "interrupted")
    shutil.copytree(straight, root)
    for split in ("train", "val"):  # back to the labels without the detections
        with open(os.path.join(root, h36m.LABEL_FILES[split]), "rb") as f:
            records = pickle.load(f)
        for record in records:
            del record["joints_2d_tiny"], record["joints_2d_tiny_crop"]
        with open(os.path.join(root, h36m.LABEL_FILES[split]), "wb") as f:
            pickle.dump(records, f, protocol=4)
    os.remove(os.path.join(root, "data", "data_2d_h36m_tiny.npz"))
    interrupted_after(monkeypatch, 2, lambda: detect_2d.main(arguments(root, weights)))
    chunks = sorted(n for n in os.listdir(detections.partial_folder(root, "tiny"))
                    if n.endswith(".npy"))
    assert len(chunks) == 2  # 2 of the train split's 3 chunks were kept
    detect_2d.main(arguments(root, weights))
    assert not os.path.exists(detections.partial_folder(root, "tiny"))
    for split in ("train", "val"):
        with open(os.path.join(root, h36m.LABEL_FILES[split]), "rb") as a, \
                open(os.path.join(straight, h36m.LABEL_FILES[split]), "rb") as b:
            assert a.read() == b.read()
    a = read_npz_array(os.path.join(root, "data", "data_2d_h36m_tiny.npz"), "positions_2d").item()
    b = read_npz_array(os.path.join(straight, "data", "data_2d_h36m_tiny.npz"),
                       "positions_2d").item()
    for subject in b:
        for sequence in b[subject]:
            for x, y in zip(a[subject][sequence], b[subject][sequence]):
                np.testing.assert_array_equal(x, y)


def test_a_resume_with_other_weights_is_refused(detected, tmp_path):
    straight, weights, _ = detected
    root = str(tmp_path / "other")
    shutil.copytree(straight, root)
    folder = detections.partial_folder(root, "tiny")
    os.makedirs(folder)
    with open(os.path.join(folder, "settings.json"), "w") as f:
        f.write('{"weights": "elsewhere.pth"}')
    with pytest.raises(detections.DetectionsError, match="other settings"):
        detect_2d.main(arguments(root, weights))


def test_capf_trains_on_the_detections(detected, tmp_path):
    root, _, _ = detected
    config = os.path.join(REPO_ROOT, "experiments", "synthetic", "tiny.yaml")
    opts = ["dataset.root=%s" % os.path.join(root, "images"),
            "dataset.train_labels_path=%s" % os.path.join(root, "h36m_train.pkl"),
            "dataset.val_labels_path=%s" % os.path.join(root, "h36m_validation.pkl"),
            "dataset.num_workers=0", "dataset.val_frame_stride=3", "train.batch_size=4",
            "train.max_steps_per_epoch=2", "train.n_epochs=1", "train.vis_every_epoch=false",
            "val.batch_size=4", "dataset.keypoints_2d=tiny"]
    from mvn.benchmarks import build_dataset
    from mvn.config import load_config
    dataset = build_dataset(load_config(config, opts), "val")
    np.testing.assert_array_equal(
        dataset.labels.keypoints_2d_crop,
        load_label_columns(os.path.join(root, "h36m_validation.pkl"), frame_stride=3,
                           keypoints_2d="tiny").keypoints_2d_crop)
    assert train_cli.main(["--config", config, "--logdir", str(tmp_path / "logs"), "--device",
                           "cpu", "--opts"] + opts) == 0
    assert train_cli.main(["--config", config, "--logdir", str(tmp_path / "logs"), "--device",
                           "cpu", "--opts"] + opts[:-1] + ["dataset.keypoints_2d=nothere"]) == 2
