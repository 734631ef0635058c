"""The 2D metrics people report for a pose detector: the mean joint error in full-frame pixels and
PCK (the share of joints within a distance), overall and per group of frames (Human3.6M: the
action; MPI-INF-3DHP: the sequence), as a table printed and saved like the 3D ones."""
import csv
import json
import os

import numpy as np


def joint_errors_px(predicted_px, truth_px):
    """(N, J, 2) and (N, J, 2) full-frame pixels -> (N, J) Euclidean distances."""
    return np.linalg.norm(np.asarray(predicted_px, np.float64)
                          - np.asarray(truth_px, np.float64), axis=-1)


def table_2d(errors_px, groups, names, threshold_px):
    """{'groups': {name: row}, 'average': row, 'pck_threshold_px': t}, a row being {'frames',
    'mean_px', 'pck'}: `errors_px` (N, J), `groups` (N,) ids, `names` {id: name}. The average is
    over every frame (each frame and joint counts once), pck a fraction in [0, 1]."""
    errors_px = np.asarray(errors_px, np.float64)
    groups = np.asarray(groups)

    def row(errors):
        return {"frames": int(len(errors)), "mean_px": float(errors.mean()),
                "pck": float((errors <= threshold_px).mean())}

    rows = {names.get(int(g), str(int(g))): row(errors_px[groups == g])
            for g in np.unique(groups)}
    return {"groups": rows, "average": row(errors_px), "pck_threshold_px": float(threshold_px)}


def format_table_2d(table):
    """The table as console text: one line per group, then the average."""
    header = "%-16s %7s %10s %8s" % ("group", "frames", "error px",
                                     "PCK@%gpx" % table["pck_threshold_px"])
    lines = [header]
    for name, row in list(table["groups"].items()) + [("average", table["average"])]:
        lines.append("%-16s %7d %10.2f %7.1f%%" % (name, row["frames"], row["mean_px"],
                                                  100 * row["pck"]))
    return "\n".join(lines)


def save_table_2d(table, folder, name):
    """folder/<name>.json (the table) and folder/<name>.csv (one row per group and the average);
    returns the two paths."""
    json_path = os.path.join(folder, name + ".json")
    csv_path = os.path.join(folder, name + ".csv")
    with open(json_path, "w") as f:
        json.dump(table, f, indent=1)
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["group", "frames", "mean_px", "pck_at_%gpx" % table["pck_threshold_px"]])
        for group, row in list(table["groups"].items()) + [("average", table["average"])]:
            writer.writerow([group, row["frames"], "%.4f" % row["mean_px"], "%.4f" % row["pck"]])
    return json_path, csv_path
