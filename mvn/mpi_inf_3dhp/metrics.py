"""The MPI-INF-3DHP test-set evaluation (the dataset's MATLAB scripts): per-joint errors,
PCK@150 mm and AUC per joint group, MPJPE per joint, the sequencewise and activitywise tables of
the released MATLAB scripts (`mpii_test_predictions_py.m` -> `mpii_evaluate_errors.m` ->
`mpii_compute_3d_pck.m`), the scene scores of the test set's README, and the files they write.

Conventions:
  - errors are Euclidean distances in mm between root-relative poses; the ground truth is
    `univ_annot3` minus the pelvis (joint 14), the prediction is taken as given;
  - PCK counts an error strictly below the threshold (`<`, so 150.0 mm misses PCK@150);
  - AUC is the mean of the PCK curve over 0:5:150 mm, 31 thresholds, t=0 included (it adds 0);
  - "Total" PCK/AUC pools the 14 joints of the 8 groups (pelvis, spine and head are left out):
    the group curves weighted by group size, which is the pooled fraction of (joint, frame);
  - "Average" MPJPE is the mean over all 17 joints, the pelvis included (0 when the root is
    exactly 0 in the prediction, as in the released export);
  - tables are frame-weighted where they pool frames ("All", scenes, overall).
Arithmetic is float64 throughout (MATLAB subtracts a single-precision prediction from the double
ground truth in single; the difference is below 1e-5 mm per error).

The facts (joint names, groups, activities, thresholds, sequences, scenes) are read from
mvn.mpi_inf_3dhp, their single home.
"""
import csv
import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from mvn.errors import CAPFError
from mvn.mpi_inf_3dhp import matfile
from mvn.mpi_inf_3dhp.facts import (FACTS, JOINT_NAMES, NUM_JOINTS, ROOT_JOINT, SCENES,
                                    TEST_SEQUENCES)

# name -> 0-based joint indices, in the MATLAB table order (Head, Neck, Shou, ..., Ankle)
JOINT_GROUPS = {name: tuple(joints) for name, joints in FACTS["joint_groups"].items()}
GROUP_NAMES = tuple(JOINT_GROUPS)
TOTAL = "Total"                                      # the pooled 14-joint column
PCK_JOINTS = tuple(j for joints in JOINT_GROUPS.values() for j in joints)   # 14 joints
PCK_THRESHOLD_MM = float(FACTS["pck_threshold_mm"])                          # 150
AUC_THRESHOLDS_MM = np.array(FACTS["auc_thresholds_mm"], dtype=np.float64)   # (31,) 0:5:150
# activity id (1..7) -> name, in MATLAB row order
ACTIVITY_NAMES = {int(k): v for k, v in sorted(FACTS["activity_names"].items(),
                                               key=lambda item: int(item[0]))}
ALL = "All"                                          # the activitywise row over every frame
AVERAGE = "Average"                                  # the 17-joint mean MPJPE column

RESULT_FILES = {"sequencewise": "mpii_3dhp_evaluation_sequencewise.csv",
                "activitywise": "mpii_3dhp_evaluation_activitywise.csv",
                "json": "mpii_3dhp_evaluation.json"}
ANNOTATION_FILE = "annot_data.mat"
ANNOTATION_VARIABLES = ("valid_frame", "activity_annotation", "annot2", "univ_annot3")


class EvaluationError(CAPFError, ValueError):
    """Predictions or test annotations that cannot be evaluated; names the sequence or file."""


# --- per-frame errors and the scores of one set of frames --------------------------------------

def root_relative(poses_mm, root=ROOT_JOINT):
    """(N, 17, 3) poses minus their root joint (the pelvis): the MATLAB ground truth `P`."""
    poses_mm = np.asarray(poses_mm, dtype=np.float64)
    return poses_mm - poses_mm[..., root:root + 1, :]


def per_joint_errors_mm(predictions_mm, ground_truth_mm):
    """(N, 17) Euclidean error per frame and joint between two (N, 17, 3) root-relative poses."""
    predictions_mm = np.asarray(predictions_mm, dtype=np.float64)
    ground_truth_mm = np.asarray(ground_truth_mm, dtype=np.float64)
    if predictions_mm.shape != ground_truth_mm.shape or predictions_mm.ndim != 3 \
            or predictions_mm.shape[1:] != (NUM_JOINTS, 3):
        raise EvaluationError("predictions %s and ground truth %s must both be (frames, %d, 3)"
                              % (predictions_mm.shape, ground_truth_mm.shape, NUM_JOINTS))
    return np.linalg.norm(predictions_mm - ground_truth_mm, axis=-1)   # (N, 17)


