"""mvn/mpi_inf_3dhp/metrics.py against values computed here with plain loops, written from the released
MATLAB scripts (mpii_test_predictions_py.m, mpii_evaluate_errors.m, mpii_compute_3d_pck.m,
mpii_get_pck_auc_joint_groups.m), and against the shipped xlsx's published figures."""
import csv
import json
import math
import os

import h5py
import numpy as np
import pytest
import scipy.io

from conftest import REPO_ROOT
from mvn.mpi_inf_3dhp import matfile
from mvn.mpi_inf_3dhp import metrics as metrics_3dhp
from mvn.mpi_inf_3dhp.facts import JOINT_NAMES


# mpii_get_pck_auc_joint_groups.m, 1-based as written there; pelvis 15, spine 16, head 17 in none
MATLAB_GROUPS = [("Head", [1]), ("Neck", [2]), ("Shou", [3, 6]), ("Elbow", [4, 7]),
                 ("Wrist", [5, 8]), ("Hip", [9, 12]), ("Knee", [10, 13]), ("Ankle", [11, 14])]
# mpii_get_activity_name.m
MATLAB_ACTIVITIES = ["Standing/Walking", "Exercising", "Sitting", "Reaching/Crouching",
                     "On The Floor", "Sports", "Miscellaneous"]
THRESHOLDS = list(range(0, 151, 5))   # thresh = 0:5:150
SEQUENCES = ["TS1", "TS2", "TS3", "TS4", "TS5", "TS6"]


# --- the reference, in loops --------------------------------------------------------------------

def loop_errors(predicted, truth):
    """[[error of joint j in frame f]] from nested lists / arrays (n, 17, 3)."""
    out = []
    for f in range(len(predicted)):
        row = []
        for j in range(17):
            row.append(math.sqrt(sum((float(predicted[f][j][c]) - float(truth[f][j][c])) ** 2
                                     for c in range(3))))
        out.append(row)
    return out


def loop_fraction_below(errors, joints_1based, t):
    hits = 0
    for frame in errors:
        for j in joints_1based:
            if frame[j - 1] < t:
                hits += 1
    return hits / (len(joints_1based) * len(errors))


def loop_scores(errors):
    """What one MATLAB table row holds for frames `errors` (list of 17-lists)."""
    n = len(errors)
    mpjpe = [sum(frame[j] for frame in errors) / n for j in range(17)]
    pck, auc = {}, {}
    total_joints = []
    for name, joints in MATLAB_GROUPS:
        pck[name] = 100 * loop_fraction_below(errors, joints, 150)
        auc[name] = 100 * sum(loop_fraction_below(errors, joints, t) for t in THRESHOLDS) / 31
        total_joints += joints
    pck["Total"] = 100 * loop_fraction_below(errors, total_joints, 150)
    auc["Total"] = 100 * sum(loop_fraction_below(errors, total_joints, t)
                             for t in THRESHOLDS) / 31
    return {"frames": n, "mpjpe": mpjpe, "average": sum(mpjpe) / 17, "pck": pck, "auc": auc}


def loop_evaluation(errors_by_sequence, activities_by_sequence):
    """Sequence rows, activity rows + All, scenes and overall, from per-sequence error lists."""
    sequences = {name: loop_scores(errors) for name, errors in errors_by_sequence.items()}
    all_errors, all_activities = [], []
    for name in errors_by_sequence:
        all_errors += errors_by_sequence[name]
        all_activities += [int(a) for a in activities_by_sequence[name]]
    activities = {}
    for a, label in enumerate(MATLAB_ACTIVITIES, start=1):
        selected = [e for e, act in zip(all_errors, all_activities) if act == a]
        activities[label] = loop_scores(selected) if selected else None
    activities["All"] = loop_scores(all_errors)
    scenes = {}
    for scene, members in (("GS", ["TS1", "TS2"]), ("noGS", ["TS3", "TS4"]),
                           ("Outdoor", ["TS5", "TS6"])):
        frames = sum(sequences[m]["frames"] for m in members)
        scenes[scene] = {
            "frames": frames,
            "mpjpe_mm": sum(sequences[m]["frames"] * sequences[m]["average"]
                            for m in members) / frames,
            "pck": sum(sequences[m]["frames"] * sequences[m]["pck"]["Total"]
                       for m in members) / frames,
            "auc": sum(sequences[m]["frames"] * sequences[m]["auc"]["Total"]
                       for m in members) / frames}
    return sequences, activities, scenes


