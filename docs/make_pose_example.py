"""Make docs/pose_example.png: one validation frame as `mvn.vis.sample_panel` (the crop with its
2D input joints, the 3D prediction over the ground truth from two fixed viewpoints).

The picture in the README came from the quick start's checkpoint:

    python docs/make_pose_example.py --config experiments/synthetic/quickstart.yaml \
        --checkpoint logs/quickstart/<experiment>/checkpoints/best_epoch.bin --index 500 \
        --opts dataset.root=data/synthetic_h36m/images dataset.val_frame_stride=1 \
               dataset.val_labels_path=data/synthetic_h36m/h36m_validation.pkl
"""
import argparse
import sys

import cv2
import torch
from torch.utils.data import default_collate

from mvn import vis
from mvn.batch import predict_pose, prepare_batch
from mvn.config import load_config
from mvn.benchmarks import build_dataset
from mvn.errors import run_main
from mvn.human36m.facts import ACTION_NAMES, SKELETON
from mvn.metrics import mpjpe
from mvn.models import build_model
from mvn.models.weights import load_model_weights


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--index", type=int, default=0, help="validation frame")
    parser.add_argument("--out", default="docs/pose_example.png")
    parser.add_argument("--title", default=None, help="default: action, subject, error")
    parser.add_argument("--opts", nargs="*", default=[], help="config overrides key=value")
    args = parser.parse_args()

    config = load_config(args.config, args.opts)
    dataset = build_dataset(config, "val")
    model = build_model(config).eval()
    load_model_weights(model, args.checkpoint)
    batch = default_collate([dataset[args.index]])
    images, keypoints_2d, keypoints_2d_crop, target = prepare_batch(
        batch, config.model.backbone.type, torch.device("cpu"), skeleton=SKELETON)
    with torch.no_grad():
        prediction = predict_pose(model, images, keypoints_2d, keypoints_2d_crop,
                                  skeleton=SKELETON)[0]  # (17, 3)
    error_mm = float(mpjpe(prediction, target[0, 0])) * 1000
    labels = dataset.labels
    title = args.title or "%s, S%d, frame %d: MPJPE %.0f mm" % (
        ACTION_NAMES[int(labels.action[args.index])], int(labels.subject[args.index]),
        args.index, error_mm)
    panel = vis.sample_panel(dataset.load_crop(args.index), labels.keypoints_2d_crop[args.index],
                             prediction.numpy(), target[0, 0].numpy(), title=title,
                             skeleton=SKELETON)
    cv2.imwrite(args.out, cv2.cvtColor(panel, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print("%s: %s" % (args.out, title))


if __name__ == "__main__":
    sys.exit(run_main(main, "make_pose_example.py"))
