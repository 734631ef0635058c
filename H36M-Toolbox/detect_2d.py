"""2D detections of every labelled frame by a heatmap detector, as label columns and as
VideoPose3D's npz.

  python detect_2d.py --root DIR --weights FILE --name NAME [--backbone hrnet_32]
                      [--joints h36m|coco] [--batch-size 32] [--workers 4] [--device cpu]

The detector is a stage-1 checkpoint (train.py with task: detector: its checkpoints/backbone.pth
or best_epoch.bin; `--joints h36m`, the default) or a published HRNet COCO file (`--joints coco`:
its COCO keypoints converted to the Human3.6M joints, mvn/coco.py). Each frame's crop (the label's
box) goes through the flip test (unless --no-flip-test) and the argmax + quarter-pixel decoding;
the joints are written
  (a) into both label files as `joints_2d_<NAME>` (full frame, screen-normalised) and
      `joints_2d_<NAME>_crop` (crop pixels), like the CPN columns: `dataset.keypoints_2d=<NAME>`
      trains and evaluates CA-PF on them;
  (b) as data/data_2d_h36m_<NAME>.npz in VideoPose3D's format (`positions_2d`: subject ->
      action -> 4 cameras of (frames, 17, 2) pixels, NaN for frames without a label; `metadata`).
Resumable: finished chunks of frames are kept in .detect_2d_<NAME>/ and an interrupted run
started again continues after them, with the same results as an uninterrupted one (the loop:
mvn/detections.py, shared with MPI-INF-3DHP-Toolbox/detect_2d_3dhp.py).
"""
import os

import numpy as np
import torch

import h36m_toolbox as tb
from mvn import detections, geometry
from mvn.coco import coco_to_h36m
from mvn.keypoint_formats import COCO_KEYPOINT_NAMES
from mvn.human36m import facts as h36m
from mvn.human36m.dataset import Human36MDataset
from mvn.human36m.labels import keypoint_keys, read_label_pickle

SPLITS = ("train", "val")


def coco_flip_permutation():
    """COCO keypoints exchanged left <-> right (names left_* / right_*)."""
    names = list(COCO_KEYPOINT_NAMES)
    return tuple(names.index(n.replace("left_", "right_")) if n.startswith("left_") else
                 names.index(n.replace("right_", "left_")) if n.startswith("right_") else i
                 for i, n in enumerate(names))


def npz_path(root, name):
    return os.path.join(root, "data", "data_2d_h36m_%s.npz" % name)


def add_columns(records, columns, name):
    """The records with `joints_2d_<name>` (screen-normalised) and `joints_2d_<name>_crop`."""
    screen_key, crop_key = keypoint_keys(name)
    crop_px = columns["crop"]
    frame_px = columns["frame"]
    for i, record in enumerate(records):
        width, height = h36m.resolution(int(record["camera_id"]))
        record[screen_key] = geometry.normalize_screen_coordinates(frame_px[i], width, height)
        record[crop_key] = crop_px[i]
    return records


def videopose3d_positions(all_records, all_frame_px):
    """positions_2d: subject 'S1' -> action 'Directions 1' -> [4 cameras (frames, 17, 2) px]."""
    lengths = {}
    for record in all_records:
        key = (int(record["subject"]), int(record["action"]), int(record["subaction"]))
        lengths[key] = max(lengths.get(key, 0), int(record["image_id"]))
    positions = {}
    for (subject, action, subaction), frames in sorted(lengths.items()):
        cameras = [np.full((frames, 17, 2), np.nan, np.float32) for _ in h36m.CAMERA_IDS]
        positions.setdefault("S%d" % subject, {})[
            h36m.sequence_name(subject, action, subaction)] = cameras
    for record, joints in zip(all_records, all_frame_px):
        sequence = h36m.sequence_name(int(record["subject"]), int(record["action"]),
                                      int(record["subaction"]))
        cameras = positions["S%d" % int(record["subject"])][sequence]
        cameras[int(record["camera_id"])][int(record["image_id"]) - 1] = joints
    return positions


def write_npz(path, positions):
    metadata = {"layout_name": "h36m", "num_joints": 17,
                "keypoints_symmetry": [list(h36m.JOINTS_LEFT), list(h36m.JOINTS_RIGHT)]}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = path + ".partial.npz"
    np.savez_compressed(temporary, positions_2d=np.array(positions, dtype=object),
                        metadata=np.array(metadata, dtype=object))
    os.replace(temporary, path)


def detect_2d(args):
    detections.check_arguments(args)
    device = torch.device(args.device)
    label_paths = [os.path.join(args.root, h36m.LABEL_FILES[split]) for split in SPLITS]
    images_root = os.path.join(args.root, "images")
    datasets = [Human36MDataset(images_root, path) for path in label_paths]  # checked first
    model = detections.build_model(args.backbone, args.weights, device)
    flip = None
    if args.flip_test:
        flip = coco_flip_permutation() if args.joints == "coco" else h36m.SKELETON.flip_permutation
    convert = coco_to_h36m if args.joints == "coco" else None
    folder = detections.partial_folder(args.root, args.name)
    detections.check_resumable(folder, detections.run_settings(
        args, [len(d) for d in datasets], joints=args.joints))
    all_records, all_frame_px = [], []
    for split, path, dataset in zip(SPLITS, label_paths, datasets):
        crop_px = detections.detect_split(model, dataset, folder, split, args, flip, device,
                                          convert)
        labels = dataset.labels
        frame_px = geometry.apply_affines(
            crop_px, geometry.crop_to_frame_affines(labels.center, labels.scale))
        records = read_label_pickle(path)
        all_records.extend(records)
        all_frame_px.append(frame_px)
        add_columns(records, {"crop": crop_px, "frame": frame_px}, args.name)
        tb.write_label_file(path, records)
        print("wrote joints_2d_%s(_crop) of %d frames into %s" % (args.name, len(records), path))
    write_npz(npz_path(args.root, args.name),
              videopose3d_positions(all_records, np.concatenate(all_frame_px)))
    print("wrote %s" % npz_path(args.root, args.name))
    detections.remove_partial(folder)


def main(argv=None):
    parser = detections.add_arguments(tb.argument_parser(__doc__.split("\n")[0]))
    parser.add_argument("--joints", choices=("h36m", "coco"), default="h36m",
                        help="what the heatmaps are: Human3.6M joints (stage 1) or COCO keypoints")
    detect_2d(parser.parse_args(argv))


if __name__ == "__main__":
    tb.run_cli(main)