def random_test_set(seed=0, frames=(7, 5, 6, 4, 3, 8)):
    """Root-relative GT and predictions (n, 17, 3) and activities per sequence: errors spread
    over 0..~250 mm so that every threshold matters; the predicted root is exact."""
    rng = np.random.default_rng(seed)
    truth, predicted, activities = {}, {}, {}
    for name, n in zip(SEQUENCES, frames):
        gt = rng.normal(0, 300, (n, 17, 3))
        gt -= gt[:, 14:15]
        direction = rng.normal(size=(n, 17, 3))
        direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
        pred = gt + direction * rng.uniform(0, 250, (n, 17, 1))
        pred[:, 14] = 0.0
        truth[name], predicted[name] = gt, pred
        activities[name] = rng.integers(1, 8, n)
    return predicted, truth, activities


# --- the single numbers --------------------------------------------------------------------------

def test_joint_groups_are_those_of_the_matlab_code():
    assert list(metrics_3dhp.GROUP_NAMES) == [g for g, _ in MATLAB_GROUPS]
    for name, joints in MATLAB_GROUPS:
        assert list(metrics_3dhp.JOINT_GROUPS[name]) == [j - 1 for j in joints]
    assert sorted(metrics_3dhp.PCK_JOINTS) == list(range(14))   # pelvis, spine, head excluded
    assert list(metrics_3dhp.ACTIVITY_NAMES.values()) == MATLAB_ACTIVITIES
    assert list(metrics_3dhp.AUC_THRESHOLDS_MM) == THRESHOLDS


def test_per_joint_errors_are_euclidean_distances():
    predicted, truth, _ = random_test_set()
    errors = metrics_3dhp.per_joint_errors_mm(predicted["TS1"], truth["TS1"])
    assert errors.shape == (7, 17)
    np.testing.assert_allclose(errors, loop_errors(predicted["TS1"], truth["TS1"]), rtol=1e-12)


def test_ground_truth_is_univ_annot3_minus_the_pelvis():
    poses = np.arange(2 * 17 * 3, dtype=np.float64).reshape(2, 17, 3) ** 1.5
    relative = metrics_3dhp.root_relative(poses)
    for f in range(2):
        for j in range(17):
            for c in range(3):
                assert relative[f, j, c] == poses[f, j, c] - poses[f, 14, c]


def _errors_along_x(values_mm):
    """Root-relative GT at 0 and predictions (values, 0, 0): the errors are exactly `values`."""
    values_mm = np.asarray(values_mm, dtype=np.float64)          # (n, 17)
    predicted = np.zeros(values_mm.shape + (3,))
    predicted[..., 0] = values_mm
    return predicted, np.zeros_like(predicted)


def test_pck_counts_errors_strictly_below_150mm():
    values = np.full((2, 17), 10.0)
    values[0, 0] = 150.0                       # head_top: exactly 150 does not count
    values[1, 0] = np.nextafter(150.0, 0)      # just below counts
    values[:, 4] = 150.0                       # right_wrist in both frames
    errors = metrics_3dhp.per_joint_errors_mm(*_errors_along_x(values))
    assert errors[0, 0] == 150.0
    pck, _ = metrics_3dhp.pck_auc(errors)
    reference = loop_scores(errors.tolist())["pck"]
    assert pck[0] == pytest.approx(50.0) == reference["Head"]
    assert pck[4] == pytest.approx(50.0) == reference["Wrist"]          # 2 of 4 below
    assert pck[-1] == pytest.approx(100 * (28 - 3) / 28)
    assert pck[-1] == pytest.approx(reference["Total"], rel=1e-12)


def test_auc_averages_31_thresholds_including_zero():
    errors = np.zeros((3, 17))
    _, auc = metrics_3dhp.pck_auc(errors)
    np.testing.assert_allclose(auc, 100 * 30 / 31, rtol=1e-14)          # 0 < 0 is false
    errors = np.full((3, 17), 7.0)                                       # counts from t=10
    _, auc = metrics_3dhp.pck_auc(errors)
    np.testing.assert_allclose(auc, 100 * 29 / 31, rtol=1e-14)
    errors = np.full((3, 17), 5.0)                                       # 5 < 5 is false
    _, auc = metrics_3dhp.pck_auc(errors)
    np.testing.assert_allclose(auc, 100 * 29 / 31, rtol=1e-14)
    errors = np.full((3, 17), 150.0)                                     # never below
    pck, auc = metrics_3dhp.pck_auc(errors)
    assert (pck == 0).all() and (auc == 0).all()