def pck_curves(errors_mm, thresholds_mm=AUC_THRESHOLDS_MM):
    """(G+1, T) fraction of (joint, frame) pairs with error < t, per group then Total.

    errors_mm: (N, 17). With no frames the fractions are NaN (MATLAB divides 0 by 0)."""
    errors_mm = np.asarray(errors_mm, dtype=np.float64)
    thresholds_mm = np.asarray(thresholds_mm, dtype=np.float64)
    hits = errors_mm[:, :, None] < thresholds_mm[None, None, :]       # (N, 17, T), strict
    hits_per_joint = hits.sum(axis=0).astype(np.float64)              # (17, T)
    n_frames = errors_mm.shape[0]
    curves = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for joints in JOINT_GROUPS.values():
            curves.append(hits_per_joint[list(joints)].sum(0) / (len(joints) * n_frames))
        total = hits_per_joint[list(PCK_JOINTS)].sum(0) / (len(PCK_JOINTS) * n_frames)
    return np.stack(curves + [total])                                  # (G+1, T)


def pck_auc(errors_mm):
    """PCK@150 mm and AUC over 0:5:150 mm, in percent, per group then Total: two (G+1,)."""
    pck = 100.0 * pck_curves(errors_mm, [PCK_THRESHOLD_MM])[:, 0]     # (G+1,)
    auc = 100.0 * pck_curves(errors_mm, AUC_THRESHOLDS_MM).mean(axis=1)  # (G+1,)
    return pck, auc


def mpjpe_per_joint_mm(errors_mm):
    """(17,) mean error over frames of each joint; NaN with no frames (as MATLAB's mean)."""
    errors_mm = np.asarray(errors_mm, dtype=np.float64)
    if errors_mm.shape[0] == 0:
        return np.full(errors_mm.shape[1], np.nan)
    return errors_mm.mean(axis=0)


def frame_weighted(values, frames):
    """sum(frames * values) / sum(frames): the README's scene formula, e.g. GS =
    (603 TS1 + 540 TS2) / 1143. values: (R,) or (R, K); frames: (R,)."""
    values = np.asarray(values, dtype=np.float64)
    frames = np.asarray(frames, dtype=np.float64)
    weights = frames.reshape((-1,) + (1,) * (values.ndim - 1))
    return (weights * values).sum(axis=0) / frames.sum()


# --- tables ------------------------------------------------------------------------------------

@dataclass
class ScoreTable:
    """Scores of a list of frame sets (rows), as one MATLAB table: MPJPE per joint + Average,
    PCK and AUC per group + Total."""
    row_names: list            # table labels: 'TestSeq1'.., or activity names and 'All'
    frames: np.ndarray         # (R,) int, frames in each row
    mpjpe_mm: np.ndarray       # (R, 17) per joint
    average_mm: np.ndarray     # (R,) mean of the 17 per-joint values
    pck: np.ndarray            # (R, G+1) percent, groups then Total
    auc: np.ndarray            # (R, G+1) percent, groups then Total
    keys: list = field(default_factory=list)   # JSON keys of the rows ('TS1'.., or names)

    def row(self, key):
        """{'frames', 'mpjpe_mm', 'pck', 'auc'} (the Average and the Totals) of row `key`."""
        i = self.keys.index(key)
        return {"frames": int(self.frames[i]), "mpjpe_mm": float(self.average_mm[i]),
                "pck": float(self.pck[i, -1]), "auc": float(self.auc[i, -1])}


def score_table(errors_per_row, row_names, keys=None):
    """A ScoreTable from one (N_r, 17) error array per row."""
    mpjpe = np.stack([mpjpe_per_joint_mm(e) for e in errors_per_row])   # (R, 17)
    scores = [pck_auc(e) for e in errors_per_row]
    return ScoreTable(row_names=list(row_names),
                      frames=np.array([len(e) for e in errors_per_row], dtype=np.int64),
                      mpjpe_mm=mpjpe, average_mm=mpjpe.mean(axis=1),
                      pck=np.stack([s[0] for s in scores]), auc=np.stack([s[1] for s in scores]),
                      keys=list(keys if keys is not None else row_names))


