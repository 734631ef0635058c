"""Human3.6M samples from the published label files + full-frame images (`dataset.format: pkl`).

Each sample is the 256x192 crop around the subject (docs/fidelity.md, "Crop"), the CPN
detections (screen-normalised and in crop pixels) and the 3D joints in metres. Batch preparation
(normalisation, flips) happens on the whole batch later, in `mvn.batch`.
"""
import os

import torch
from torch.utils.data import Dataset

from mvn.datasets.labels import load_label_columns
from mvn.geometry import crop_image
from mvn.images import ImageError, MissingImageError, read_frame_bgr


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

    def __init__(self, images_root, labels_path, frame_stride=1, bad_records="error",
                 allow_images_outside_root=False):
        self.images_root = images_root
        self.labels_path = labels_path
        self.labels = load_label_columns(labels_path, frame_stride, bad_records,
                                         allow_images_outside_root)
        if not os.path.isdir(images_root):
            raise MissingImageError("images root %s does not exist; extract the frames with "
                                    "H36M-Toolbox/video_to_images.py or set dataset.root"
                                    % images_root)

    def load_crop(self, index):
        """(256, 192, 3) uint8 BGR crop of sample `index`; a missing or damaged frame is an
        ImageError naming the file and its record in the label file."""
        relative = self.labels.image[index].decode()
        path = os.path.join(self.images_root, relative)
        try:
            image = read_frame_bgr(path)
        except ImageError as error:
            raise type(error)(
                "%s (record %d of %s); re-run H36M-Toolbox/video_to_images.py for that sequence, "
                "or regenerate the labels so that they list only existing frames"
                % (error, self.labels.record[index], self.labels_path)) from None
        return crop_image(image, self.labels.center[index], self.labels.scale[index])
