"""Human3.6M behind the mvn.benchmark interface: its skeleton, datasets (label files + frames,
or the frame store), the per-action protocol and the published checkpoint."""
import os

from mvn.benchmark import Benchmark, Evaluation, split_files
from mvn.errors import CAPFError
from mvn.geometry import crop_to_frame_affines
from mvn.human36m.dataset import Human36MDataset, Human36MStoreDataset
from mvn.human36m.facts import ACTION_NAMES, SKELETON
from mvn.human36m.protocol import format_table, per_action_errors, save_table
from mvn.metrics import mpjpe

PUBLISHED_CHECKPOINT = os.path.join("checkpoint", "best_epoch.bin")


def build_dataset(config, split):
    d = config.dataset
    labels_path, stride = split_files(config, split)
    if d.format == "store":  # the store holds its own labels (made from the label files)
        if d.keypoints_2d != "cpn":
            raise CAPFError("dataset.keypoints_2d '%s' needs dataset.format pkl: the frame store "
                            "holds the CPN joints of the label files it was made from"
                            % d.keypoints_2d)
        return Human36MStoreDataset(d.store_path, split, frame_stride=stride)
    return Human36MDataset(d.root, labels_path, frame_stride=stride, bad_records=d.bad_records,
                           allow_images_outside_root=d.allow_images_outside_root,
                           keypoints_2d=d.keypoints_2d)


def evaluate(predictions, targets, dataset, config):
    """The per-action table of predictions and targets (N, 17, 3) metres, in the dataset's
    order (fewer than the dataset with val.max_batches)."""
    n = len(predictions)
    predicted_m, target_m = predictions.numpy(), targets.numpy()
    table = per_action_errors(predicted_m, target_m, dataset.labels.action[:n],
                              dataset.labels.subaction[:n])
    average = table["average"]
    return Evaluation(average["p1"], average["p2"], average["frames"],
                      mpjpe(predicted_m, target_m, reduce=False) * 1000, predictions, table)


def format_evaluation(evaluation):
    return "per-action errors (mm):\n" + format_table(evaluation.tables)


def save_evaluation(evaluation, folder, name):
    """folder/<name>.json and .csv: the per-action table."""
    return save_table(evaluation.tables, folder, name)


def picture_groups(dataset):
    return dataset.labels.action, ACTION_NAMES


def published_checkpoint(backbone_type):
    """checkpoint/best_epoch.bin (mvn.checkpoint.find_checkpoint also finds
    best_epoch_<backbone>.bin)."""
    return PUBLISHED_CHECKPOINT


def truth_2d(dataset):
    """The labels' ground-truth 2D joints in crop pixels (`joints_2d_gt_crop`) and each crop's
    map back to the frame (from its box centre and scale)."""
    labels = dataset.labels
    if labels.keypoints_2d_truth_crop is None:
        raise CAPFError("%s holds no ground-truth 2D joints (joints_2d_gt_crop), which the 2D "
                        "detector trains on: regenerate the labels with "
                        "H36M-Toolbox/generate_labels_h36m.py (and the store from them)"
                        % (getattr(dataset, "labels_path", None)
                           or getattr(dataset, "path", "the labels")))
    return labels.keypoints_2d_truth_crop, crop_to_frame_affines(labels.center, labels.scale)


BENCHMARK = Benchmark(
    name="human36m", skeleton=SKELETON, unit_mm=1000.0, build_dataset=build_dataset,
    evaluate=evaluate, format_evaluation=format_evaluation, save_evaluation=save_evaluation,
    picture_groups=picture_groups, published_checkpoint=published_checkpoint,
    truth_2d=truth_2d)