def sequence_label(name):
    """'TS3' -> 'TestSeq3', the MATLAB row label."""
    return "TestSeq" + name[2:]


def sequencewise_table(errors_mm):
    """Rows TestSeq1..6 (the sequences present, in TEST_SEQUENCES order).
    errors_mm: name -> (n_valid, 17)."""
    names = [n for n in TEST_SEQUENCES if n in errors_mm]
    return score_table([errors_mm[n] for n in names], [sequence_label(n) for n in names], names)


def activitywise_table(errors_mm, activities):
    """Rows: the 7 activities (frames whose activity_annotation is that id) and 'All' (every
    frame, whatever its label). errors_mm: (N, 17), activities: (N,) ints."""
    activities = np.asarray(activities).reshape(-1)
    rows = [errors_mm[activities == a] for a in ACTIVITY_NAMES] + [errors_mm]
    names = list(ACTIVITY_NAMES.values()) + [ALL]
    return score_table(rows, names)


def scene_scores(table):
    """Frame-weighted sequence scores per scene (the test set's README), for the scenes whose
    sequences are all in `table`: name -> {'sequences', 'frames', 'mpjpe_mm', 'pck', 'auc'}."""
    scenes = {}
    for scene, members in SCENES.items():
        if not all(m in table.keys for m in members):
            continue
        rows = [table.keys.index(m) for m in members]
        frames = table.frames[rows]
        scenes[scene] = {"sequences": list(members), "frames": int(frames.sum()),
                         "mpjpe_mm": float(frame_weighted(table.average_mm[rows], frames)),
                         "pck": float(frame_weighted(table.pck[rows, -1], frames)),
                         "auc": float(frame_weighted(table.auc[rows, -1], frames))}
    return scenes


@dataclass
class Evaluation:
    """Everything one evaluation gives; write_results / format_results present it."""
    sequencewise: ScoreTable
    activitywise: ScoreTable
    scenes: dict               # scene -> frame-weighted sequence scores
    overall: dict              # frame-weighted over all frames (= the activitywise 'All' row)
    sequence_mean: dict        # unweighted mean of the sequence rows (the xlsx's other column)


def evaluate_errors(errors_mm, activities):
    """The MATLAB `mpii_evaluate_errors` on per-joint errors: errors_mm name -> (n_valid, 17),
    activities name -> (n_valid,), valid frames only."""
    names = [n for n in TEST_SEQUENCES if n in errors_mm]
    unknown = sorted(set(errors_mm) - set(TEST_SEQUENCES))
    if unknown or not names:
        raise EvaluationError("unknown test sequence %s (expected names among %s)"
                              % (", ".join(unknown) or "(none given)", ", ".join(TEST_SEQUENCES)))
    for name in names:
        if name not in activities or len(np.asarray(activities[name]).reshape(-1)) \
                != len(errors_mm[name]):
            raise EvaluationError("%s: the activity labels do not match its %d frames"
                                  % (name, len(errors_mm[name])))
    sequencewise = sequencewise_table(errors_mm)
    all_errors = np.concatenate([errors_mm[n] for n in names])                  # (N, 17)
    all_activities = np.concatenate([np.asarray(activities[n]).reshape(-1) for n in names])
    activitywise = activitywise_table(all_errors, all_activities)
    overall = {"frames": int(sequencewise.frames.sum()),
               "mpjpe_mm": float(frame_weighted(sequencewise.average_mm, sequencewise.frames)),
               "pck": float(frame_weighted(sequencewise.pck[:, -1], sequencewise.frames)),
               "auc": float(frame_weighted(sequencewise.auc[:, -1], sequencewise.frames))}
    sequence_mean = {"mpjpe_mm": float(sequencewise.average_mm.mean()),
                     "pck": float(sequencewise.pck[:, -1].mean()),
                     "auc": float(sequencewise.auc[:, -1].mean())}
    return Evaluation(sequencewise, activitywise, scene_scores(sequencewise), overall,
                      sequence_mean)