def test_total_pools_the_14_grouped_joints_and_leaves_out_pelvis_spine_and_head():
    errors = np.zeros((4, 17))
    errors[:, 14:17] = 1000.0                  # pelvis, spine, head: far off, not counted
    pck, auc = metrics_3dhp.pck_auc(errors)
    assert pck[-1] == 100.0 and auc[-1] == pytest.approx(100 * 30 / 31)
    errors[:, 2] = 1000.0                      # right_shoulder: 1 of the 14 joints
    errors[0, 9] = 1000.0                      # right_knee in 1 of 4 frames
    pck, auc = metrics_3dhp.pck_auc(errors)
    reference = loop_scores(errors.tolist())
    assert pck[-1] == pytest.approx(100 * (56 - 5) / 56)
    assert pck[-1] == pytest.approx(reference["pck"]["Total"], rel=1e-12)
    assert auc[-1] == pytest.approx(reference["auc"]["Total"])
    # the group-size-weighted mean of the group values is the pooled value
    sizes = [len(j) for _, j in MATLAB_GROUPS]
    assert pck[-1] == pytest.approx(sum(s * v for s, v in zip(sizes, pck[:-1])) / 14)
    assert pck[2] == 50.0 and pck[6] == pytest.approx(87.5)


def test_average_is_the_mean_over_all_17_joints_pelvis_included():
    predicted, truth, _ = random_test_set()
    errors = metrics_3dhp.per_joint_errors_mm(predicted["TS2"], truth["TS2"])
    table = metrics_3dhp.score_table([errors], ["TestSeq2"], ["TS2"])
    reference = loop_scores(loop_errors(predicted["TS2"], truth["TS2"]))
    assert reference["mpjpe"][14] == 0.0       # the exported root is exact
    np.testing.assert_allclose(table.mpjpe_mm[0], reference["mpjpe"], rtol=1e-12)
    assert table.average_mm[0] == pytest.approx(reference["average"], rel=1e-12)
    others = reference["mpjpe"][:14] + reference["mpjpe"][15:]
    assert table.average_mm[0] == pytest.approx(sum(others) / 17, rel=1e-12)


def test_a_prediction_equal_to_the_ground_truth_scores_mpjpe_0_pck_100_auc_30_of_31():
    _, truth, activities = random_test_set()
    result = metrics_3dhp.evaluate_sequences(truth, truth, activities)
    for table in (result.sequencewise, result.activitywise):
        assert (table.mpjpe_mm == 0).all() and (table.average_mm == 0).all()
        assert (table.pck == 100).all()
        np.testing.assert_allclose(table.auc, 100 * 30 / 31, rtol=1e-14)
    assert result.overall["mpjpe_mm"] == 0 and result.overall["pck"] == 100
    assert result.overall["auc"] == pytest.approx(100 * 30 / 31)


# --- the tables ----------------------------------------------------------------------------------

def _assert_row(table, i, reference):
    assert table.frames[i] == reference["frames"]
    np.testing.assert_allclose(table.mpjpe_mm[i], reference["mpjpe"], rtol=1e-12)
    assert table.average_mm[i] == pytest.approx(reference["average"], rel=1e-12)
    np.testing.assert_allclose(table.pck[i], [reference["pck"][g] for g, _ in MATLAB_GROUPS]
                               + [reference["pck"]["Total"]], rtol=1e-12)
    np.testing.assert_allclose(table.auc[i], [reference["auc"][g] for g, _ in MATLAB_GROUPS]
                               + [reference["auc"]["Total"]], rtol=1e-12)


