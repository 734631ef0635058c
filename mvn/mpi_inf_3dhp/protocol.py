"""MPI-INF-3DHP evaluation in the training loop and `train.py --eval`: the released code's printed
number, the official tables (mvn.mpi_inf_3dhp.metrics) and the released export, from the predictions of
the test split (mvn.engine.predict).

The released evaluation (run_3dhp.py): the flip-averaged prediction's pelvis row is set to 0;
P1 is the frame-weighted mean over all valid frames of the 17-joint mean error (the pelvis,
error 0, included: QUIRK Q5; val.root_in_mpjpe=false averages the 16 others). P2 (after a
Procrustes alignment) is added here; the released code has none for this benchmark.
"""
import logging
import os

import numpy as np

from mvn.mpi_inf_3dhp import metrics as metrics_3dhp
from mvn.metrics import p_mpjpe
from mvn.mpi_inf_3dhp.facts import NUM_JOINTS, ROOT_JOINT

logger = logging.getLogger(__name__)
EXPORT_NAME = "inference_data.mat"


def by_sequence(array, sequence_ids):
    """{'TS1': rows of `array` whose sequence id is 1, ...} in test-sequence order."""
    return {"TS%d" % k: array[sequence_ids == k] for k in np.unique(sequence_ids)}


def evaluate_predictions(predictions, targets, labels, root_in_mpjpe=True):
    """(errors, predictions with the pelvis row 0) for the test split's predictions and targets
    (N, 17, 3) mm, torch tensors, in the dataset's order. `errors['average']` holds p1 / p2 /
    frames (what the training loop logs and selects on); `errors['mpi_inf_3dhp']` the
    Evaluation of mvn.mpi_inf_3dhp.metrics; `errors['predictions_mm']` the export per sequence."""
    predictions = predictions.float().clone()        # float32, as exported and scored
    predictions[:, ROOT_JOINT] = 0                   # the released test step does this
    prediction_mm = predictions.double().numpy()     # (N, 17, 3)
    target_mm = targets.double().numpy()
    joint_errors_mm = np.linalg.norm(prediction_mm - target_mm, axis=-1)  # (N, 17)
    joints = [j for j in range(NUM_JOINTS) if root_in_mpjpe or j != ROOT_JOINT]
    p1 = float(joint_errors_mm[:, joints].mean(1).mean()) if len(joint_errors_mm) else float("nan")
    p2 = p_mpjpe(prediction_mm, target_mm) if len(prediction_mm) else float("nan")
    n = len(prediction_mm)
    sequence_ids = labels.sequence[:n]  # fewer than the split with val.max_batches
    predictions_mm = by_sequence(prediction_mm.astype(np.float32), sequence_ids)
    result = metrics_3dhp.evaluate_sequences(predictions_mm, by_sequence(target_mm, sequence_ids),
                                             by_sequence(labels.activity[:n], sequence_ids))
    errors = {"average": {"p1": p1, "p2": p2, "frames": n}, "mpi_inf_3dhp": result,
              "predictions_mm": predictions_mm}
    return errors, predictions


def format_evaluation(errors):
    """The released code's number, then the official tables' summary."""
    average = errors["average"]
    return ("p1: %.2f mm (frame-weighted MPJPE, %d frames; P2 %.2f mm)\n%s"
            % (average["p1"], average["frames"], average["p2"],
               metrics_3dhp.format_results(errors["mpi_inf_3dhp"])))


def save_evaluation(errors, folder):
    """`folder`/inference_data.mat (the released export: TS1..TS6, (3, 17, 1, n_valid) float32,
    mm) and the two MATLAB CSV tables + JSON of mvn.mpi_inf_3dhp.metrics; returns the folder."""
    os.makedirs(folder, exist_ok=True)
    metrics_3dhp.save_inference_data(os.path.join(folder, EXPORT_NAME), errors["predictions_mm"])
    metrics_3dhp.write_results(errors["mpi_inf_3dhp"], folder)
    return folder
