"""mvn.human36m.dataset: the pkl path's samples are the released pipeline's, pixel for pixel."""
import os
import pickle

import cv2
import numpy as np

from mvn.human36m.dataset import Human36MDataset
from released_behaviour import released_crop


def test_crops_equal_the_released_pipeline_pixel_for_pixel(synthetic_h36m):
    for name in ("h36m_train.pkl", "h36m_validation.pkl"):
        path = os.path.join(synthetic_h36m, name)
        with open(path, "rb") as f:
            records = pickle.load(f)
        dataset = Human36MDataset(os.path.join(synthetic_h36m, "images"), path)
        assert dataset.labels.center.dtype == np.float64  # the label file's values, uncast
        for index, record in enumerate(records):
            image = cv2.imread(os.path.join(synthetic_h36m, "images", record["image"]))
            expected = released_crop(image, record["center"], record["scale"])
            assert np.array_equal(dataset.load_crop(index), expected), (name, index)
            sample = dataset[index]
            assert np.array_equal(sample["keypoints_2d_crop"].numpy(),
                                  record["joints_2d_cpn_crop"])
