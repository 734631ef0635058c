"""Human3.6M samples from the published label files + full-frame images (`dataset.format: pkl`).

Each sample is the 256x192 crop around the subject (docs/fidelity.md, "Crop"), the CPN
detections (screen-normalised and in crop pixels) and the 3D joints in metres. Batch preparation
(normalisation, flips) happens on the whole batch later, in `mvn.batch`.
"""
import os

import cv2
import torch
from torch.utils.data import Dataset

from mvn.datasets.labels import load_label_columns
from mvn.errors import CAPFError
from mvn.geometry import crop_image



# How a full frame is read: as the released dataset does (an EXIF orientation tag is ignored).
FRAME_READ_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION


def read_frame_bgr(path):
    """(H, W, 3) uint8 BGR full frame at `path`, or None when it cannot be read."""
    return cv2.imread(path, FRAME_READ_FLAGS)


class MissingImageError(CAPFError, FileNotFoundError):
    """An image that a label record names is not on disk."""


class LabelledCropDataset(Dataset):
    """Samples from `self.labels` (LabelColumns) and `self.load_crop(index)`, which subclasses
    define: the pkl path here, the frame store in `mvn.datasets.store`."""

    labels = None

    def __len__(self):
        return len(self.labels)

    def load_crop(self, index):
        raise NotImplementedError

    def __getitem__(self, index):
        labels = self.labels
        return {
            "images": torch.from_numpy(self.load_crop(index)),                      # (256, 192, 3)
            "keypoints_2d": torch.from_numpy(labels.keypoints_2d[index]),           # (17, 2)
            "keypoints_2d_crop": torch.from_numpy(labels.keypoints_2d_crop[index]),  # (17, 2)
            "keypoints_3d": torch.from_numpy(labels.keypoints_3d[index][None]),     # (1, 17, 3)
            "index": index,
        }


class Human36MDataset(LabelledCropDataset):
    """Crops from full-frame JPEGs, decoded and warped per sample like the reference."""

    def __init__(self, images_root, labels_path, frame_stride=1):
        self.images_root = images_root
        self.labels_path = labels_path
        self.labels = load_label_columns(labels_path, frame_stride)
        if not os.path.isdir(images_root):
            raise MissingImageError("images root %s does not exist; extract the frames with "
                                    "H36M-Toolbox/video_to_images.py or set dataset.root"
                                    % images_root)

    def load_crop(self, index):
        """(256, 192, 3) uint8 BGR crop of record `index`."""
        relative = self.labels.image[index].decode()
        path = os.path.join(self.images_root, relative)
        image = read_frame_bgr(path)
        if image is None:
            raise MissingImageError(
                "image %s of record %d in %s is missing or unreadable; re-run "
                "H36M-Toolbox/video_to_images.py for that sequence, or regenerate the labels so "
                "they list only existing frames" % (path, index, self.labels_path))
        return crop_image(image, self.labels.center[index], self.labels.scale[index])
