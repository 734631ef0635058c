"""MPI-INF-3DHP-Toolbox/evaluate_3dhp.py run as a user runs it, on a small synthetic test set
written here (v7.3 annot_data.mat, invalid frames) and predictions in the released export format;
the values are checked against plain loops (tests/mpi_inf_3dhp/test_metrics.py's reference)."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.io

from mvn.mpi_inf_3dhp import matfile
from mpi_inf_3dhp.test_metrics import MATLAB_ACTIVITIES, MATLAB_GROUPS, loop_errors, loop_evaluation

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join("MPI-INF-3DHP-Toolbox", "evaluate_3dhp.py")
SEQUENCES = ["TS1", "TS2", "TS3", "TS4", "TS5", "TS6"]
FRAMES = [6, 5, 7, 4, 5, 6]            # all frames; about a third are invalid


def run_script(*args):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, SCRIPT] + list(args), capture_output=True, text=True,
                          cwd=REPO_ROOT, env=env)


@pytest.fixture(scope="module")
def test_set(tmp_path_factory):
    """A test root with TS1..TS6/annot_data.mat (v7.3, MATLAB shapes) and an
    inference_data.mat written as the released code does (scipy.io.savemat, float32
    3x17x1xn_valid). Coordinates and offsets are integers, many offsets of length exactly
    5k mm (3-4-5 triangles), so errors land exactly on the PCK/AUC thresholds."""
    rng = np.random.default_rng(11)
    root = tmp_path_factory.mktemp("mpi_inf_3dhp_test_set")
    predictions, ground_truth, activities = {}, {}, {}
    for name, n in zip(SEQUENCES, FRAMES):
        valid = np.ones(n)
        valid[rng.choice(n, n // 3, replace=False)] = 0
        valid[0] = 1
        activity = rng.integers(1, 8, n).astype(np.float64)
        univ = rng.integers(-800, 800, (n, 17, 3)).astype(np.float64) + [0, 0, 4000]
        annot2 = rng.uniform(0, 2048, (n, 17, 2))
        folder = root / name
        folder.mkdir()
        matfile.write_v73(str(folder / "annot_data.mat"), {
            "valid_frame": valid.reshape(n, 1),
            "activity_annotation": activity.reshape(n, 1),
            "annot2": annot2.transpose(2, 1, 0)[:, :, None, :],         # 2x17x1xn
            "univ_annot3": univ.transpose(2, 1, 0)[:, :, None, :]})     # 3x17x1xn

        rows = [f for f in range(n) if valid[f]]
        truth, predicted = [], []
        for f in rows:
            gt = [[univ[f][j][c] - univ[f][14][c] for c in range(3)] for j in range(17)]
            pose = []
            for j in range(17):
                k = int(rng.integers(0, 40))
                if j == 14 and name != "TS6":
                    offset = [0, 0, 0]                  # the exported root is exact
                elif rng.random() < 0.5:
                    offset = [3 * k, 4 * k, 0]          # error exactly 5k mm
                else:
                    offset = [int(v) for v in rng.integers(-120, 120, 3)]
                pose.append([gt[j][c] + offset[c] for c in range(3)])
            truth.append(gt)
            predicted.append(pose)
        ground_truth[name], predictions[name] = truth, predicted
        activities[name] = [int(activity[f]) for f in rows]
    export = {name: np.array(predictions[name], dtype=np.float32).transpose(2, 1, 0)[:, :, None, :]
              for name in SEQUENCES}
    scipy.io.savemat(str(root / "inference_data.mat"), export)
    errors = {n: loop_errors(predictions[n], ground_truth[n]) for n in SEQUENCES}
    return root, export, errors, activities


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_help_describes_the_options():
    result = run_script("--help")
    assert result.returncode == 0
    for option in ("--predictions", "--test-root", "--out"):
        assert option in result.stdout


def test_evaluation_writes_the_matlab_tables_and_the_json(test_set, tmp_path):
    root, _, errors, activities = test_set
    assert any(v == 150.0 for e in errors.values() for frame in e for v in frame[:14])
    out = tmp_path / "results"
    result = run_script("--predictions", str(root / "inference_data.mat"),
                        "--test-root", str(root), "--out", str(out))
    assert result.returncode == 0, result.stderr
    sequences, activity_rows, scenes = loop_evaluation(errors, activities)
    groups = [g for g, _ in MATLAB_GROUPS]

    rows = _read_csv(out / "mpii_3dhp_evaluation_sequencewise.csv")
    assert rows[0] == ["seq_table%d" % i for i in range(1, 20)]
    assert rows[1][0] == "" and rows[1][18] == "Average"
    assert rows[8][:10] == ["PCK"] + groups + ["Total"]
    assert rows[15][:10] == ["AUC"] + groups + ["Total"]
    for i, name in enumerate(SEQUENCES):
        reference = sequences[name]
        assert rows[2 + i][0] == rows[9 + i][0] == rows[16 + i][0] == "TestSeq%d" % (i + 1)
        assert float(rows[2 + i][18]) == pytest.approx(reference["average"], rel=1e-13)
        pelvis = float(rows[2 + i][15])
        assert pelvis == pytest.approx(reference["mpjpe"][14], rel=1e-13)
        assert (pelvis == 0) == (name != "TS6")             # exact root but in TS6
        assert float(rows[9 + i][9]) == pytest.approx(reference["pck"]["Total"], rel=1e-13)
        assert float(rows[16 + i][9]) == pytest.approx(reference["auc"]["Total"], rel=1e-13)
        np.testing.assert_allclose([float(v) for v in rows[9 + i][1:9]],
                                   [reference["pck"][g] for g in groups], rtol=1e-13)

    rows = _read_csv(out / "mpii_3dhp_evaluation_activitywise.csv")
    labels = MATLAB_ACTIVITIES + ["All"]
    assert rows[0] == ["activity_table%d" % i for i in range(1, 20)]
    assert [r[0] for r in rows[2:10]] == labels
    assert rows[10][:10] == ["PCK"] + groups + ["Total"]
    assert [r[0] for r in rows[11:19]] == labels
    assert rows[19][:10] == ["AUC"] + groups + ["Total"]
    assert [r[0] for r in rows[20:28]] == labels
    for i, label in enumerate(labels):
        reference = activity_rows[label]
        if reference is None:                       # an activity no valid frame has
            assert rows[2 + i][18] == "NaN"
            continue
        assert float(rows[2 + i][18]) == pytest.approx(reference["average"], rel=1e-13)
        assert float(rows[11 + i][9]) == pytest.approx(reference["pck"]["Total"], rel=1e-13)
        assert float(rows[20 + i][9]) == pytest.approx(reference["auc"]["Total"], rel=1e-13)

    with open(out / "mpii_3dhp_evaluation.json") as f:
        saved = json.load(f)
    for scene, reference in scenes.items():
        for key in ("frames", "mpjpe_mm", "pck", "auc"):
            assert saved["scenes"][scene][key] == pytest.approx(reference[key], rel=1e-12)
    everything = activity_rows["All"]
    assert saved["overall"]["frames"] == everything["frames"]
    assert saved["overall"]["mpjpe_mm"] == pytest.approx(everything["average"], rel=1e-12)
    assert saved["overall"]["pck"] == pytest.approx(everything["pck"]["Total"], rel=1e-12)
    assert saved["overall"]["auc"] == pytest.approx(everything["auc"]["Total"], rel=1e-12)

    lines = result.stdout.splitlines()
    assert lines[0].split() == ["frames", "MPJPE", "mm", "PCK", "AUC"]
    all_line = [line for line in lines if line.startswith("All")][0].split()
    assert all_line[1] == str(everything["frames"])
    assert float(all_line[2]) == pytest.approx(everything["average"], abs=0.006)
    assert any(line.startswith("Outdoor") for line in lines)


def test_ground_truth_as_prediction_scores_0_100_and_30_of_31(test_set, tmp_path):
    root = test_set[0]
    sequences = {}
    for name in SEQUENCES:
        raw = matfile.read_v73(str(root / name / "annot_data.mat"),
                               ["valid_frame", "univ_annot3"])
        valid = raw["valid_frame"].reshape(-1) == 1
        univ = raw["univ_annot3"][:, :, 0, valid]                        # 3x17xn_valid
        sequences[name] = (univ - univ[:, 14:15, :])[:, :, None, :].astype(np.float32)
    scipy.io.savemat(str(tmp_path / "perfect.mat"), sequences)
    result = run_script("--predictions", str(tmp_path / "perfect.mat"), "--test-root",
                        str(root), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    rows = _read_csv(tmp_path / "out" / "mpii_3dhp_evaluation_sequencewise.csv")
    for i in range(6):
        assert rows[2 + i][1:] == ["0"] * 18
        assert rows[9 + i][1:10] == ["100"] * 9
        assert [float(v) for v in rows[16 + i][1:10]] == pytest.approx([100 * 30 / 31] * 9,
                                                                       rel=1e-14)


def test_a_wrong_frame_count_exits_2_naming_the_sequence(test_set, tmp_path):
    root, export, _, _ = test_set
    short = dict(export)
    short["TS4"] = export["TS4"][..., :-1]
    scipy.io.savemat(str(tmp_path / "short.mat"), short)
    result = run_script("--predictions", str(tmp_path / "short.mat"), "--test-root", str(root),
                        "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    n = export["TS4"].shape[-1]
    assert "TS4" in result.stderr
    assert "%d predictions" % (n - 1) in result.stderr and "%d valid frames" % n in result.stderr
    assert not os.path.exists(tmp_path / "out")


def test_user_errors_are_one_line_with_exit_2(test_set, tmp_path):
    root, export, _, _ = test_set
    result = run_script("--predictions", str(root / "inference_data.mat"), "--test-root",
                        str(tmp_path / "elsewhere"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "--test-root" in result.stderr and "download" in result.stderr
    partial = {k: v for k, v in export.items() if k != "TS2"}
    scipy.io.savemat(str(tmp_path / "partial.mat"), partial)
    result = run_script("--predictions", str(tmp_path / "partial.mat"), "--test-root", str(root),
                        "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "no variable TS2" in result.stderr and "Traceback" not in result.stderr
