"""The official MPI-INF-3DHP test-set evaluation (the released MATLAB scripts' tables) for any
method's predictions in the released export format (docs/evaluate_3dhp.md).

  python MPI-INF-3DHP-Toolbox/evaluate_3dhp.py --predictions inference_data.mat \
      --test-root DIR --out OUT

reads `DIR/TS1..TS6/annot_data.mat`, writes mpii_3dhp_evaluation_sequencewise.csv,
mpii_3dhp_evaluation_activitywise.csv and mpii_3dhp_evaluation.json into OUT and prints the
per-sequence, per-scene and overall MPJPE / PCK@150 / AUC.
"""
import argparse
import os
import sys

try:
    from mvn.mpi_inf_3dhp import metrics as metrics_3dhp
    from mvn.errors import run_main
except ImportError as error:  # pragma: no cover - only without the package installed
    raise SystemExit("cannot import the project package `mvn` (%s): run `pip install -e .` in the "
                     "repository root, or set PYTHONPATH to it" % error)

PROGRAM = os.path.basename(__file__)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="MPI-INF-3DHP test-set evaluation as the released MATLAB scripts do it "
                    "(mpii_test_predictions_py.m + mpii_evaluate_errors.m): MPJPE per joint and "
                    "its 17-joint Average, PCK@150mm (error < 150) and AUC over 0:5:150mm per "
                    "joint group and the 14-joint Total, per sequence, per activity, per scene "
                    "and over all frames.")
    parser.add_argument("--predictions", required=True,
                        help="MATLAB file (v5 or v7.3) with variables TS1..TS6, each 3x17x1xN: "
                             "mm, root-relative, one prediction per valid frame in order (the "
                             "released export, inference_data.mat)")
    parser.add_argument("--test-root", required=True,
                        help="the folder holding TS1..TS6, each with annot_data.mat "
                             "(mpi_inf_3dhp_test_set after extraction)")
    parser.add_argument("--out", required=True,
                        help="folder for the CSV tables and the JSON (created if needed)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    metrics_3dhp.check_out_folder(args.out)
    result = metrics_3dhp.evaluate_inference_data(args.predictions, args.test_root)
    paths = metrics_3dhp.write_results(result, args.out)
    print(metrics_3dhp.format_results(result))
    print("wrote %s" % ", ".join(paths[k] for k in ("sequencewise", "activitywise", "json")))


if __name__ == "__main__":
    sys.exit(run_main(main, PROGRAM))
