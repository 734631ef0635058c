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
started again continues after them, with the same results as an uninterrupted one.
"""
import json
import os

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

import h36m_toolbox as tb
from mvn import geometry
from mvn.batch import prepare_images
from mvn.coco import coco_to_h36m
from mvn.keypoint_formats import COCO_KEYPOINT_NAMES
from mvn.detector import HeatmapDetector, detect, load_detector_weights
from mvn.engine import worker_init
from mvn.human36m import facts as h36m
from mvn.human36m.dataset import Human36MDataset
from mvn.human36m.labels import keypoint_keys, read_label_pickle
from mvn.models import BACKBONES, build_backbone
from mvn.models.weights import WeightsError

SPLITS = ("train", "val")


def coco_flip_permutation():
    """COCO keypoints exchanged left <-> right (names left_* / right_*)."""
    names = list(COCO_KEYPOINT_NAMES)
    return tuple(names.index(n.replace("left_", "right_")) if n.startswith("left_") else
                 names.index(n.replace("right_", "left_")) if n.startswith("right_") else i
                 for i, n in enumerate(names))


def partial_folder(root, name):
    return os.path.join(root, ".detect_2d_%s" % name)


def npz_path(root, name):
    return os.path.join(root, "data", "data_2d_h36m_%s.npz" % name)


def check_resumable(folder, settings):
    """The settings of the run that made `folder` must be these (else its chunks are not)."""
    path = os.path.join(folder, "settings.json")
    if os.path.isfile(path):
        with open(path) as f:
            before = json.load(f)
        if before != settings:
            changed = sorted(k for k in settings if before.get(k) != settings[k])
            raise tb.ToolboxError("%s holds the chunks of a run with other settings (%s): delete "
                                  "the folder, or use another --name" % (folder, ", ".join(changed)))
        return
    os.makedirs(folder, exist_ok=True)
    with open(path, "w") as f:
        json.dump(settings, f, indent=1)


def save_atomic(path, array):
    temporary = path + ".tmp.npy"
    np.save(temporary, array)
    os.replace(temporary, path)


def detect_split(model, dataset, folder, split, args, flip_permutation, device):
    """(N, 17, 2) float32 crop pixels of every frame of `dataset`: chunk by chunk, each saved in
    `folder` as it is finished; chunks already there are read, not computed again."""
    chunk = args.chunk_frames
    chunks = range(0, len(dataset), chunk)
    paths = [os.path.join(folder, "%s_%07d.npy" % (split, start)) for start in chunks]
    todo = [i for i, path in enumerate(paths) if not os.path.isfile(path)]
    indices = [j for i in todo for j in range(chunks[i], min(chunks[i] + chunk, len(dataset)))]
    loader = DataLoader(Subset(dataset, indices), batch_size=args.batch_size,
                        num_workers=args.workers, worker_init_fn=worker_init if args.workers else None)
    pending = []
    with torch.no_grad(), tqdm(total=len(indices), desc="detecting (%s)" % split, unit="frame",
                               dynamic_ncols=True) as bar:
        for batch in loader:
            images = prepare_images(batch["images"].to(device), args.backbone)
            joints = detect_joints(model, images, flip_permutation, args.joints)
            pending.append(joints)
            bar.update(len(joints))
            stacked = np.concatenate(pending)
            while todo and len(stacked) >= min(chunk, len(dataset) - chunks[todo[0]]):
                size = min(chunk, len(dataset) - chunks[todo[0]])
                save_atomic(paths[todo.pop(0)], stacked[:size])
                stacked = stacked[size:]
            pending = [stacked] if len(stacked) else []
    return np.concatenate([np.load(path) for path in paths]) if paths else np.zeros((0, 17, 2))


def detect_joints(model, images, flip_permutation, joints):
    """(B, 17, 2) float32 Human3.6M joints in crop pixels."""
    keypoints = detect(model, images, flip_permutation).cpu().numpy()  # (B, 17, 2)
    if joints == "coco":
        keypoints = coco_to_h36m(keypoints)
    return keypoints.astype(np.float32)


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


def build_model(args, device):
    backbone = BACKBONES.get(args.backbone)
    if backbone is None or "final_layer." not in backbone.head_prefixes:
        raise tb.ToolboxError("--backbone %s: the detector is an HRNet with its heatmap head; use "
                              "one of %s" % (args.backbone, ", ".join(
                                  n for n, row in BACKBONES.items()
                                  if "final_layer." in row.head_prefixes)))
    model = HeatmapDetector(build_backbone(args.backbone), 17)
    try:
        load_detector_weights(model, args.weights)
    except WeightsError as error:
        raise tb.ToolboxError("%s (is --backbone %s the network it was made for?)"
                              % (error, args.backbone)) from None
    return model.to(device).eval()


def detect_2d(args):
    if not args.name.isidentifier() or args.name == "cpn":
        raise tb.ToolboxError("--name %r: a word of letters, digits and '_' (not 'cpn', the "
                              "released detections' name)" % args.name)
    if args.chunk_frames % args.batch_size:
        raise tb.ToolboxError("--chunk-frames must be a multiple of --batch-size")
    device = torch.device(args.device)
    label_paths = [os.path.join(args.root, h36m.LABEL_FILES[split]) for split in SPLITS]
    images_root = os.path.join(args.root, "images")
    datasets = [Human36MDataset(images_root, path) for path in label_paths]  # checked first
    model = build_model(args, device)
    flip = None
    if args.flip_test:
        flip = coco_flip_permutation() if args.joints == "coco" else h36m.SKELETON.flip_permutation
    folder = partial_folder(args.root, args.name)
    stat = os.stat(args.weights)
    check_resumable(folder, {"weights": os.path.abspath(args.weights), "bytes": stat.st_size,
                             "backbone": args.backbone, "joints": args.joints,
                             "flip_test": args.flip_test, "chunk_frames": args.chunk_frames,
                             "batch_size": args.batch_size,
                             "frames": [len(d) for d in datasets]})
    all_records, all_frame_px = [], []
    for split, path, dataset in zip(SPLITS, label_paths, datasets):
        crop_px = detect_split(model, dataset, folder, split, args, flip, device)
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
    for name in sorted(os.listdir(folder)):
        os.remove(os.path.join(folder, name))
    os.rmdir(folder)


def main(argv=None):
    parser = tb.argument_parser(__doc__.split("\n")[0])
    parser.add_argument("--weights", required=True, help="a stage-1 checkpoint or an HRNet "
                        "COCO file")
    parser.add_argument("--name", required=True, help="the detections' name: the columns "
                        "joints_2d_NAME(_crop), data/data_2d_h36m_NAME.npz")
    parser.add_argument("--backbone", default="hrnet_32", help="the detector's HRNet")
    parser.add_argument("--joints", choices=("h36m", "coco"), default="h36m",
                        help="what the heatmaps are: Human3.6M joints (stage 1) or COCO keypoints")
    parser.add_argument("--no-flip-test", dest="flip_test", action="store_false")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--chunk-frames", type=int, default=4096,
                        help="frames per resumable chunk (a multiple of --batch-size)")
    parser.add_argument("--device", default="cpu")
    detect_2d(parser.parse_args(argv))


if __name__ == "__main__":
    tb.run_cli(main)
