"""The Human3.6M protocol: the per-action table (P1, P2, MPJVE per action and their average),
as the released evaluation computes it (docs/fidelity.md, "Evaluation"), printed and saved.

The table's columns are COLUMNS: a new column is one more entry there (its key, its header and
how an action's value is computed); the table, its text, its CSV and the quick start's table
follow it.
"""
import csv
import json
import logging
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

from mvn.human36m.facts import ACTION_NAMES, ACTIONS
from mvn.metrics import mpjpe, mpjve, p_mpjpe

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Column:
    """One column of the per-action table. `value(predicted_mm, target_mm, trials)` gives an
    action's value from its frames ((n, 17, 3) mm, label-list order) and `trials`, the row
    indices (into those n) of each of its trials (subactions), in list order."""
    key: str      # the key of a row in the JSON table
    header: str   # the console header; the CSV's is '<key>_mm'
    value: Callable


def _p1(predicted_mm, target_mm, trials):
    return float(mpjpe(predicted_mm, target_mm, reduce=False).mean())


def _p2(predicted_mm, target_mm, trials):
    return float(p_mpjpe(predicted_mm, target_mm, reduce=False).mean())


def _mpjve(predicted_mm, target_mm, trials):
    """Per trial, the mean velocity error of its frames as they stand in the list (differences
    cross camera and subject boundaries, as the released evaluation's do); frame-weighted over
    the trials. A one-frame trial has no velocity (the released code would give NaN)."""
    total, frames = 0.0, 0
    for rows in trials:
        if len(rows) > 1:
            total += len(rows) * mpjve(predicted_mm[rows], target_mm[rows])
            frames += len(rows)
    return total / frames if frames else float("nan")


COLUMNS = (Column("p1", "P1", _p1), Column("p2", "P2", _p2), Column("mpjve", "MPJVE", _mpjve))


def per_action_errors(predicted_m, target_m, action_ids, subaction_ids):
    """The protocol's per-action table from root-relative poses in metres.

    predicted_m, target_m: (N, 17, 3) (or (N, 1, 17, 3)) in label-list order; action_ids (N,)
    ints 2..16 and subaction_ids (N,) ints 1..2 (the trial). An action's value of each of
    COLUMNS comes from its frames (P1, P2: per-frame means; MPJVE: `_mpjve`). Returns
    {'actions': {name: {<column key>..., 'frames'}}, 'average': {...}, 'missing': [names],
    'non_finite_frames': [indices]} in millimetres. Averages are the plain mean over the actions
    present; an action with no frames is reported missing and left out (the released code
    prints NaN); a frame with a non-finite prediction or target is reported (warning and
    'non_finite_frames') and left out instead of crashing the alignment.
    """
    action_ids = np.asarray(action_ids)
    subaction_ids = np.asarray(subaction_ids)
    n = len(action_ids)
    if subaction_ids.shape != (n,):
        raise ValueError("per_action_errors: %d action ids but subaction ids of shape %s"
                         % (n, subaction_ids.shape))
    predicted = np.asarray(predicted_m, dtype=np.float64).reshape(n, -1, 3) * 1000
    target = np.asarray(target_m, dtype=np.float64).reshape(n, -1, 3) * 1000
    finite = np.isfinite(predicted).all((1, 2)) & np.isfinite(target).all((1, 2))  # (N,)
    non_finite = np.flatnonzero(~finite)
    if len(non_finite):  # e.g. a diverged model: reported, and left out of every number
        logger.warning("%d of %d evaluation frames have non-finite predictions or targets and "
                       "are left out of the table: frames %s", len(non_finite), n,
                       ", ".join(str(i) for i in non_finite[:10])
                       + (", ..." if len(non_finite) > 10 else ""))
        keep = np.flatnonzero(finite)
        predicted, target = predicted[keep], target[keep]
        action_ids, subaction_ids = action_ids[keep], subaction_ids[keep]

    actions, missing = {}, []
    for action in ACTIONS:
        name = ACTION_NAMES[action]
        index = np.flatnonzero(action_ids == action)  # label-list order
        if len(index) == 0:
            missing.append(name)
            continue
        trials = [np.flatnonzero(subaction_ids[index] == trial)
                  for trial in np.unique(subaction_ids[index])]
        row = {column.key: column.value(predicted[index], target[index], trials)
               for column in COLUMNS}
        row["frames"] = int(len(index))
        actions[name] = row
    if missing:
        logger.warning("no evaluation frames for %d action(s): %s; they are left out of the "
                       "averages", len(missing), ", ".join(missing))
    average = {column.key: float(np.nanmean([row[column.key] for row in actions.values()]))
               if actions else float("nan") for column in COLUMNS}
    average["frames"] = int(sum(row["frames"] for row in actions.values()))
    return {"actions": actions, "average": average, "missing": missing,
            "non_finite_frames": [int(i) for i in non_finite]}


def format_table(errors):
    """The per-action table as aligned text (mm)."""
    def line(name, values, frames):
        return "%-16s" % name + "".join(" %8s" % v for v in values) + " %8d" % frames

    lines = ["%-16s" % "action" + "".join(" %8s" % c.header for c in COLUMNS) + " %8s" % "frames"]
    for name, row in errors["actions"].items():
        lines.append(line(name, ["%.2f" % row[c.key] for c in COLUMNS], row["frames"]))
    for name in errors["missing"]:
        lines.append(line(name, ["-"] * len(COLUMNS), 0))
    average = errors["average"]
    lines.append(line("average", ["%.2f" % average[c.key] for c in COLUMNS], average["frames"]))
    return "\n".join(lines)


def save_table(errors, folder, name="evaluation"):
    """The per-action table as `folder/<name>.json` and `.csv` (mm); returns the two paths."""
    json_path = os.path.join(folder, name + ".json")
    csv_path = os.path.join(folder, name + ".csv")
    with open(json_path, "w") as f:
        json.dump(errors, f, indent=2)
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["action"] + ["%s_mm" % c.key for c in COLUMNS] + ["frames"])
        for action, row in errors["actions"].items():
            writer.writerow([action] + ["%.4f" % row[c.key] for c in COLUMNS] + [row["frames"]])
        for action in errors["missing"]:
            writer.writerow([action] + [""] * len(COLUMNS) + [0])
        average = errors["average"]
        writer.writerow(["average"] + ["%.4f" % average[c.key] for c in COLUMNS]
                        + [average["frames"]])
    return json_path, csv_path
