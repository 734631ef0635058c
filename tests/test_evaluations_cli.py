"""train.py --eval with every added evaluation on the tiny synthetic Human3.6M: the files it
writes, and the same tables from 1 and 2 processes (gloo on 127.0.0.1)."""
import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import REPO_ROOT, free_port
from mvn.config import load_config
from mvn.models import build_model

pytestmark = pytest.mark.slow  # subprocesses

CONFIG = os.path.join(REPO_ROOT, "experiments", "synthetic", "tiny.yaml")
TABLES = ("per_joint", "hard_frames", "noise_sweep")


def evaluate(root, checkpoint, logdir, nproc):
    options = ["dataset.root=%s" % os.path.join(root, "images"),
               "dataset.train_labels_path=%s" % os.path.join(root, "h36m_train.pkl"),
               "dataset.val_labels_path=%s" % os.path.join(root, "h36m_validation.pkl"),
               "dataset.num_workers=0", "dataset.val_frame_stride=9",  # 11 frames, uneven shards
               "val.batch_size=4", "val.flip_test=false",
               "evaluation.per_joint=true", "evaluation.hard_frames=true",
               "evaluation.hard_frame_threshold_px=2.5",
               "evaluation.noise_sweep=true", "evaluation.noise_sigmas_px=[0,4]"]
    if nproc > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=%d" % nproc,
                   "--master_addr=127.0.0.1", "--master_port=%d" % free_port(), "train.py"]
    else:
        command = [sys.executable, "train.py"]
    command += ["--config", CONFIG, "--logdir", logdir, "--device", "cpu", "--eval",
                "--checkpoint", checkpoint, "--name", "eval", "--opts"] + options
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=600,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr[-4000:]
    return os.path.join(logdir, "eval"), result.stderr


def read(folder, name):
    with open(os.path.join(folder, name + ".json")) as f:
        return json.load(f)


def test_added_evaluations_write_their_files_and_agree_between_1_and_2_processes(
        synthetic_h36m, tmp_path):
    torch.manual_seed(0)
    model = build_model(load_config(CONFIG))
    checkpoint = str(tmp_path / "model.bin")
    torch.save({"model": model.state_dict(), "epoch": 0}, checkpoint)
    one, printed = evaluate(synthetic_h36m, checkpoint, str(tmp_path / "one"), 1)
    two, _ = evaluate(synthetic_h36m, checkpoint, str(tmp_path / "two"), 2)
    for name in TABLES:
        assert read(one, name) == read(two, name), name
        assert os.path.isfile(os.path.join(one, name + ".csv"))
    for name in ("per_joint.png", "noise_sweep.png"):
        assert os.path.getsize(os.path.join(one, name)) > 1000
    sweep = read(one, "noise_sweep")["rows"]
    plain = read(one, "evaluation")["average"]
    assert [row["sigma_px"] for row in sweep] == [0.0, 4.0]
    assert sweep[0]["p1_mm"] == plain["p1"] and sweep[0]["p2_mm"] == plain["p2"]
    assert sweep[1]["p1_mm"] != plain["p1"]
    assert read(one, "per_joint")["mean"]["mpjpe_mm"] == pytest.approx(plain["p1"], rel=1e-9)
    hard = read(one, "hard_frames")
    assert hard["frames"] == 11 and 0 < hard["selected"] < 11  # synthetic detections: ~2.6 px
    assert "2D-noise sweep" in printed and "hard frames" in printed