def test_sequence_activity_scene_and_overall_values_match_the_loops():
    predicted, truth, activities = random_test_set(seed=1)
    result = metrics_3dhp.evaluate_sequences(predicted, truth, activities)
    errors = {n: loop_errors(predicted[n], truth[n]) for n in SEQUENCES}
    sequences, activity_rows, scenes = loop_evaluation(errors, activities)

    assert result.sequencewise.row_names == ["TestSeq%d" % k for k in range(1, 7)]
    for i, name in enumerate(SEQUENCES):
        _assert_row(result.sequencewise, i, sequences[name])

    assert result.activitywise.row_names == MATLAB_ACTIVITIES + ["All"]
    for i, label in enumerate(MATLAB_ACTIVITIES + ["All"]):
        assert activity_rows[label] is not None
        _assert_row(result.activitywise, i, activity_rows[label])

    assert list(result.scenes) == ["GS", "noGS", "Outdoor"]
    for scene, reference in scenes.items():
        for key in ("frames", "mpjpe_mm", "pck", "auc"):
            assert result.scenes[scene][key] == pytest.approx(reference[key], rel=1e-12)

    # overall: frame-weighted over the sequences = the activitywise All row
    everything = activity_rows["All"]
    assert result.overall["frames"] == 33
    assert result.overall["mpjpe_mm"] == pytest.approx(everything["average"], rel=1e-12)
    assert result.overall["pck"] == pytest.approx(everything["pck"]["Total"], rel=1e-12)
    assert result.overall["auc"] == pytest.approx(everything["auc"]["Total"], rel=1e-12)
    assert result.sequence_mean["mpjpe_mm"] == pytest.approx(
        sum(sequences[n]["average"] for n in SEQUENCES) / 6, rel=1e-12)


def test_an_activity_without_frames_gives_a_nan_row_and_all_still_counts_every_frame(tmp_path):
    predicted, truth, activities = random_test_set(seed=2)
    activities = {n: np.where(a == 3, 4, a) for n, a in activities.items()}   # no "Sitting"
    activities["TS6"][0] = 9                                                 # in no activity row
    result = metrics_3dhp.evaluate_sequences(predicted, truth, activities)
    sitting = MATLAB_ACTIVITIES.index("Sitting")
    assert result.activitywise.frames[sitting] == 0
    assert np.isnan(result.activitywise.mpjpe_mm[sitting]).all()
    assert np.isnan(result.activitywise.pck[sitting]).all()
    assert result.activitywise.frames[-1] == 33
    assert result.activitywise.frames[:-1].sum() == 32
    paths = metrics_3dhp.write_results(result, str(tmp_path))
    rows = _read_csv(paths["activitywise"])
    assert rows[2 + sitting][0] == "Sitting" and rows[2 + sitting][1:] == ["NaN"] * 18
    with open(paths["json"]) as f:
        assert json.load(f)["activitywise"]["Sitting"]["average_mm"] is None


def test_scene_and_overall_weights_reproduce_the_shipped_xlsx():
    with open(os.path.join(REPO_ROOT, "tests", "reference", "mpi_inf_3dhp", "facts.json")) as f:
        sheet = json.load(f)["published"]["xlsx_3dhp_test_mpii_3dhp_evaluation_sequencewise"]
    frames = [603, 540, 505, 553, 276, 452]      # the test set README's weights
    for metric, column in (("mpjpe_mm", "mpjpe_per_seq_mm"), ("pck", "pck_total_per_seq"),
                           ("auc", "auc_total_per_seq")):
        values = [sheet[column][n] for n in SEQUENCES]
        assert metrics_3dhp.frame_weighted(values, frames) == pytest.approx(
            sheet["frame_weighted"][metric], abs=1e-9)
    # each sequence's "Average" is the mean of its 17 per-joint values, pelvis (0) included
    for name in SEQUENCES:
        per_joint = [sheet["per_joint_mpjpe_mm"][name][j] for j in JOINT_NAMES]
        assert per_joint[14] == 0.0
        assert sum(per_joint) / 17 == pytest.approx(sheet["mpjpe_per_seq_mm"][name], abs=1e-9)


