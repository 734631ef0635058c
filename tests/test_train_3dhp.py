"""MPI-INF-3DHP end to end on a small synthetic release: synthesise -> prepare -> train a few
steps with 2 processes (gloo) -> evaluate with 1 and 2 processes (identical tables) -> the
official evaluation script on the exported predictions."""
import csv
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from conftest import REPO_ROOT
from mvn.mpi_inf_3dhp import metrics as metrics_3dhp
from mvn.mpi_inf_3dhp import facts as mpi
from test_train import only_folder, run_train

# End-to-end runs (subprocesses, training): left out of `pytest -m "not slow"`.
pytestmark = pytest.mark.slow


CONFIG = os.path.join(REPO_ROOT, "experiments", "synthetic", "mpi_tiny.yaml")
TOOLBOX = os.path.join(REPO_ROOT, "MPI-INF-3DHP-Toolbox")
RESULT_FILES = ("mpii_3dhp_evaluation_sequencewise.csv", "mpii_3dhp_evaluation_activitywise.csv",
                "mpii_3dhp_evaluation.json", "inference_data.mat")


def toolbox(script, *args):
    command = [sys.executable, os.path.join(TOOLBOX, script)] + list(args)
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


@pytest.fixture(scope="module")
def release(synthetic_3dhp):
    """The shared small release (tests/conftest.py), made with the toolbox's commands."""
    return synthetic_3dhp


def options(root, **extra):
    values = {
        "dataset.root": root,
        "dataset.train_labels_path": os.path.join(root, mpi.LABEL_FILES["train"]),
        "dataset.val_labels_path": os.path.join(root, mpi.LABEL_FILES["test"]),
        "dataset.num_workers": 0,
        "train.batch_size": 4,
        "train.max_steps_per_epoch": 2,
        "train.n_epochs": 1,
        "val.batch_size": 4,
    }
    values.update(extra)
    return ["%s=%s" % item for item in values.items()]


@pytest.fixture(scope="module")
def trained(release, tmp_path_factory):
    logdir = str(tmp_path_factory.mktemp("logs"))
    result = run_train(["--config", CONFIG, "--logdir", logdir, "--device", "cpu", "--opts"]
                       + options(release), nproc=2)
    assert result.returncode == 0, result.stderr[-4000:]
    return release, only_folder(logdir), result


def read_text(path):
    with open(path) as f:
        return f.read()


