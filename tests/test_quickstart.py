"""quickstart.py end to end, shortened: synthesis -> frames -> labels -> training -> evaluation ->
the table beside the mean-pose baseline; a rerun reuses every finished step."""
import os
import subprocess
import sys

import numpy as np

from conftest import REPO_ROOT

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
    from mvn.datasets import load_label_columns
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