def test_predictions_of_the_wrong_length_name_the_sequence():
    predicted, truth, activities = random_test_set()
    predicted["TS4"] = predicted["TS4"][:-1]
    with pytest.raises(metrics_3dhp.EvaluationError, match=r"TS4: 3 predictions.*4 valid frames"):
        metrics_3dhp.evaluate_sequences(predicted, truth, activities)
    predicted, truth, activities = random_test_set()
    del predicted["TS5"]
    with pytest.raises(metrics_3dhp.EvaluationError, match="lack TS5"):
        metrics_3dhp.evaluate_sequences(predicted, truth, activities)
    predicted, truth, activities = random_test_set()
    predicted["TS2"][1, 3, 0] = np.nan
    with pytest.raises(metrics_3dhp.EvaluationError, match="TS2: 1 predictions are not finite"):
        metrics_3dhp.evaluate_sequences(predicted, truth, activities)


# --- files ---------------------------------------------------------------------------------------

def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_csv_tables_follow_the_matlab_cell_layout(tmp_path):
    predicted, truth, activities = random_test_set(seed=3)
    result = metrics_3dhp.evaluate_sequences(predicted, truth, activities)
    paths = metrics_3dhp.write_results(result, str(tmp_path / "out"))
    errors = {n: loop_errors(predicted[n], truth[n]) for n in SEQUENCES}
    sequences, activity_rows, _ = loop_evaluation(errors, activities)
    groups = [g for g, _ in MATLAB_GROUPS]

    for kind, variable, labels, reference in (
            ("sequencewise", "seq_table", ["TestSeq%d" % k for k in range(1, 7)],
             [sequences[n] for n in SEQUENCES]),
            ("activitywise", "activity_table", MATLAB_ACTIVITIES + ["All"],
             [activity_rows[a] for a in MATLAB_ACTIVITIES + ["All"]])):
        rows = _read_csv(paths[kind])
        r = len(labels)
        assert len(rows) == 1 + 3 * (1 + r) and all(len(row) == 19 for row in rows)
        assert rows[0] == ["%s%d" % (variable, i) for i in range(1, 20)]
        assert rows[1] == [""] + list(JOINT_NAMES) + ["Average"]
        assert [row[0] for row in rows[2:2 + r]] == labels
        assert rows[2 + r] == ["PCK"] + groups + ["Total"] + [""] * 9
        assert [row[0] for row in rows[3 + r:3 + 2 * r]] == labels
        assert rows[3 + 2 * r] == ["AUC"] + groups + ["Total"] + [""] * 9
        assert [row[0] for row in rows[4 + 2 * r:]] == labels
        for i, ref in enumerate(reference):
            mpjpe_row, pck_row, auc_row = rows[2 + i], rows[3 + r + i], rows[4 + 2 * r + i]
            np.testing.assert_allclose([float(v) for v in mpjpe_row[1:18]], ref["mpjpe"],
                                       rtol=1e-13)
            assert float(mpjpe_row[18]) == pytest.approx(ref["average"], rel=1e-13)   # Average
            assert float(pck_row[9]) == pytest.approx(ref["pck"]["Total"], rel=1e-13)  # Total
            assert float(auc_row[9]) == pytest.approx(ref["auc"]["Total"], rel=1e-13)
            np.testing.assert_allclose([float(v) for v in auc_row[1:9]],
                                       [ref["auc"][g] for g in groups], rtol=1e-13)
            assert pck_row[10:] == [""] * 9
    # numbers as writetable prints doubles: up to 15 significant digits
    cell = _read_csv(paths["sequencewise"])[2][1]
    assert cell == format(float(cell), ".15g") and len(cell.replace(".", "")) <= 16


def test_json_holds_tables_scenes_and_overall(tmp_path):
    predicted, truth, activities = random_test_set(seed=4)
    result = metrics_3dhp.evaluate_sequences(predicted, truth, activities)
    paths = metrics_3dhp.write_results(result, str(tmp_path))
    with open(paths["json"]) as f:
        saved = json.load(f)
    assert saved["sequencewise"]["TS3"]["label"] == "TestSeq3"
    assert saved["sequencewise"]["TS3"]["average_mm"] == pytest.approx(
        loop_scores(loop_errors(predicted["TS3"], truth["TS3"]))["average"], rel=1e-12)
    assert list(saved["activitywise"]) == MATLAB_ACTIVITIES + ["All"]
    assert set(saved["scenes"]) == {"GS", "noGS", "Outdoor"}
    assert saved["scenes"]["noGS"]["frames"] == 6 + 4
    assert saved["overall"]["pck"] == pytest.approx(saved["activitywise"]["All"]["pck"]["Total"])
    text = metrics_3dhp.format_results(result)
    assert "TS1" in text and "Outdoor" in text and "All" in text


