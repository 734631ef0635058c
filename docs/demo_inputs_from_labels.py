"""Frames and a 2D-joints file for demo.py, taken from a Human3.6M label file: the way to run the
demo on the quick start's model (its tiny backbone has no COCO heatmap head, so the 2D joints
must come with the frames: here the label file's CPN-like detections, in pixels).

    python docs/demo_inputs_from_labels.py --labels data/synthetic_h36m/h36m_validation.pkl \
        --root data/synthetic_h36m/images --count 8 --out demo_inputs
    python demo.py --config experiments/synthetic/quickstart.yaml \
        --checkpoint logs/quickstart/<experiment>/checkpoints/best_epoch.bin \
        --images demo_inputs/frames --keypoints demo_inputs/keypoints.json --out demo_results

Writes <out>/frames/<NNN>.jpg (the full frames of `count` records spread over the file) and
<out>/keypoints.json ({frame name: the record's 17 joints in Human3.6M order, pixels}).
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np

from mvn.errors import CAPFError, run_main
from mvn.geometry import image_coordinates
from mvn.human36m import facts as h36m
from mvn.human36m.labels import load_label_columns


def write_inputs(labels_path, root, count, out):
    """Copy `count` frames of the label file's records and their joints; returns the names."""
    columns = load_label_columns(labels_path)
    if count < 1 or count > len(columns):
        raise CAPFError("--count must be between 1 and %d (the records of %s)"
                        % (len(columns), labels_path))
    rows = np.linspace(0, len(columns) - 1, count).round().astype(int)
    os.makedirs(os.path.join(out, "frames"), exist_ok=True)
    joints = {}
    for n, row in enumerate(rows):
        source = os.path.join(root, columns.image[row].decode())
        if not os.path.isfile(source):
            raise CAPFError("frame %s of record %d does not exist: is --root the folder the "
                            "label file's image paths start from?" % (source, columns.record[row]))
        name = "%03d%s" % (n, os.path.splitext(source)[1])
        shutil.copyfile(source, os.path.join(out, "frames", name))
        width, height = h36m.resolution(int(columns.camera_id[row]))
        joints[name] = image_coordinates(columns.keypoints_2d[row].astype(np.float64), width,
                                         height).round(2).tolist()
    with open(os.path.join(out, "keypoints.json"), "w") as f:
        json.dump(joints, f)
    return sorted(joints)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", required=True, help="a Human3.6M label file (.pkl)")
    parser.add_argument("--root", required=True, help="the folder its image paths start from")
    parser.add_argument("--count", type=int, default=8, help="frames to take")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    def run():
        names = write_inputs(args.labels, args.root, args.count, args.out)
        print("%d frames in %s, their 2D joints in %s" % (
            len(names), os.path.join(args.out, "frames"), os.path.join(args.out, "keypoints.json")))
    return run_main(run, "demo_inputs_from_labels.py")


if __name__ == "__main__":
    sys.exit(main())
