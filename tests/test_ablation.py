"""ablation.py end to end at a tiny size (its numbers are not asserted: too few steps to mean
anything): synthesis, stage 1, its detections, the four CA-PF variants, the table files."""
import csv
import json
import math
import os

import pytest

import ablation

pytestmark = pytest.mark.slow


def test_ablation_runs_end_to_end_and_writes_its_table(tmp_path, capsys):
    logdir = str(tmp_path / "ablation")
    ablation.main(["--logdir", logdir, "--seeds", "0", "--subjects", "1", "9", "--actions", "2",
                   "--frames", "3", "--detector-epochs", "1", "--epochs", "1", "--max-steps", "1",
                   "--workers", "0"])
    with open(os.path.join(logdir, "ablation.json")) as f:
        result = json.load(f)
    assert set(result["variants"]) == {"a", "b", "c", "d"}
    for row in result["variants"].values():
        assert len(row["p1"]) == 1 and math.isfinite(row["p1_mean"]) and row["p1_std"] == 0
    assert math.isfinite(result["detector"]["mean_px"])
    assert set(result["probe"]) == {"2d", "a", "c"}
    assert all(math.isfinite(row["mean_joint_error_mm"]) for row in result["probe"].values())
    assert result["probe"]["a"]["inputs"] == 17 * 2 + 17 * (8 + 16 + 32 + 64)  # 2D + 4 levels
    with open(os.path.join(logdir, "ablation.csv")) as f:
        assert [row["variant"] for row in csv.DictReader(f)] == ["a", "b", "c", "d"]
    assert os.path.getsize(os.path.join(logdir, "ablation.png")) > 1000
    out = capsys.readouterr().out
    assert "(b) no image features" in out and "detector (stage 1)" in out
    # the runs used what they say: (b) has no backbone, (d) the detector's joints
    capf_b = os.path.join(logdir, "capf_b_seed0", "config.yaml")
    capf_d = os.path.join(logdir, "capf_d_seed0", "config.yaml")
    assert "image_features: false" in open(capf_b).read()
    assert "keypoints_2d: stage1" in open(capf_d).read()
    # the frozen backbones' maps computed once per backbone and split: the trained detector's
    # (shared by (a) and (d)) and seed 0's random one (c)
    caches = sorted(os.listdir(os.path.join(logdir, "feature_cache")))
    assert [name.split("_")[0] for name in caches] == ["train", "train", "val", "val"], caches
    # started again, every step is reused: the same table
    ablation.main(["--logdir", logdir, "--seeds", "0", "--subjects", "1", "9", "--actions", "2",
                   "--frames", "3", "--detector-epochs", "1", "--epochs", "1", "--max-steps", "1",
                   "--workers", "0"])
    with open(os.path.join(logdir, "ablation.json")) as f:
        assert json.load(f) == result
