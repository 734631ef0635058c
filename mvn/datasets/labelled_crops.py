"""The sample every benchmark's dataset gives: a 256x192 crop and its joints, from label columns.

Batch preparation (normalisation, flips) happens on the whole batch later, in `mvn.batch`.
"""
import torch
from torch.utils.data import Dataset

from mvn.geometry import CROP_SHAPE


class LabelledCropDataset(Dataset):
    """Samples from `self.labels` (a labels dataclass with keypoints_2d, keypoints_2d_crop and
    keypoints_3d columns) and `self.load_crop(index)`, which subclasses define (label files +
    images, or a frame store: mvn.datasets.store)."""

    labels = None
    # False (a model without image features): samples carry an empty (0, 192, 3) image instead
    # of the decoded crop, so that no frame is read; batch preparation and flips still work.
    with_images = True
    # A mvn.feature_cache.FeatureCache (train.feature_cache): samples carry the frozen backbone's
    # maps of the frame and of its mirror image, "features" [(2, C_l, H_l, W_l)] per level.
    feature_cache = None

    def __len__(self):
        return len(self.labels)

    def load_crop(self, index):
        raise NotImplementedError

    def __getitem__(self, index):
        labels = self.labels
        if self.with_images:
            image = torch.from_numpy(self.load_crop(index))                         # (256, 192, 3)
        else:
            image = torch.zeros((0, CROP_SHAPE[1], 3), dtype=torch.uint8)           # (0, 192, 3)
        sample = {
            "images": image,
            "keypoints_2d": torch.from_numpy(labels.keypoints_2d[index]),           # (17, 2)
            "keypoints_2d_crop": torch.from_numpy(labels.keypoints_2d_crop[index]),  # (17, 2)
            "keypoints_3d": torch.from_numpy(labels.keypoints_3d[index][None]),     # (1, 17, 3)
            "index": index,
        }
        if self.feature_cache is not None:
            sample["features"] = self.feature_cache.frame(index)
        return sample