def test_inference_data_round_trip_is_float32_3x17x1xn(tmp_path):
    predicted, _, _ = random_test_set()
    path = str(tmp_path / "inference_data.mat")
    metrics_3dhp.save_inference_data(path, predicted)
    raw = scipy.io.loadmat(path)
    for name in SEQUENCES:
        n = len(predicted[name])
        assert raw[name].dtype == np.float32 and raw[name].shape == (3, 17, 1, n)
        for f in range(n):
            for j in range(17):
                for c in range(3):
                    assert raw[name][c, j, 0, f] == np.float32(predicted[name][f, j, c])
    loaded = metrics_3dhp.load_inference_data(path)
    assert list(loaded) == SEQUENCES
    for name in SEQUENCES:
        assert loaded[name].shape == predicted[name].shape
        np.testing.assert_array_equal(loaded[name], predicted[name].astype(np.float32))


def test_inference_data_in_v73_and_with_a_single_frame_is_read(tmp_path):
    predicted, _, _ = random_test_set(frames=(1, 2, 3, 2, 1, 2))
    path = str(tmp_path / "inference_v73.mat")
    matfile.write_v73(path, {n: p.transpose(2, 1, 0)[:, :, None, :] for n, p in predicted.items()})
    loaded = metrics_3dhp.load_inference_data(path)
    for name in SEQUENCES:
        np.testing.assert_array_equal(loaded[name], predicted[name])
    # MATLAB drops trailing singleton dimensions: a 1-frame sequence is 3x17
    scipy.io.savemat(str(tmp_path / "one.mat"), {n: p.transpose(2, 1, 0)[:, :, 0]
                                                  if len(p) == 1 else
                                                  p.transpose(2, 1, 0)[:, :, None, :]
                                                  for n, p in predicted.items()})
    loaded = metrics_3dhp.load_inference_data(str(tmp_path / "one.mat"))
    np.testing.assert_array_equal(loaded["TS1"], predicted["TS1"])


def test_inference_data_errors_name_the_variable_and_the_expected_shape(tmp_path):
    predicted, _, _ = random_test_set()
    path = str(tmp_path / "inference_data.mat")
    partial = dict(predicted)
    del partial["TS4"]
    metrics_3dhp.save_inference_data(path, partial)
    with pytest.raises(metrics_3dhp.EvaluationError, match=r"no variable TS4.*3x17x1xN"):
        metrics_3dhp.load_inference_data(path)
    scipy.io.savemat(path, {n: np.zeros((17, 3, 1, 4), np.float32) for n in SEQUENCES})
    with pytest.raises(metrics_3dhp.EvaluationError, match=r"TS1 has shape 17x3x1x4.*3x17x1xN"):
        metrics_3dhp.load_inference_data(path)
    with pytest.raises(metrics_3dhp.EvaluationError, match="does not exist"):
        metrics_3dhp.load_inference_data(str(tmp_path / "nothing.mat"))
    with pytest.raises(metrics_3dhp.EvaluationError, match=r"TS2: predictions of shape \(4, 3\)"):
        metrics_3dhp.save_inference_data(path, {"TS2": np.zeros((4, 3))})


# --- annot_data.mat ------------------------------------------------------------------------------

def _annotations(rng, n):
    valid = (rng.random(n) < 0.7).astype(np.float64)
    valid[0] = 1
    activity = rng.integers(1, 8, n).astype(np.float64)
    annot2 = rng.uniform(0, 2048, (n, 17, 2))
    univ = rng.normal(0, 500, (n, 17, 3)) + [0, 0, 4000]
    return valid, activity, annot2, univ


def _write_with_h5py(path, variables):
    """A v7.3 file as MATLAB writes it, built here without mvn.mpi_inf_3dhp.matfile: a 512-byte text header
    (the HDF5 user block), arrays stored transposed, a MATLAB_class attribute on each."""
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, (value, matlab_class) in variables.items():
            dataset = f.create_dataset(name, data=np.asarray(value).T)
            dataset.attrs["MATLAB_class"] = np.bytes_(matlab_class)
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 00:00:00 1970 " \
             b"HDF5 schema 1.00 ."
    header = header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM"
    with open(path, "r+b") as f:
        f.write(header.ljust(512, b"\x00"))


