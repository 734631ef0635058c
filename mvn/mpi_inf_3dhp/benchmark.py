"""MPI-INF-3DHP behind the mvn.benchmark interface: its skeleton, datasets (label files + crops,
or the frame store; the val split is the test set, as in the released code), the released
number with the official PCK / AUC tables, and the published checkpoints."""
import os

import numpy as np

from mvn.benchmark import Benchmark, Evaluation, split_files
from mvn.errors import CAPFError
from mvn.mpi_inf_3dhp import protocol
from mvn.mpi_inf_3dhp.dataset import MpiInf3dhpDataset, MpiInf3dhpStoreDataset
from mvn.mpi_inf_3dhp.facts import PUBLISHED_CHECKPOINTS, SKELETON


def build_dataset(config, split):
    d = config.dataset
    labels_path, stride = split_files(config, split)
    if d.keypoints_2d != "cpn":
        raise CAPFError("dataset.keypoints_2d '%s': the MPI-INF-3DHP labels hold only their "
                        "ground-truth 2D joints (the released models' input); leave it at cpn"
                        % d.keypoints_2d)
    if d.format == "store":  # the store holds its own labels (made from the label files)
        return MpiInf3dhpStoreDataset(d.store_path, split, frame_stride=stride)
    return MpiInf3dhpDataset(d.root, labels_path, split, frame_stride=stride)


def evaluate(predictions, targets, dataset, config):
    """The released number and the official tables (mvn.mpi_inf_3dhp.protocol) of predictions
    and targets (N, 17, 3) mm of the test split."""
    tables, scored = protocol.evaluate_predictions(predictions, targets, dataset.labels,
                                                   config.val.root_in_mpjpe)
    frame_errors_mm = np.linalg.norm(scored.double().numpy() - targets.double().numpy(),
                                     axis=-1).mean(-1)  # (N,)
    average = tables["average"]
    return Evaluation(average["p1"], average["p2"], average["frames"], frame_errors_mm, scored,
                      tables)


def format_evaluation(evaluation):
    return "MPI-INF-3DHP test set:\n" + protocol.format_evaluation(evaluation.tables)


def save_evaluation(evaluation, folder, name):
    """folder/<name>/: the official tables and inference_data.mat."""
    return protocol.save_evaluation(evaluation.tables, os.path.join(folder, name))


def picture_groups(dataset):
    """Test sequences TS1..TS6 (training: subject x 10 + sequence, e.g. S1 Seq2 = 12)."""
    sequences = dataset.labels.sequence
    names = {int(k): ("TS%d" % k if k < 10 else "S%d Seq%d" % divmod(int(k), 10))
             for k in np.unique(sequences)}
    return sequences, names


def published_checkpoint(backbone_type):
    name = PUBLISHED_CHECKPOINTS.get(backbone_type)
    if name is None:
        raise CAPFError("no published MPI-INF-3DHP checkpoint for backbone '%s': pass "
                        "--checkpoint PATH" % backbone_type)
    return os.path.join("checkpoint", name)


BENCHMARK = Benchmark(
    name="mpi_inf_3dhp", skeleton=SKELETON, unit_mm=1.0, build_dataset=build_dataset,
    evaluate=evaluate, format_evaluation=format_evaluation, save_evaluation=save_evaluation,
    picture_groups=picture_groups, published_checkpoint=published_checkpoint,
    evaluable_splits=("val",), evaluable_splits_note="the test set")