def evaluate_sequences(predictions_mm, ground_truth_mm, activities):
    """Evaluate root-relative predictions against the root-relative ground truth.

    All three are dicts keyed by sequence name ('TS1'..'TS6'), valid frames only, in order:
    predictions_mm and ground_truth_mm (n_valid, 17, 3), activities (n_valid,)."""
    missing = [n for n in ground_truth_mm if n not in predictions_mm]
    extra = [n for n in predictions_mm if n not in ground_truth_mm]
    if missing or extra:
        raise EvaluationError("the predictions %s; the test set has %s"
                              % ("lack " + ", ".join(missing) if missing
                                 else "have no test set for " + ", ".join(extra),
                                 ", ".join(ground_truth_mm)))
    errors = {}
    for name, truth in ground_truth_mm.items():
        predicted = np.asarray(predictions_mm[name], dtype=np.float64)
        truth = np.asarray(truth, dtype=np.float64)
        if predicted.ndim != 3 or predicted.shape[1:] != (NUM_JOINTS, 3):
            raise EvaluationError("%s: predictions of shape %s, expected (frames, %d, 3)"
                                  % (name, predicted.shape, NUM_JOINTS))
        if len(predicted) != len(truth):
            raise EvaluationError("%s: %d predictions, but the test set has %d valid frames "
                                  "(one prediction per valid frame, in order)"
                                  % (name, len(predicted), len(truth)))
        bad = np.flatnonzero(~np.isfinite(predicted).all(axis=(1, 2)))
        if len(bad):
            raise EvaluationError("%s: %d predictions are not finite (NaN or inf), the first at "
                                  "valid frame %d" % (name, len(bad), bad[0]))
        errors[name] = per_joint_errors_mm(predicted, truth)
    return evaluate_errors(errors, activities)


# --- files ---------------------------------------------------------------------------------------

def _cell(value):
    """A number as MATLAB's writetable writes it (15 significant digits, NaN as 'NaN')."""
    if isinstance(value, str):
        return value
    value = float(value)
    if math.isnan(value):
        return "NaN"
    return format(value, ".15g")


def matlab_table_cells(table):
    """The cell array of mpii_evaluate_errors, as rows of strings ('' for an empty cell):
    [''; joint names; 'Average'] + one row per table row, then the PCK block ['PCK', groups,
    'Total'] + rows, then the AUC block the same way; 17 + 2 columns."""
    width = NUM_JOINTS + 2

    def padded(row):
        return [_cell(v) for v in row] + [""] * (width - len(row))

    cells = [padded([""] + list(JOINT_NAMES) + [AVERAGE])]
    for i, name in enumerate(table.row_names):
        cells.append(padded([name] + list(table.mpjpe_mm[i]) + [table.average_mm[i]]))
    for title, values in (("PCK", table.pck), ("AUC", table.auc)):
        cells.append(padded([title] + list(GROUP_NAMES) + [TOTAL]))
        for i, name in enumerate(table.row_names):
            cells.append(padded([name] + list(values[i])))
    return cells


def _write_text(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        f.write(text)
    os.replace(tmp, path)


def _csv_text(table, variable):
    """writetable(cell2table(variable)): a header of variable names 'seq_table1'.., then the
    cells."""
    import io
    cells = matlab_table_cells(table)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["%s%d" % (variable, i + 1) for i in range(len(cells[0]))])
    writer.writerows(cells)
    return out.getvalue()


def _finite_or_none(value):
    value = float(value)
    return None if math.isnan(value) else value


def _table_json(table):
    rows = {}
    for i, key in enumerate(table.keys):
        rows[key] = {
            "label": table.row_names[i], "frames": int(table.frames[i]),
            "mpjpe_mm": {j: _finite_or_none(v) for j, v in zip(JOINT_NAMES, table.mpjpe_mm[i])},
            "average_mm": _finite_or_none(table.average_mm[i]),
            "pck": {g: _finite_or_none(v) for g, v in zip(GROUP_NAMES + (TOTAL,), table.pck[i])},
            "auc": {g: _finite_or_none(v) for g, v in zip(GROUP_NAMES + (TOTAL,), table.auc[i])}}
    return rows


def results_dict(result):
    """Everything of an Evaluation as plain JSON types (NaN, for an empty activity, as null)."""
    return {"protocol": {
                "ground_truth": "univ_annot3 minus the pelvis (joint %d), valid frames"
                                % ROOT_JOINT,
                "mpjpe": "mean over frames per joint; Average over all %d joints" % NUM_JOINTS,
                "pck_threshold_mm": PCK_THRESHOLD_MM, "pck_comparison": "error < threshold",
                "auc_thresholds_mm": AUC_THRESHOLDS_MM.tolist(),
                "joint_groups": {g: list(j) for g, j in JOINT_GROUPS.items()},
                "total": "the %d joints of the groups, pooled" % len(PCK_JOINTS),
                "weighting": "frame-weighted for All, scenes and overall"},
            "joint_names": list(JOINT_NAMES),
            "sequencewise": _table_json(result.sequencewise),
            "activitywise": _table_json(result.activitywise),
            "scenes": result.scenes,
            "overall": result.overall,
            "sequence_mean": result.sequence_mean}


