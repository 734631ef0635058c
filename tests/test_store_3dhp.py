"""The MPI-INF-3DHP frame store (MPI-INF-3DHP-Toolbox/prepare_store_3dhp.py +
MpiInf3dhpStoreDataset) on a tiny synthetic release: samples bit-identical to the pkl path's,
interruption and resume, a changed label file, a missing crop, --verify, the other dataset's
store refused, and train.py with `dataset.format=store`."""
import json
import os
import shlex
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from conftest import REPO_ROOT
from mvn.benchmarks import build_dataset
from mvn.config import load_config
from mvn.datasets.store import StoreError
from mvn.human36m.dataset import Human36MStoreDataset
from mvn.mpi_inf_3dhp import facts as mpi
from mvn.mpi_inf_3dhp.dataset import (MpiInf3dhpDataset, MpiInf3dhpStoreDataset, MpiLabels,
                                      read_label_npz)
from test_train import only_folder, run_train

# End-to-end runs (subprocesses, training): left out of `pytest -m "not slow"`.
pytestmark = pytest.mark.slow


TOOLBOX_DIR = os.path.join(REPO_ROOT, "MPI-INF-3DHP-Toolbox")
sys.path.insert(0, TOOLBOX_DIR)  # the toolbox is a folder of scripts, not a package
import mpi_toolbox  # noqa: E402
import prepare_store_3dhp  # noqa: E402

CONFIG = os.path.join(REPO_ROOT, "experiments", "synthetic", "mpi_tiny.yaml")
LABEL_FILES = {"train": mpi.LABEL_FILES["train"], "val": mpi.LABEL_FILES["test"]}


def read_json(path):
    with open(path) as f:
        return json.load(f)


def builder(*args):
    """prepare_store_3dhp.py as a user runs it (from the repository root)."""
    return subprocess.run([sys.executable, os.path.join(TOOLBOX_DIR, "prepare_store_3dhp.py")]
                          + list(args), capture_output=True, text=True, cwd=REPO_ROOT)


@pytest.fixture(scope="module")
def release(synthetic_3dhp):
    """The shared prepared release (tests/conftest.py): S1, 2 sequences x 8 cameras x 2 frames;
    TS1..TS6 x 3 frames, some invalid."""
    return synthetic_3dhp


@pytest.fixture(scope="module")
def store_path(release, tmp_path_factory):
    """Both splits, built by the command line in 2 worker processes."""
    out = str(tmp_path_factory.mktemp("store") / "store")
    result = builder("--root", release, "--out", out, "--workers", "2")
    assert result.returncode == 0, result.stderr[-4000:]
    assert "train: 32 rows, 16/16 chunks done" in result.stdout
    return out


def pkl_dataset(root, split, stride=1):
    return MpiInf3dhpDataset(root, os.path.join(root, LABEL_FILES[split]), split, stride)


