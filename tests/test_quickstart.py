"""quickstart.py end to end, shortened: synthesis -> frames -> labels -> training -> evaluation ->
the table beside the mean-pose baseline; a rerun reuses every finished step."""
import glob
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO_ROOT

# End-to-end runs (subprocesses, training): left out of `pytest -m "not slow"`.
pytestmark = pytest.mark.slow


SHORT = ["train.n_epochs=1", "train.max_steps_per_epoch=2", "dataset.num_workers=0",
         "val.max_batches=1", "val.batch_size=16"]


def run_quickstart(tmp_path):
    command = [sys.executable, "quickstart.py", "--no-install", "--frames", "2",
               "--root", str(tmp_path / "h36m"), "--logdir", str(tmp_path / "logs"),
               "--opts"] + SHORT
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=900,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_quickstart_runs_every_step_and_prints_the_comparison(tmp_path):
    out = run_quickstart(tmp_path)
    for step in ("synthesize_h36m.py", "video_to_images.py", "generate_labels_h36m.py",
                 "train.py --config experiments/synthetic/quickstart.yaml", "--eval"):
        assert step in out, step
    assert "mean-pose P1 mm" in out
    assert sum(line.startswith("average ") for line in out.splitlines()) == 1  # one table
    summary = [line for line in out.splitlines() if line.startswith("CA-PF (tiny, synthetic)")]
    assert len(summary) == 1
    # 3 subjects x 15 actions x 2 trials x 4 cameras x 2 frames: S1 + S5 train, S9 validation
    from mvn.human36m.labels import load_label_columns
    val = load_label_columns(str(tmp_path / "h36m" / "h36m_validation.pkl"))
    train = load_label_columns(str(tmp_path / "h36m" / "h36m_train.pkl"))
    assert len(val) == 240 and len(train) == 480
    assert set(np.unique(train.subject)) == {1, 5} and set(np.unique(val.subject)) == {9}
    # the baseline printed is the mean training pose's error on the validation frames
    train_3d = train.keypoints_3d - train.keypoints_3d[:, :1]
    val_3d = val.keypoints_3d - val.keypoints_3d[:, :1]
    per_action = [np.linalg.norm(train_3d.mean(0) - val_3d[val.action == a], axis=-1).mean()
                  for a in range(2, 17)]
    assert ("pose: %.1f mm" % (1000 * np.mean(per_action))) in summary[0]

    again = run_quickstart(tmp_path)
    assert "labels exist" in again and "training already finished" in again
    assert "synthesize_h36m.py" not in again
    assert "evaluation of" in again and "exists: reused" in again and "--eval" not in again
    assert again.splitlines()[-4:-2] == out.splitlines()[-4:-2]  # the same table and summary


def test_ctrl_c_during_training_keeps_the_step_and_the_rerun_resumes_there(synthetic_h36m,
                                                                           tmp_path):
    """SIGINT to quickstart.py alone (what Ctrl-C becomes: the steps run in their own process
    group) is passed on to train.py, which writes last.bin at the step it reached; the rerun
    resumes from that step instead of starting over."""
    import torch
    logdir = tmp_path / "logs"
    command = [sys.executable, "quickstart.py", "--no-install", "--root", synthetic_h36m,
               "--logdir", str(logdir), "--opts", "train.n_epochs=1", "dataset.num_workers=0",
               "train.checkpoint_every_steps=2", "val.max_batches=1", "val.batch_size=16"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with open(tmp_path / "first.log", "w") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
        deadline = time.time() + 600
        while not glob.glob(str(logdir / "*" / "checkpoints" / "last.bin")):
            assert process.poll() is None and time.time() < deadline, \
                (tmp_path / "first.log").read_text()[-3000:]
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        status = process.wait(timeout=300)
    first = (tmp_path / "first.log").read_text()
    assert status == 75, first[-3000:]
    assert "stopped by SIGINT" in first and "Rerun `python3 quickstart.py`" in first
    last_path = glob.glob(str(logdir / "*" / "checkpoints" / "last.bin"))[0]
    state = torch.load(last_path, weights_only=True)
    epoch, step = state["epoch"], state["step"]
    assert epoch == 0 and 2 <= step < 24, (epoch, step)  # mid-epoch: 96 frames, batch 4

    again = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    output = again.stdout + again.stderr
    assert "--resume" in output
    assert "epoch 0, step %d" % step in output  # resuming from last.bin at the stop
    assert "CA-PF (tiny, synthetic) average MPJPE" in output


def test_a_typo_in_opts_is_one_line_naming_the_closest_key(synthetic_h36m, tmp_path):
    result = subprocess.run([sys.executable, "quickstart.py", "--no-install", "--root",
                             synthetic_h36m, "--logdir", str(tmp_path), "--opts",
                             "train.bach_size=4"], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("quickstart: error:"), result.stderr
    assert "train.bach_size" in error[0] and "train.batch_size" in error[0]