def check_out_folder(out_folder):
    """An output folder that exists as something else than a folder is an EvaluationError
    (checked before the evaluation, so no work is lost)."""
    if os.path.exists(out_folder) and not os.path.isdir(out_folder):
        raise EvaluationError("the output folder %s is a file: choose a folder for the result "
                              "tables (created if needed)" % out_folder)


def write_results(result, out_folder):
    """Write the two MATLAB CSV tables and the JSON of everything into `out_folder`; returns
    {'sequencewise', 'activitywise', 'json'} -> path."""
    check_out_folder(out_folder)
    paths = {k: os.path.join(out_folder, v) for k, v in RESULT_FILES.items()}
    try:
        os.makedirs(out_folder, exist_ok=True)
        _write_text(paths["sequencewise"], _csv_text(result.sequencewise, "seq_table"))
        _write_text(paths["activitywise"], _csv_text(result.activitywise, "activity_table"))
        _write_text(paths["json"], json.dumps(results_dict(result), indent=1) + "\n")
    except OSError as error:   # a path through a file, no permission, a full disk
        raise EvaluationError("cannot write the results into %s (%s)" % (out_folder, error)
                              ) from None
    return paths


def format_results(result):
    """A compact console table: per sequence, per scene and All; MPJPE (17-joint Average, mm),
    PCK@150 and AUC (14-joint Totals, %)."""
    lines = ["%-10s %7s %9s %7s %7s" % ("", "frames", "MPJPE mm", "PCK", "AUC")]

    def line(label, row):
        lines.append("%-10s %7d %9.2f %7.2f %7.2f" % (label, row["frames"], row["mpjpe_mm"],
                                                      row["pck"], row["auc"]))

    for key in result.sequencewise.keys:
        line(key, result.sequencewise.row(key))
    for scene, row in result.scenes.items():
        line(scene, row)
    line(ALL, result.overall)
    return "\n".join(lines)


# --- the released export format (inference_data.mat) --------------------------------------------

def save_inference_data(path, predictions_mm):
    """Write predictions as the released code exports them: a MATLAB v5 file with one variable
    per sequence ('TS1'..'TS6'), float32 (3, 17, 1, n_valid), mm, root-relative.
    predictions_mm: name -> (n_valid, 17, 3)."""
    variables = {}
    for name, poses in predictions_mm.items():
        poses = np.asarray(poses)
        if poses.ndim != 3 or poses.shape[1:] != (NUM_JOINTS, 3):
            raise EvaluationError("%s: predictions of shape %s, expected (frames, %d, 3)"
                                  % (name, poses.shape, NUM_JOINTS))
        # (n, 17, 3) -> (3, 17, 1, n)
        variables[name] = np.ascontiguousarray(poses.transpose(2, 1, 0)[:, :, None, :],
                                               dtype=np.float32)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:           # a file object: savemat would append '.mat' to a name
        matfile.write_v5(f, variables)
    os.replace(tmp, path)


def _poses_from_matlab(array, name, path, channels):
    """(channels, 17, 1, n) in MATLAB axis order (or (channels, 17) when n == 1, MATLAB drops
    trailing singletons) -> (n, 17, channels)."""
    try:
        array = matfile.real_array(array, path, name)
    except matfile.MatFileError as error:
        raise EvaluationError(str(error)) from None
    if array.ndim < 2 or array.shape[:2] != (channels, NUM_JOINTS) or array.ndim > 4 \
            or (array.ndim == 4 and array.shape[2] != 1):
        raise EvaluationError("%s: %s has shape %s in MATLAB order, expected %dx%dx1xN"
                              % (path, name, "x".join(map(str, array.shape)), channels,
                                 NUM_JOINTS))
    return array.reshape(channels, NUM_JOINTS, -1).transpose(2, 1, 0)    # (n, 17, channels)


