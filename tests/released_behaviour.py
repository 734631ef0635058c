"""The released code's crop arithmetic, written out step by step for the tests to compare with.

Independent of mvn.geometry on purpose: each line below is one numpy operation of the released
pipeline, with numpy's own dtype rules (docs/fidelity.md, "Crop").
"""
import cv2
import numpy as np


def released_affine(center, scale, crop_width=192, crop_height=256):
    """The released get_affine_transform(center, scale, rot=0, (192, 256))."""
    center = np.array(center)                 # float64 from the label file, float32 if cast
    box_px = np.array(scale) * 200.0
    source_step = np.array([0, (box_px[0] - 1) * -0.5], np.float32)   # rounded to float32
    target_step = np.array([0, (crop_width - 1) * -0.5], np.float32)
    source = np.zeros((3, 2), np.float32)
    target = np.zeros((3, 2), np.float32)
    source[0] = center + box_px * np.zeros(2, np.float32)
    source[1] = center + source_step + box_px * np.zeros(2, np.float32)
    target[0] = [(crop_width - 1) * 0.5, (crop_height - 1) * 0.5]
    target[1] = np.array([(crop_width - 1) * 0.5, (crop_height - 1) * 0.5]) + target_step
    for points in (source, target):
        d = points[0] - points[1]
        points[2] = points[1] + np.array([-d[1], d[0]], np.float32)
    return cv2.getAffineTransform(np.float32(source), np.float32(target))


def released_crop(image, center, scale):
    """The released crop_image: bilinear warp to 192 x 256, default (zero) border."""
    return cv2.warpAffine(image, released_affine(center, scale), (192, 256),
                          flags=cv2.INTER_LINEAR)


def released_crop_keypoints(points_px, matrix):
    """The released label script: one np.dot per joint into a float32 (17, 2) array."""
    out = np.zeros([len(points_px), 2], dtype="float32")
    for j, point in enumerate(points_px):
        out[j] = np.dot(matrix, np.array([point[0], point[1], 1.0]).T)[:2]
    return out