def assert_same_samples(expected, got):
    assert len(got) == len(expected) > 0
    for name in MpiLabels.__dataclass_fields__:
        a, b = getattr(expected.labels, name), getattr(got.labels, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    for i in range(len(expected)):
        x, y = expected[i], got[i]
        assert x.keys() == y.keys() and x["index"] == y["index"] == i
        for key in ("images", "keypoints_2d", "keypoints_2d_crop", "keypoints_3d"):
            assert x[key].dtype == y[key].dtype and torch.equal(x[key], y[key]), (i, key)


def test_store_samples_are_bit_identical_to_the_pkl_path(release, store_path):
    for split in LABEL_FILES:
        assert_same_samples(pkl_dataset(release, split), MpiInf3dhpStoreDataset(store_path, split))
    assert_same_samples(pkl_dataset(release, "val", stride=3),
                        MpiInf3dhpStoreDataset(store_path, "val", frame_stride=3))
    # the stored bytes are the crop files themselves
    dataset = MpiInf3dhpStoreDataset(store_path, "train")
    with h5py.File(dataset.path, "r") as f:
        start, size = int(f["frame_offset"][5]), int(f["frame_size"][5])
        stored = f["frames"][start:start + size].tobytes()
    with open(os.path.join(release, dataset.labels.image_path(5)), "rb") as f:
        assert stored == f.read()
    manifest = read_json(os.path.join(store_path, "manifest.json"))
    assert manifest["dataset"] == "mpi_inf_3dhp" and manifest["source"] == "crops"
    assert [c["name"] for c in manifest["splits"]["val"]["chunks"]] == list(mpi.TEST_SEQUENCES)
    config = load_config(CONFIG, ["dataset.format=store", "dataset.store_path=" + store_path])
    assert isinstance(build_dataset(config, "val"), MpiInf3dhpStoreDataset)


def resume_argv(message):
    """The arguments of the command a StoreError tells the user to run."""
    command = shlex.split(message.split("`")[1])
    assert command[:2] == ["python", "MPI-INF-3DHP-Toolbox/prepare_store_3dhp.py"]
    return command[2:]


def test_interrupted_build_resumes_and_a_complete_rerun_does_nothing(release, store_path,
                                                                    tmp_path, capsys):
    out = str(tmp_path / "store")
    prepare_store_3dhp.main(["--root", release, "--out", out, "--workers", "1",
                             "--max-chunks", "5"])
    assert "the store is incomplete" in capsys.readouterr().out
    manifest = read_json(os.path.join(out, "manifest.json"))
    assert [sum(c["done"] for c in e["chunks"]) for e in manifest["splits"].values()] == [5, 0]
    with pytest.raises(StoreError, match="split 'train' lacks 11 of 16 chunks") as error:
        MpiInf3dhpStoreDataset(out, "train")
    prepare_store_3dhp.main(resume_argv(str(error.value)) + ["--workers", "1"])
    for split in LABEL_FILES:   # the same bytes as a build in one go
        with h5py.File(os.path.join(out, "%s.h5" % split), "r") as f, \
                h5py.File(os.path.join(store_path, "%s.h5" % split), "r") as g:
            for name in ("frames", "frame_offset", "frame_size"):
                assert np.array_equal(f[name][()], g[name][()])
    files = [os.path.join(out, name) for name in ("train.h5", "val.h5")]
    stamps = [os.stat(path).st_mtime_ns for path in files]
    capsys.readouterr()
    prepare_store_3dhp.main(["--root", release, "--out", out, "--workers", "1"])
    assert "wrote 0 frames" in capsys.readouterr().out
    assert [os.stat(path).st_mtime_ns for path in files] == stamps


def test_a_changed_label_file_is_refused_and_found_by_verify(release, tmp_path):
    root = str(tmp_path / "root")
    shutil.copytree(release, root)
    out = str(tmp_path / "store")
    prepare_store_3dhp.main(["--root", root, "--out", out, "--workers", "1", "--splits", "val"])
    path = os.path.join(root, LABEL_FILES["val"])
    data = read_label_npz(path)
    data["TS2"]["data_3d"][0, 0, 0] += 1.0   # one coordinate of one frame
    np.savez_compressed(path, data=data)
    with pytest.raises(mpi_toolbox.ToolboxError,
                       match=r"data_test_3dhp\.npz changed since .*'val' split.*--overwrite"):
        prepare_store_3dhp.main(["--root", root, "--out", out, "--workers", "1"])
    with pytest.raises(StoreError, match=r"data_test_3dhp\.npz changed since .*--overwrite"):
        prepare_store_3dhp.main(["--out", out, "--verify"])


def test_a_missing_crop_is_one_line_naming_it_exit_2(release, tmp_path):
    root = str(tmp_path / "root")
    shutil.copytree(release, root)
    missing = os.path.join(root, mpi.train_image_path(1, 2, 4, 1))
    os.remove(missing)
    result = builder("--root", root, "--out", str(tmp_path / "store"), "--workers", "1")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    last = result.stderr.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("error: crop %s does not exist (S1 Seq2 camera 4 frame 2 of " % missing)
    assert "prepare_images_3dhp.py --root %s" % root in last and ".complete" in last


def test_verify_and_the_other_datasets_store_refused(store_path, tmp_path):
    result = builder("--out", store_path, "--verify")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "train: 32 frames, complete, readable and matching their checksums" in result.stdout
    assert "val: 11 frames, complete, readable and matching their checksums" in result.stdout
    with pytest.raises(StoreError, match="holds mpi_inf_3dhp frames, not human36m"):
        Human36MStoreDataset(store_path, "val")
    other = str(tmp_path / "h36m")
    shutil.copytree(store_path, other)
    manifest = read_json(os.path.join(other, "manifest.json"))
    manifest["dataset"] = "human36m"         # as a Human3.6M store's manifest says
    with open(os.path.join(other, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    with pytest.raises(StoreError, match="holds human36m frames, not mpi_inf_3dhp.*"
                                         "prepare_store_3dhp.py"):
        MpiInf3dhpStoreDataset(other, "val")
    del manifest["dataset"]                  # a manifest of this version always names it
    with open(os.path.join(other, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    with pytest.raises(StoreError, match="names no dataset.*prepare_store_3dhp.py"):
        MpiInf3dhpStoreDataset(other, "val")


def test_train_reads_the_store(store_path, tmp_path):
    """One short run with dataset.format=store: the label files and crops are not read."""
    nowhere = str(tmp_path / "nowhere")
    options = {"dataset.format": "store", "dataset.store_path": store_path,
               "dataset.root": nowhere, "dataset.train_labels_path": nowhere,
               "dataset.val_labels_path": nowhere, "dataset.num_workers": 0,
               "train.batch_size": 4, "train.max_steps_per_epoch": 1, "train.n_epochs": 1,
               "val.batch_size": 4}
    logdir = str(tmp_path / "logs")
    result = run_train(["--config", CONFIG, "--logdir", logdir, "--device", "cpu", "--opts"]
                       + ["%s=%s" % item for item in options.items()])
    assert result.returncode == 0, result.stderr[-4000:]
    assert "val P1" in result.stderr
    evaluation = os.path.join(only_folder(logdir), "best_evaluation")
    assert os.path.isfile(os.path.join(evaluation, "mpii_3dhp_evaluation.json"))