def load_inference_data(path, names=TEST_SEQUENCES):
    """Read predictions in the export format (MATLAB v5 or v7.3): name -> (n_valid, 17, 3)
    float64 mm."""
    if not os.path.isfile(path):
        raise EvaluationError("predictions file %s does not exist (it is the inference_data.mat "
                              "the evaluation run exports)" % path)
    try:
        variables = matfile.read_v73(path, list(names))
    except matfile.MatFileError as error:
        raise EvaluationError("%s; a predictions file holds %s, each a 3x17x1xN array (mm, "
                              "root-relative, one per valid frame)"
                              % (error, ", ".join(names))) from None
    return {n: _poses_from_matlab(variables[n], n, path, 3).astype(np.float64) for n in names}


# --- the test set's annotations -----------------------------------------------------------------

@dataclass
class SequenceAnnotations:
    """One test sequence's annotations, all frames (valid or not), in frame order."""
    name: str
    valid: np.ndarray            # (n,) bool
    activity: np.ndarray         # (n,) int, 1..7
    annot2_px: np.ndarray        # (n, 17, 2)
    univ_annot3_mm: np.ndarray   # (n, 17, 3)

    @property
    def ground_truth_mm(self):
        """(n_valid, 17, 3) the evaluation's ground truth: univ_annot3 minus the pelvis."""
        return root_relative(self.univ_annot3_mm[self.valid])

    @property
    def valid_activities(self):
        return self.activity[self.valid]   # (n_valid,)


def _folder_hint(test_root):
    nested = os.path.join(test_root, "mpi_inf_3dhp_test_set")
    if os.path.isdir(os.path.join(nested, TEST_SEQUENCES[0])):
        return " (did you mean --test-root %s?)" % nested
    return ""


def read_test_annotations(test_root, names=TEST_SEQUENCES):
    """name -> SequenceAnnotations from `<test_root>/TS<k>/annot_data.mat` (MATLAB v7.3, as
    released; a v5 file is read too)."""
    if not os.path.isdir(test_root):
        raise EvaluationError("test set folder %s does not exist: download and extract "
                              "mpi_inf_3dhp_test_set.zip; the test root (--test-root) is the "
                              "folder holding %s"
                              % (test_root, "..".join((names[0], names[-1]))))
    sequences = {}
    for name in names:
        path = os.path.join(test_root, name, ANNOTATION_FILE)
        if not os.path.isfile(path):
            raise EvaluationError("%s not found: the test root (--test-root) must be the folder "
                                  "holding %s (each with %s); download and extract the test "
                                  "set%s"
                                  % (path, "..".join((names[0], names[-1])), ANNOTATION_FILE,
                                     _folder_hint(test_root)))
        try:
            raw = matfile.read_v73(path, ANNOTATION_VARIABLES)
        except (OSError, matfile.MatFileError) as error:
            raise EvaluationError("%s: %s; download and extract the test set again"
                                  % (path, error)) from None
        valid = np.asarray(raw["valid_frame"]).reshape(-1) != 0            # (n,)
        activity = np.asarray(raw["activity_annotation"]).reshape(-1)      # (n,)
        annot2 = _poses_from_matlab(raw["annot2"], "annot2", path, 2)       # (n, 17, 2)
        univ = _poses_from_matlab(raw["univ_annot3"], "univ_annot3", path, 3)  # (n, 17, 3)
        counts = {"valid_frame": len(valid), "activity_annotation": len(activity),
                  "annot2": len(annot2), "univ_annot3": len(univ)}
        if len(set(counts.values())) != 1:
            raise EvaluationError("%s: the variables disagree on the number of frames (%s); "
                                  "download and extract the test set again"
                                  % (path, ", ".join("%s %d" % kv for kv in counts.items())))
        sequences[name] = SequenceAnnotations(name, valid, np.rint(activity).astype(np.int64),
                                              annot2.astype(np.float64),
                                              univ.astype(np.float64))
    return sequences


def evaluate_inference_data(predictions_path, test_root):
    """The whole official evaluation of a predictions file against the test set."""
    predictions = load_inference_data(predictions_path)
    test = read_test_annotations(test_root)
    for name, sequence in test.items():
        expected = int(sequence.valid.sum())
        if len(predictions[name]) != expected:
            raise EvaluationError("%s: %s holds %d predictions, but %s has %d valid frames "
                                  "(one prediction per valid frame, in order)"
                                  % (name, predictions_path, len(predictions[name]),
                                     os.path.join(test_root, name, ANNOTATION_FILE), expected))
    return evaluate_sequences(predictions, {n: s.ground_truth_mm for n, s in test.items()},
                              {n: s.valid_activities for n, s in test.items()})
