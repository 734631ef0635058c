"""2D detections of every labelled MPI-INF-3DHP frame by a heatmap detector, as label columns.

  python detect_2d_3dhp.py --root DIR --weights FILE --name NAME [--backbone hrnet_32]
                           [--batch-size 32] [--workers 4] [--device cpu]

The detector is a stage-1 checkpoint trained on MPI-INF-3DHP (train.py with task: detector,
dataset.name: mpi_inf_3dhp, e.g. experiments/synthetic/mpi_detector_tiny.yaml: its
checkpoints/backbone.pth or best_epoch.bin), whose heatmaps are the 17 MPI-INF-3DHP joints. Each
frame's crop (prepare_images_3dhp.py's) goes through the flip test (unless --no-flip-test) and
the argmax + quarter-pixel decoding; the joints are written into both label files, in every
entry beside data_2d and data_2d_crop and in their conventions (the dtype of data_2d):
  data_2d_<NAME>        (frames, 17, 2) full-frame pixels
  data_2d_<NAME>_crop   (frames, 17, 2) crop pixels
`dataset.keypoints_2d=<NAME>` then trains and evaluates CA-PF on them. The crop joints are where
the detector sees them in the crop image; the full-frame ones are mapped back through that
image's box (the data_3d pelvis, the camera's own intrinsics), so the two agree with the image
also for the training cameras 4..8, whose released data_2d_crop does not (QUIRK Q2). Test frames
not marked valid are no sample (training and evaluation leave them out): their rows are NaN.

There is no VideoPose3D-format output: VideoPose3D defines no MPI-INF-3DHP 2D file (its
data_2d_<dataset>_<name>.npz exist for Human3.6M, HumanEva and custom videos); the MPI-INF-3DHP
lifting codes (P-STMO, whose loader CA-PF's MPI code borrows) read these label files themselves.
The label files change: a frame store made from them (prepare_store_3dhp.py) must be rebuilt
with --overwrite to be verified again (it never holds the detections).

Resumable: finished chunks of frames are kept in DIR/.detect_2d_<NAME>/ and an interrupted run
started again continues after them, with the same results as an uninterrupted one (the loop:
mvn/detections.py, shared with H36M-Toolbox/detect_2d.py).
"""
import os

import numpy as np
import torch

import mpi_toolbox as tb
from generate_labels_3dhp import _write_npz as write_label_npz
from mvn import detections
from mvn.geometry import apply_affines, crop_to_frame_affines
from mvn.mpi_inf_3dhp import facts as mpi
from mvn.mpi_inf_3dhp.dataset import MpiInf3dhpDataset, keypoint_keys, read_label_npz

SPLITS = (("train", "train"), ("val", "test"))  # (dataset split, label file)


def label_entry(data, sequence, camera):
    """The label file entry (dict of arrays) of a sample's sequence id and camera (-1: test)."""
    if camera < 0:
        return data["TS%d" % sequence]
    return data[mpi.sequence_name(*divmod(int(sequence), 10))][0][str(int(camera))]


def add_columns(data, split, labels, crop_px, frame_px, name):
    """`data` (the label file's dict of `split`) with data_2d_<name> and data_2d_<name>_crop in
    every entry: the rows of `labels`' samples from `frame_px` / `crop_px` (N, 17, 2), the
    others NaN."""
    frame_key, crop_key = keypoint_keys(name)
    entries = {}
    for i, key in enumerate(zip(labels.sequence.tolist(), labels.camera.tolist())):
        entries.setdefault(key, []).append(i)
    every = ([entry for cameras, _fps in data.values() for entry in cameras.values()]
             if split == "train" else list(data.values()))
    for entry in every:
        template = np.asarray(entry["data_2d"])
        entry[frame_key] = np.full(template.shape, np.nan, template.dtype)
        entry[crop_key] = np.full(template.shape, np.nan, template.dtype)
    for (sequence, camera), samples in entries.items():
        entry = label_entry(data, sequence, camera)
        rows = labels.frame[samples]
        entry[frame_key][rows] = frame_px[samples]
        entry[crop_key][rows] = crop_px[samples]
    return data


def detect_2d_3dhp(args):
    detections.check_arguments(args)
    device = torch.device(args.device)
    paths = [os.path.join(args.root, mpi.LABEL_FILES[key]) for _, key in SPLITS]
    datasets = [MpiInf3dhpDataset(args.root, path, split)  # checked first
                for (split, _), path in zip(SPLITS, paths)]
    model = detections.build_model(args.backbone, args.weights, device, mpi.NUM_JOINTS)
    flip = mpi.SKELETON.flip_permutation if args.flip_test else None
    folder = detections.partial_folder(args.root, args.name)
    detections.check_resumable(folder, detections.run_settings(
        args, [len(d) for d in datasets], joints="mpi_inf_3dhp"))
    for (split, _), path, dataset in zip(SPLITS, paths, datasets):
        crop_px = detections.detect_split(model, dataset, folder, split, args, flip, device)
        labels = dataset.labels
        frame_px = apply_affines(crop_px, crop_to_frame_affines(labels.center, labels.scale))
        data = add_columns(read_label_npz(path), split, labels, crop_px, frame_px, args.name)
        write_label_npz(path, data)
        print("wrote %s(_crop) of %d frames into %s"
              % (keypoint_keys(args.name)[0], len(labels), path))
    detections.remove_partial(folder)


def main(argv=None):
    parser = detections.add_arguments(tb.argument_parser(__doc__.split("\n")[0]))
    detect_2d_3dhp(parser.parse_args(argv))


if __name__ == "__main__":
    tb.run_cli(main)