@pytest.mark.parametrize("writer", ["matfile", "h5py"])
def test_annot_data_v73_is_read_in_frame_joint_order(tmp_path, writer):
    rng = np.random.default_rng(5)
    expected = {}
    for k, name in enumerate(SEQUENCES):
        n = 4 + k
        valid, activity, annot2, univ = _annotations(rng, n)
        expected[name] = valid, activity, annot2, univ
        folder = tmp_path / name
        folder.mkdir()
        # MATLAB shapes: valid_frame and activity_annotation n x 1, annot2 2x17x1xn,
        # univ_annot3 3x17x1xn
        matlab = {"valid_frame": (valid.reshape(n, 1), "double"),
                  "activity_annotation": (activity.reshape(n, 1), "double"),
                  "annot2": (annot2.transpose(2, 1, 0)[:, :, None, :], "double"),
                  "univ_annot3": (univ.transpose(2, 1, 0)[:, :, None, :], "double")}
        path = str(folder / "annot_data.mat")
        if writer == "matfile":
            matfile.write_v73(path, {k: v for k, (v, _) in matlab.items()})
        else:
            _write_with_h5py(path, matlab)
        with open(path, "rb") as f:
            assert f.read(10) == b"MATLAB 7.3"
        with h5py.File(path, "r") as f:
            assert f["univ_annot3"].shape == (n, 1, 17, 3)     # as h5py sees MATLAB's order
    sequences = metrics_3dhp.read_test_annotations(str(tmp_path))
    assert list(sequences) == SEQUENCES
    for name, (valid, activity, annot2, univ) in expected.items():
        s = sequences[name]
        assert s.valid.dtype == bool and list(s.valid) == [v == 1 for v in valid]
        assert list(s.activity) == [int(a) for a in activity]
        assert s.annot2_px.shape == annot2.shape
        for f in range(len(valid)):
            for j in range(17):
                assert list(s.annot2_px[f, j]) == list(annot2[f, j])
                assert list(s.univ_annot3_mm[f, j]) == list(univ[f, j])
        rows = [f for f in range(len(valid)) if valid[f]]
        gt = s.ground_truth_mm
        assert gt.shape == (len(rows), 17, 3)
        for i, f in enumerate(rows):
            for j in range(17):
                for c in range(3):
                    assert gt[i, j, c] == univ[f, j, c] - univ[f, 14, c]
        assert list(s.valid_activities) == [int(activity[f]) for f in rows]


def test_annot_data_errors_name_the_file_and_what_to_do(tmp_path):
    with pytest.raises(metrics_3dhp.EvaluationError, match="does not exist.*download"):
        metrics_3dhp.read_test_annotations(str(tmp_path / "absent"))
    nested = tmp_path / "mpi_inf_3dhp_test_set" / "TS1"
    nested.mkdir(parents=True)
    message = r"TS1/annot_data.mat not found.*--test-root.*TS1\.\.TS6.*did you mean"
    with pytest.raises(metrics_3dhp.EvaluationError, match=message):
        metrics_3dhp.read_test_annotations(str(tmp_path))
    rng = np.random.default_rng(6)
    valid, activity, annot2, univ = _annotations(rng, 3)
    matfile.write_v73(str(nested / "annot_data.mat"),
                      {"valid_frame": valid.reshape(3, 1), "annot2": annot2.transpose(2, 1, 0),
                       "univ_annot3": univ.transpose(2, 1, 0)})
    with pytest.raises(metrics_3dhp.EvaluationError, match=r"annot_data.mat has no variable "
                                                           r"activity_annotation"):
        metrics_3dhp.read_test_annotations(str(nested.parent), names=("TS1",))
    matfile.write_v73(str(nested / "annot_data.mat"),
                      {"valid_frame": np.ones((4, 1)),
                       "activity_annotation": activity.reshape(3, 1),
                       "annot2": annot2.transpose(2, 1, 0)[:, :, None, :],
                       "univ_annot3": univ.transpose(2, 1, 0)[:, :, None, :]})
    with pytest.raises(metrics_3dhp.EvaluationError, match="disagree on the number of frames"):
        metrics_3dhp.read_test_annotations(str(nested.parent), names=("TS1",))
