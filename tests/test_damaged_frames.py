"""A JPEG with bytes zeroed mid-stream (start and end markers intact; OpenCV decodes it without an
error, libjpeg calls it corrupt on stderr) is refused naming its file wherever frames are
decoded: the training and evaluation datasets of both benchmarks, the demo, the label and crop
steps of both toolboxes, both store builders and the stores' reads. train.py's own exit with a
zeroed frame: tests/test_train.py; `--verify`: tests/test_store.py."""
import argparse
import os
import shutil
import sys

import cv2
import numpy as np
import pytest

from conftest import REPO_ROOT, zero_jpeg_middle
from mvn.datasets import store
from mvn.human36m.dataset import Human36MDataset
from mvn.images import ImageError
from mvn.mpi_inf_3dhp.dataset import MpiInf3dhpDataset

for folder in ("H36M-Toolbox", "MPI-INF-3DHP-Toolbox"):
    sys.path.insert(0, os.path.join(REPO_ROOT, folder))  # folders of scripts, not packages
import generate_labels_h36m  # noqa: E402
import h36m_toolbox  # noqa: E402
import mpi_toolbox  # noqa: E402
import prepare_images_3dhp  # noqa: E402
import prepare_store  # noqa: E402
import prepare_store_3dhp  # noqa: E402

sys.path.insert(0, REPO_ROOT)
import demo  # noqa: E402

CORRUPT = "corrupt JPEG (libjpeg: "


