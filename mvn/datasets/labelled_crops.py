"""The sample every benchmark's dataset gives: a 256x192 crop and its joints, from label columns.

Batch preparation (normalisation, flips) happens on the whole batch later, in `mvn.batch`.
"""
import torch
from torch.utils.data import Dataset


class LabelledCropDataset(Dataset):
    """Samples from `self.labels` (a labels dataclass with keypoints_2d, keypoints_2d_crop and
    keypoints_3d columns) and `self.load_crop(index)`, which subclasses define (label files +
    images, or a frame store: mvn.datasets.store)."""

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
