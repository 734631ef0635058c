"""The frame store (H36M-Toolbox/prepare_store.py + mvn.datasets.store) on a tiny synthetic
Human3.6M: the same samples as the pkl path (exactly for raw crops of the same images, within a
measured bound for JPEG and for crops decoded from the videos), interruption and resume, errors,
DataLoader workers, and `dataset.format: store` through build_dataset."""
import json
import os
import pickle
import shlex
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from conftest import REPO_ROOT, run_toolbox
from mvn.config import load_config
from mvn.benchmarks import build_dataset
from mvn.datasets.store import StoreError
from mvn.human36m.dataset import Human36MDataset, Human36MStoreDataset
from mvn.human36m.labels import LabelColumns

TOOLBOX_DIR = os.path.join(REPO_ROOT, "H36M-Toolbox")
sys.path.insert(0, TOOLBOX_DIR)  # the toolbox is a folder of scripts, not a package
import h36m_toolbox  # noqa: E402
import prepare_store  # noqa: E402

SPLITS = {"train": "h36m_train.pkl", "val": "h36m_validation.pkl"}
CONFIG = os.path.join(REPO_ROOT, "experiments", "synthetic", "tiny.yaml")

# |pkl crop - store crop| in uint8 levels, measured on this data (both splits, 192 frames) and,
# in brackets, on 1 subject x 2 actions x 30 frames (480): JPEG q95 4:2:0 crops: mean 0.98
# (0.98), max 48 (36); raw crops decoded from the videos, against crops of the frames extracted
# as JPEG q90: mean 0.56 (0.57), max 30 (24). The bounds leave room for another libjpeg.
JPEG_BOUND = {"mean": 1.3, "max": 64}
VIDEO_BOUND = {"mean": 0.8, "max": 40}


def read_json(path):
    with open(path) as f:
        return json.load(f)


def build_store(root, out, *extra):
    return run_toolbox("prepare_store.py", "--root", root, "--out", out, *extra)


@pytest.fixture(scope="module")
def stores(synthetic_h36m, tmp_path_factory):
    """Stores of both splits: raw and JPEG from images/, raw from the videos (one in parallel)."""
    folder = tmp_path_factory.mktemp("stores")
    paths = {name: str(folder / name) for name in ("raw", "jpeg", "video")}
    build_store(synthetic_h36m, paths["raw"], "--format", "raw", "--source", "images",
                "--workers", "1")
    build_store(synthetic_h36m, paths["jpeg"], "--format", "jpeg", "--source", "images",
                "--workers", "2")
    build_store(synthetic_h36m, paths["video"], "--format", "raw", "--source", "videos",
                "--workers", "1")
    return paths


def pkl_dataset(root, split, stride=1):
    return Human36MDataset(os.path.join(root, "images"), os.path.join(root, SPLITS[split]),
                           frame_stride=stride)


@pytest.fixture(scope="module")
def pkl_samples(synthetic_h36m):
    """Every sample of the pkl path per split (decoding full frames is the slow part: once)."""
    return {split: [dataset[i] for i in range(len(dataset))]
            for split, dataset in ((s, pkl_dataset(synthetic_h36m, s)) for s in SPLITS)}


def image_differences(reference, dataset):
    """(N, 256, 192, 3) |reference - store| crops, after checking every other key is equal.

    `reference`: the pkl path's samples (a list or the dataset)."""
    assert len(dataset) == len(reference)
    differences = []
    for i in range(len(reference)):
        a, b = reference[i], dataset[i]
        assert a.keys() == b.keys()
        for key in ("keypoints_2d", "keypoints_2d_crop", "keypoints_3d"):
            assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key
        assert a["index"] == b["index"] == i
        assert a["images"].dtype == b["images"].dtype == torch.uint8
        assert a["images"].shape == b["images"].shape == (256, 192, 3)
        differences.append((a["images"].int() - b["images"].int()).abs())
    return torch.stack(differences).float()


@pytest.mark.parametrize("split", sorted(SPLITS))
def test_raw_store_from_images_equals_pkl_dataset_exactly(synthetic_h36m, stores, pkl_samples,
                                                          split):
    dataset = Human36MStoreDataset(stores["raw"], split)
    assert image_differences(pkl_samples[split], dataset).max() == 0
    reference = pkl_dataset(synthetic_h36m, split)
    for name in LabelColumns.__dataclass_fields__:
        assert np.array_equal(getattr(reference.labels, name), getattr(dataset.labels, name))