def camera_frame(path, height=1000, width=1000):
    """A full-frame-like JPEG at `path` (gradients and blurred noise, OpenCV's quality 95)."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([(x / 3) % 255, (y / 2) % 255, ((x + y) / 5) % 255], -1)
    noise = np.random.default_rng(0).integers(0, 30, image.shape)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(path, cv2.GaussianBlur((image + noise).astype(np.uint8), (5, 5), 0))
    return path


@pytest.mark.parametrize("split", ["train", "val"])
def test_h36m_training_and_evaluation_samples(synthetic_h36m, tmp_path, split):
    root = str(tmp_path / "copy")
    shutil.copytree(synthetic_h36m, root)
    labels = os.path.join(root, {"train": "h36m_train.pkl", "val": "h36m_validation.pkl"}[split])
    dataset = Human36MDataset(os.path.join(root, "images"), labels)
    name = dataset.labels.image[3].decode()
    zero_jpeg_middle(os.path.join(root, "images", name))
    dataset[2]  # its neighbour is whole
    with pytest.raises(ImageError) as error:
        dataset[3]
    message = str(error.value)
    assert name in message and CORRUPT in message
    assert "(record %d of %s)" % (dataset.labels.record[3], labels) in message


@pytest.mark.parametrize("split, labels", [("train", "data_train_3dhp.npz"),
                                           ("test", "data_test_3dhp.npz")])
def test_mpi_inf_3dhp_training_and_evaluation_samples(synthetic_3dhp, tmp_path, split, labels):
    root = str(tmp_path / "copy")
    shutil.copytree(synthetic_3dhp, root)
    dataset = MpiInf3dhpDataset(root, os.path.join(root, labels), split)
    path = os.path.join(root, dataset.labels.image_path(1))
    zero_jpeg_middle(path)
    dataset[0]
    with pytest.raises(ImageError) as error:
        dataset[1]
    assert path in str(error.value) and CORRUPT in str(error.value)
    assert dataset.labels.describe(1) in str(error.value)


def test_the_demo_yields_the_error_of_the_damaged_frame(tmp_path):
    folder = tmp_path / "frames"
    for name in ("a.jpg", "b.jpg"):
        camera_frame(str(folder / name), 400, 300)
    zero_jpeg_middle(str(folder / "b.jpg"))
    args = argparse.Namespace(video=None, image=None, images=str(folder))
    names, count, _, frames = demo.list_frames(args)
    (first, image), (second, error) = list(frames)
    assert (first, image.shape, second) == ("a.jpg", (400, 300, 3), "b.jpg")
    assert isinstance(error, ImageError)
    assert str(folder / "b.jpg") in str(error) and CORRUPT in str(error)


def test_h36m_label_generation_and_store_build_from_images(tmp_path):
    path = camera_frame(str(tmp_path / "images" / "s" / "s_000001.jpg"))
    assert generate_labels_h36m.image_size(path) == (1000, 1000)
    zero_jpeg_middle(path)
    with pytest.raises(h36m_toolbox.ToolboxError) as error:
        generate_labels_h36m.image_size(path)
    assert path in str(error.value) and CORRUPT in str(error.value)
    with pytest.raises(h36m_toolbox.ToolboxError) as error:
        list(prepare_store.image_frames(str(tmp_path / "images"), np.array([b"s/s_000001.jpg"]),
                                        np.array([41])))
    assert path in str(error.value) and CORRUPT in str(error.value)
    assert "record 41 of the labels" in str(error.value)


def test_mpi_inf_3dhp_preparation_and_store_build(synthetic_3dhp, tmp_path):
    frame = camera_frame(str(tmp_path / "TS1" / "imageSequence" / "img_000001.jpg"), 300, 400)
    zero_jpeg_middle(frame)
    with pytest.raises(mpi_toolbox.ToolboxError) as error:
        prepare_images_3dhp._read(frame, "TS1")
    assert str(error.value).startswith("TS1: image %s is damaged: %s" % (frame, CORRUPT))

    root = str(tmp_path / "copy")
    shutil.copytree(synthetic_3dhp, root)
    labels, labels_path = prepare_store_3dhp.load_labels(root, "train")
    job = prepare_store_3dhp.ChunkJob("train", 0, root, labels.subset(slice(0, 2)), labels_path)
    crop = os.path.join(root, labels.image_path(1))
    prepare_store_3dhp.read_crop(crop, job, 1)
    zero_jpeg_middle(crop)
    with pytest.raises(mpi_toolbox.ToolboxError) as error:
        prepare_store_3dhp.read_crop(crop, job, 1)
    assert "crop %s is damaged (%s" % (crop, CORRUPT) in str(error.value)
    assert labels.describe(1) in str(error.value)


def test_a_stored_crop_zeroed_mid_stream_is_refused_naming_its_row(tmp_path):
    crop = camera_frame(str(tmp_path / "crop.jpg"), 256, 192)
    data = np.frombuffer(zero_jpeg_middle(crop), np.uint8)
    with pytest.raises(store.StoreError) as error:
        store.decode_jpeg(data, "train.h5 row 7", "/stores/s", "python prepare_store.py",
                          "python prepare_store.py --out /stores/s --splits train --overwrite")
    assert str(error.value).startswith("train.h5 row 7: the stored crop is damaged (%s"
                                       % CORRUPT)
    assert str(error.value).endswith(
        "; check the store with `python prepare_store.py --out /stores/s --verify` and rebuild "
        "the split with `python prepare_store.py --out /stores/s --splits train --overwrite`")


def test_every_frame_of_the_synthetic_releases_is_accepted(synthetic_h36m, synthetic_3dhp,
                                                           capfd):
    import glob
    from mvn.images import decode_image
    paths = sorted(glob.glob(os.path.join(synthetic_h36m, "**", "*.jpg"), recursive=True) +
                   glob.glob(os.path.join(synthetic_3dhp, "**", "*.jpg"), recursive=True))
    assert len(paths) >= 250  # 192 H36M full frames; 3DHP: 50 crops, 18 test originals
    for path in paths:
        data = np.fromfile(path, np.uint8)
        image, problem = decode_image(data)
        assert problem is None, (path, problem)
        assert np.array_equal(image, cv2.imdecode(data, cv2.IMREAD_COLOR |
                                                  cv2.IMREAD_IGNORE_ORIENTATION))
    assert capfd.readouterr().err == ""  # libjpeg said nothing about any of them