def test_two_process_training_writes_the_tables_and_the_export(trained):
    root, folder, result = trained
    for name in ("config.yaml", "train.log", "checkpoints/best_epoch.bin", "checkpoints/last.bin"):
        assert os.path.isfile(os.path.join(folder, name)), name
    for name in RESULT_FILES:
        assert os.path.isfile(os.path.join(folder, "best_evaluation", name)), name
    best = torch.load(os.path.join(folder, "checkpoints", "best_epoch.bin"), weights_only=True)
    assert best["epoch"] == 1
    assert not any("context_blocks" in k for k in best["model"])
    summary = json.loads(read_text(os.path.join(folder, "best_evaluation",
                                                "mpii_3dhp_evaluation.json")))
    assert "val P1" in result.stderr
    # validation pictures in TensorBoard, as Human3.6M runs have them
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(os.path.join(folder, "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    assert {"val/sample_0", "val/sample_3"} <= set(events.Tags()["images"])
    with open(os.path.join(root, "synthetic_release.json")) as f:
        assert f.read()  # the scaled frame counts the preparation used
    # every valid test frame once, the export holding them per sequence, pelvis exactly 0
    exported = metrics_3dhp.load_inference_data(
        os.path.join(folder, "best_evaluation", "inference_data.mat"))
    annotations = metrics_3dhp.read_test_annotations(os.path.join(root, mpi.TEST_FOLDER))
    for name in mpi.TEST_SEQUENCES:
        assert len(exported[name]) == int(annotations[name].valid.sum()) > 0
        assert np.all(exported[name][:, mpi.ROOT_JOINT] == 0)
    assert summary  # written


def evaluate(root, checkpoint, logdir, nproc):
    result = run_train(["--config", CONFIG, "--logdir", logdir, "--device", "cpu", "--eval",
                        "--checkpoint", checkpoint, "--opts"] + options(root), nproc=nproc)
    assert result.returncode == 0, result.stderr[-4000:]
    # the best and worst frame of each test sequence, drawn with the MPI-INF-3DHP skeleton
    picture = cv2.imread(os.path.join(only_folder(logdir), "best_worst_frames.png"))
    assert picture is not None and picture.shape[0] == 256 * 6  # TS1..TS6: a row each
    folder = os.path.join(only_folder(logdir), "evaluation")
    return {name: read_text(os.path.join(folder, name)) for name in RESULT_FILES[:3]}, \
        folder, result


def test_one_and_two_processes_give_identical_tables(trained, tmp_path):
    root, folder, _ = trained
    checkpoint = os.path.join(folder, "checkpoints", "best_epoch.bin")
    one, one_folder, result = evaluate(root, checkpoint, str(tmp_path / "one"), 1)
    two, two_folder, _ = evaluate(root, checkpoint, str(tmp_path / "two"), 2)
    assert one == two  # the CSV and JSON files, byte for byte
    np.testing.assert_array_equal(
        *(np.concatenate(list(metrics_3dhp.load_inference_data(
            os.path.join(f, "inference_data.mat")).values())) for f in (one_folder, two_folder)))
    # the printed number is the released one, and equals the official 'All' Average
    p1 = float(result.stderr.split("p1: ")[1].split(" mm")[0])
    rows = list(csv.reader(one["mpii_3dhp_evaluation_activitywise.csv"].splitlines()))
    all_row = next(r for r in rows if r and r[0] == "All")
    assert p1 == pytest.approx(float(all_row[18]), abs=0.006)  # 17 joints, then Average
    assert "TS6" in result.stderr and "Outdoor" in result.stderr  # the console table


def csv_cells(path):
    """The CSV as a list of rows, numbers as floats."""
    def cell(text):
        try:
            return float(text)
        except ValueError:
            return text
    with open(path) as f:
        return [[cell(c) for c in row] for row in csv.reader(f)]


def test_the_official_script_on_the_export_gives_the_same_tables(trained, tmp_path):
    """evaluate_3dhp.py on the exported inference_data.mat and the raw test set gives the tables
    the training wrote (its ground truth: annot_data.mat in float64; the training's: the label
    file's, held in float32: equal to 1e-3 mm)."""
    root, folder, _ = trained
    evaluation = os.path.join(folder, "best_evaluation")
    out = str(tmp_path / "official")
    toolbox("evaluate_3dhp.py", "--predictions", os.path.join(evaluation, "inference_data.mat"),
            "--test-root", os.path.join(root, mpi.TEST_FOLDER), "--out", out)
    for name in RESULT_FILES[:2]:
        official, ours = (csv_cells(os.path.join(f, name)) for f in (out, evaluation))
        assert len(official) == len(ours) > 20
        for row_official, row_ours in zip(official, ours):
            assert len(row_official) == len(row_ours)
            for a, b in zip(row_official, row_ours):
                if isinstance(a, float):
                    assert a == pytest.approx(b, abs=1e-3, nan_ok=True)
                else:
                    assert a == b


def test_published_checkpoint_name_is_the_eval_default(release, tmp_path):
    """--eval with an MPI-INF-3DHP config and no --checkpoint reads the published file of the
    backbone from checkpoint/, and says so when it is missing."""
    result = run_train(["--config", os.path.join(REPO_ROOT, "experiments", "mpi_inf_3dhp",
                                                 "hrnet_48.yaml"),
                        "--logdir", str(tmp_path), "--device", "cpu", "--eval", "--opts"]
                       + options(release))
    assert result.returncode == 2
    assert "checkpoint/HRNet_48_96_no_refine_45_3125.pth not found" in result.stderr


def test_eval_of_the_training_split_is_refused_with_one_line(trained, tmp_path):
    root, folder, _ = trained
    result = run_train(["--config", CONFIG, "--logdir", str(tmp_path), "--device", "cpu",
                        "--eval", "--eval_dataset", "train", "--checkpoint",
                        os.path.join(folder, "checkpoints", "best_epoch.bin"), "--opts"]
                       + options(root))
    assert result.returncode == 2
    (line,) = [l for l in result.stderr.splitlines() if l.startswith("error: ")]
    assert "scores only the val split (the test set)" in line and not os.listdir(tmp_path)