def test_frame_stride_selects_the_same_rows_as_pkl(synthetic_h36m, stores):
    reference = pkl_dataset(synthetic_h36m, "val", stride=5)
    dataset = Human36MStoreDataset(stores["raw"], "val", frame_stride=5)
    assert len(dataset) == len(reference) == 20
    assert np.array_equal(dataset.labels.image, reference.labels.image)
    assert image_differences(reference, dataset).max() == 0


def test_jpeg_store_within_measured_bound(stores, pkl_samples):
    difference = torch.cat([image_differences(pkl_samples[split],
                                              Human36MStoreDataset(stores["jpeg"], split))
                            for split in SPLITS])
    assert 0 < difference.mean() < JPEG_BOUND["mean"]
    assert difference.max() <= JPEG_BOUND["max"]
    manifest = read_json(os.path.join(stores["jpeg"], "manifest.json"))
    assert (manifest["format"], manifest["jpeg_quality"], manifest["jpeg_chroma"]) == \
        ("jpeg", 95, "420")


def test_store_from_videos_within_measured_bound(stores, pkl_samples):
    """The pkl path crops frames that went through JPEG (q90 here); the store decodes the video
    itself, so the two differ by that JPEG's error only."""
    difference = torch.cat([image_differences(pkl_samples[split],
                                              Human36MStoreDataset(stores["video"], split))
                            for split in SPLITS])
    assert 0 < difference.mean() < VIDEO_BOUND["mean"]
    assert difference.max() <= VIDEO_BOUND["max"]


def test_store_is_smaller_per_frame_than_full_frames(synthetic_h36m, stores):
    dataset = Human36MStoreDataset(stores["jpeg"], "train")
    full_frame = np.mean([os.path.getsize(os.path.join(synthetic_h36m, "images", n.decode()))
                          for n in dataset.labels.image])
    assert dataset.frame_size.mean() < full_frame / 3   # ~1/10 on real frames, ~1/5 here
    # the file: the JPEGs, the label columns and at most one partly used 1 MiB chunk
    file_bytes = os.path.getsize(os.path.join(stores["jpeg"], "train.h5"))
    assert dataset.frame_size.sum() < file_bytes < dataset.frame_size.sum() + (1 << 20) + 200_000


def assert_same_crops(path, expected_path):
    """Every crop of both splits of the store at `path` equals that of `expected_path`."""
    for split in SPLITS:
        got = Human36MStoreDataset(path, split)
        expected = Human36MStoreDataset(expected_path, split)
        assert len(got) == len(expected)
        assert all(np.array_equal(got.load_crop(i), expected.load_crop(i))
                   for i in range(len(expected)))


def resume_command(message):
    """The command a StoreError tells the user to run, as argv for this interpreter."""
    command = shlex.split(message.split("`")[1])
    assert command[:2] == ["python", "H36M-Toolbox/prepare_store.py"]
    return [sys.executable] + command[1:]


def test_interrupted_store_is_detected_and_a_rerun_completes_it(synthetic_h36m, stores,
                                                                tmp_path):
    out = str(tmp_path / "store")
    result = build_store(synthetic_h36m, out, "--format", "raw", "--source", "images",
                         "--workers", "1", "--max-chunks", "5")
    assert "incomplete" in result.stdout
    manifest = read_json(os.path.join(out, "manifest.json"))
    assert [sum(c["done"] for c in e["chunks"]) for e in manifest["splits"].values()] == [5, 0]
    for split in SPLITS:
        with pytest.raises(StoreError) as error:
            Human36MStoreDataset(out, split)
        message = str(error.value)
        assert "incomplete" in message and "'%s'" % split in message
        assert ("lacks 11 of 16 chunks" if split == "train" else "lacks 16 of 16") in message
    config = load_config(CONFIG, ["dataset.format=store", "dataset.store_path=" + out])
    with pytest.raises(StoreError, match="resume the build with"):
        build_dataset(config, "train")
    # the command in the message continues the build (from the repository root, as printed)
    subprocess.run(resume_command(message) + ["--workers", "1"], cwd=REPO_ROOT, check=True,
                   capture_output=True)
    assert_same_crops(out, stores["raw"])


def test_killed_jpeg_build_resumes_to_the_same_store(synthetic_h36m, stores, tmp_path):
    """SIGKILL once some chunks are recorded (the HDF5 byte stream grows then): a rerun drops
    the unrecorded tail and gives the same crops as a build in one go."""
    out = str(tmp_path / "store")
    command = [sys.executable, os.path.join(REPO_ROOT, "H36M-Toolbox", "prepare_store.py"),
               "--root", synthetic_h36m, "--out", out, "--source", "images", "--workers", "1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest_path = os.path.join(out, "manifest.json")
    try:
        while process.poll() is None:
            try:
                with open(manifest_path) as f:
                    if '"done": true' in f.read():
                        break
            except OSError:
                pass
            time.sleep(0.01)
        running_at_the_kill = process.poll() is None
        process.kill()
    finally:
        process.wait()
    # The claim needs a build cut short: killed while running, with chunks still to do.
    assert running_at_the_kill and process.returncode == -signal.SIGKILL
    with open(manifest_path) as f:
        chunks = [c for entry in json.load(f)["splits"].values() for c in entry["chunks"]]
    assert any(c["done"] for c in chunks) and not all(c["done"] for c in chunks)
    subprocess.run(command, check=True, capture_output=True)
    assert_same_crops(out, stores["jpeg"])


def test_build_dataset_with_store_format(synthetic_h36m, stores):
    config = load_config(CONFIG, ["dataset.format=store", "dataset.store_path=" + stores["raw"],
                                  "dataset.val_frame_stride=9"])
    train, val = build_dataset(config, "train"), build_dataset(config, "val")
    assert isinstance(train, Human36MStoreDataset) and (len(train), len(val)) == (96, 11)
    reference = pkl_dataset(synthetic_h36m, "val", stride=9)
    assert np.array_equal(val.labels.action, reference.labels.action)
    assert torch.equal(val[3]["images"], reference[3]["images"])


def test_store_dataset_in_dataloader_workers(stores):
    """The parent reads first (opening the file), then forked workers read: same batches."""
    dataset = Human36MStoreDataset(stores["jpeg"], "val")
    expected = [dataset[i]["images"] for i in range(len(dataset))]
    batches = DataLoader(dataset, batch_size=16, num_workers=2)
    images = torch.cat([batch["images"] for batch in batches])
    assert torch.equal(images, torch.stack(expected))


def test_missing_store_and_missing_split_errors(stores, tmp_path):
    with pytest.raises(StoreError, match="no frame store at .*prepare_store.py"):
        Human36MStoreDataset(str(tmp_path / "nothing"), "train")
    manifest = read_json(os.path.join(stores["raw"], "manifest.json"))
    del manifest["splits"]["val"]
    os.makedirs(tmp_path / "partial")
    with open(tmp_path / "partial" / "manifest.json", "w") as f:
        json.dump(manifest, f)
    with pytest.raises(StoreError, match="has no 'val' split"):
        Human36MStoreDataset(str(tmp_path / "partial"), "val")


def test_a_store_of_other_crops_or_an_older_version_is_refused(stores, tmp_path):
    manifest = read_json(os.path.join(stores["raw"], "manifest.json"))
    assert manifest["crop_shape"] == [256, 192] and manifest["dataset"] == "human36m"
    for name, change, message in (
            ("other_crops", {"crop_shape": [384, 288]}, "holds 384x288 crops, this code makes "
                                                        "256x192 crops.*--overwrite"),
            ("version_2", {"version": 2}, "store version 2, this code reads version 3")):
        os.makedirs(tmp_path / name)
        with open(tmp_path / name / "manifest.json", "w") as f:
            json.dump(dict(manifest, **change), f)
        with pytest.raises(StoreError, match=message):
            Human36MStoreDataset(str(tmp_path / name), "val")


def test_builder_error_is_one_line_and_exit_2(synthetic_h36m, stores):
    """Resuming with other options than the store was started with."""
    result = subprocess.run([sys.executable, os.path.join(TOOLBOX_DIR, "prepare_store.py"),
                             "--root", synthetic_h36m, "--out", stores["raw"], "--format", "jpeg"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: the store at ")
    assert "--format raw" in result.stderr and "--overwrite" in result.stderr


def test_builder_refuses_changed_labels_and_missing_files(synthetic_h36m, stores, tmp_path):
    with open(os.path.join(synthetic_h36m, SPLITS["train"]), "rb") as f:
        records = pickle.load(f)
    changed = str(tmp_path / "changed.pkl")
    with open(changed, "wb") as f:
        pickle.dump(records[:-1], f, protocol=4)
    common = ["--root", synthetic_h36m, "--workers", "1", "--splits", "train"]
    with pytest.raises(h36m_toolbox.ToolboxError, match="changed since .*--overwrite"):
        prepare_store.main(common + ["--out", stores["raw"], "--format", "raw", "--source",
                                     "images", "--train-labels", changed])
    with pytest.raises(h36m_toolbox.ToolboxError, match="none.pkl does not exist"):
        prepare_store.main(common + ["--out", str(tmp_path / "s"), "--train-labels",
                                     str(tmp_path / "none.pkl")])
    with pytest.raises(h36m_toolbox.ToolboxError, match=r"s_01_act_02_subact_01_ca_01: video "
                                                       r".*Directions 1\.54138969\.mp4 not found"):
        prepare_store.main(common + ["--out", str(tmp_path / "v"), "--source", "videos",
                                     "--root", str(tmp_path), "--train-labels",
                                     os.path.join(synthetic_h36m, SPLITS["train"])])


def test_verify_reports_complete_store(stores):
    result = run_toolbox("prepare_store.py", "--out", stores["jpeg"], "--verify")
    assert "train: 96 frames, complete and readable" in result.stdout


def test_torn_split_file_and_corrupt_crop_name_the_file_and_row(stores, tmp_path):
    import shutil
    import h5py
    torn = str(tmp_path / "torn")
    shutil.copytree(stores["jpeg"], torn)
    with open(os.path.join(torn, "val.h5"), "r+b") as f:
        f.truncate(100)  # a kill during a write
    with pytest.raises(StoreError, match=r"cannot read .*val\.h5.*--overwrite"):
        Human36MStoreDataset(torn, "val")

    corrupt = str(tmp_path / "corrupt")
    shutil.copytree(stores["jpeg"], corrupt)
    with h5py.File(os.path.join(corrupt, "val.h5"), "r+") as f:
        start, size = int(f["frame_offset"][3]), int(f["frame_size"][3])
        f["frames"][start:start + size] = 0  # row 3's JPEG bytes overwritten
    dataset = Human36MStoreDataset(corrupt, "val")
    dataset.load_crop(2)  # the neighbours are intact
    with pytest.raises(StoreError) as error:
        dataset.load_crop(3)
    message = str(error.value)
    assert "val.h5 row 3" in message and dataset.labels.image[3].decode() in message
    assert "--verify" in message


def test_a_truncated_frame_stops_the_build_naming_it_and_its_record(synthetic_h36m, tmp_path):
    import shutil
    copy = str(tmp_path / "copy")
    shutil.copytree(synthetic_h36m, copy)
    with open(os.path.join(copy, SPLITS["val"]), "rb") as f:
        name = pickle.load(f)[5]["image"]
    path = os.path.join(copy, "images", name)
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:-400])  # the end of the JPEG is gone
    result = subprocess.run([sys.executable, os.path.join(TOOLBOX_DIR, "prepare_store.py"),
                             "--root", copy, "--out", str(tmp_path / "store"), "--splits", "val",
                             "--source", "images", "--workers", "1"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    last = result.stderr.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("error: image ") and name in last
    assert "truncated JPEG" in last and "record 5 of the labels" in last


def test_verify_finds_a_truncated_stored_crop(stores, tmp_path):
    import shutil
    import h5py
    damaged = str(tmp_path / "damaged")
    shutil.copytree(stores["jpeg"], damaged)
    with h5py.File(os.path.join(damaged, "train.h5"), "r+") as f:
        size = int(f["frame_size"][7])
        f["frame_size"][7] = size - 300   # row 7's JPEG cut short, as a torn write leaves it
    result = subprocess.run([sys.executable, os.path.join(TOOLBOX_DIR, "prepare_store.py"),
                             "--out", damaged, "--verify"], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "train.h5 row 7" in result.stderr and "truncated JPEG" in result.stderr
