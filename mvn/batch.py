"""Batch preparation: images to backbone input, root-relative targets, flips.

The reference does these per batch on the GPU; so do we (after the DataLoader), with tensors of
shape (B, 256, 192, 3) for images (BGR uint8 from OpenCV), (B, 17, 2) for 2D joints and
(B, 1, 17, 3) for 3D joints. Whatever depends on the joint order (the root, the left/right swap)
takes the benchmark's `skeleton` (mvn.skeleton.Skeleton; `mvn.benchmarks.get(name).skeleton`).
"""
import torch

from mvn.cached_features import CachedFeatures
from mvn.geometry import CROP_SHAPE
from mvn.models.backbones import BACKBONES


def normalisation_table(backbone_type, dtype=torch.float64):
    """(256, 3): the normalised value of every uint8 level per RGB channel, (level / 255 -
    mean) / std with the backbone's own statistics (mvn.models.backbones)."""
    backbone = BACKBONES[backbone_type]
    levels = torch.arange(256, dtype=torch.float64)[:, None] / 255  # (256, 1)
    table = (levels - torch.tensor(backbone.mean_rgb, dtype=torch.float64)) \
        / torch.tensor(backbone.std_rgb, dtype=torch.float64)
    return table.to(dtype)


def prepare_images(images_bgr, backbone_type):
    """(B, H, W, 3) BGR uint8 -> (B, H, W, 3) RGB float32, normalised for the backbone.

    uint8 input goes through a 256-level lookup table computed in float64, so every value is
    the correctly rounded float32 of the formula (cheaper than the arithmetic, and the same on
    every device). Float input (already 0..255) uses the arithmetic."""
    rgb = images_bgr.flip(-1)  # BGR -> RGB
    if rgb.dtype == torch.uint8:
        table = normalisation_table(backbone_type, torch.float32).to(rgb.device)  # (256, 3)
        channel = torch.arange(3, device=rgb.device)
        return table[rgb.long(), channel]  # (B, H, W, 3)
    table64 = normalisation_table(backbone_type)
    offset = table64[0].to(rgb.device, torch.float32)          # value of level 0
    step = (table64[1] - table64[0]).to(rgb.device, torch.float32)  # per level
    return rgb.float() * step + offset


def root_relative(keypoints_3d, skeleton):
    """(..., 17, 3): joints minus the skeleton's root (Human3.6M: the pelvis, joint 0); the root
    becomes exactly 0. (MPI-INF-3DHP samples are already relative, their root row 0: unchanged.)"""
    root = skeleton.root_joint
    return keypoints_3d - keypoints_3d[..., root:root + 1, :]


def swap_left_right(joints, skeleton):
    """(..., 17, C): exchange left and right joints."""
    return joints[..., skeleton.flip_permutation, :]


def mirror_x(joints, offset=0.0, *, skeleton):
    """(..., 17, C): x -> offset - x, other coordinates kept, then left/right swapped."""
    x = offset - joints[..., :1]
    return swap_left_right(torch.cat([x, joints[..., 1:]], -1), skeleton)


def flip_batch(images, keypoints_2d, keypoints_2d_crop, keypoints_3d=None,
               crop_width=CROP_SHAPE[1], *, skeleton):
    """Mirror a whole batch: image along width, joints x -> -x (crop: 191 - x)."""
    flipped = (
        images.flip(2),                                            # (B, H, W, 3): W is dim 2
        mirror_x(keypoints_2d, skeleton=skeleton),                 # screen-normalised: on 0
        mirror_x(keypoints_2d_crop, crop_width - 1.0, skeleton=skeleton),  # crop pixels
    )
    if keypoints_3d is not None:
        flipped = flipped + (mirror_x(keypoints_3d, skeleton=skeleton),)
    return flipped


def flip_test(model, images, keypoints_2d, keypoints_2d_crop, *, skeleton):
    """Average of the prediction and the un-mirrored prediction of the mirrored batch."""
    prediction = model(images, keypoints_2d, keypoints_2d_crop)  # (B, 1, 17, 3)
    flipped_prediction = model(*flip_batch(images, keypoints_2d, keypoints_2d_crop,
                                           crop_width=images.shape[2], skeleton=skeleton))
    return (prediction + mirror_x(flipped_prediction, skeleton=skeleton)) / 2


def predict_pose(model, images, keypoints_2d, keypoints_2d_crop, use_flip_test=True, *,
                 skeleton):
    """THE prediction, as evaluation scores it and the demo writes it: (B, 17, 3) float32,
    camera frame, in the targets' unit (Human3.6M metres, MPI-INF-3DHP mm), relative to the
    root as the model was trained (targets are root-relative; the root row is the model's own
    output, close to 0, and is not re-rooted here; the MPI-INF-3DHP evaluation zeroes it, as
    its released code does). With the flip test unless `use_flip_test` is False."""
    if use_flip_test:
        prediction = flip_test(model, images, keypoints_2d, keypoints_2d_crop, skeleton=skeleton)
    else:
        prediction = model(images, keypoints_2d, keypoints_2d_crop)   # (B, 1, 17, 3)
    return prediction.float()[:, 0]


def prepare_batch(batch, backbone_type, device, flip=False, *, skeleton):
    """A DataLoader batch dict -> model inputs and the root-relative target, on `device`.

    `batch` holds 'images' (B,256,192,3) uint8 BGR, 'keypoints_2d' (B,17,2),
    'keypoints_2d_crop' (B,17,2) and 'keypoints_3d' (B,1,17,3) (metres; mm for MPI-INF-3DHP).
    With 'features' (a feature cache's maps, mvn/feature_cache.py), the images returned are a
    CachedFeatures that the model reads in place of the backbone's output.
    With `flip`, the whole batch is mirrored (QUIRK, docs/fidelity.md: the training loop draws
    once per batch, not per sample).
    """
    non_blocking = device.type == "cuda"
    keypoints_2d = batch["keypoints_2d"].to(device, torch.float32, non_blocking=non_blocking)
    keypoints_2d_crop = batch["keypoints_2d_crop"].to(device, torch.float32,
                                                      non_blocking=non_blocking)
    keypoints_3d = batch["keypoints_3d"].to(device, torch.float32, non_blocking=non_blocking)
    if "features" in batch:  # train.feature_cache: the backbone's maps instead of images
        images = CachedFeatures([m.to(device, non_blocking=non_blocking)
                                 for m in batch["features"]])
    else:
        images = prepare_images(batch["images"].to(device, non_blocking=non_blocking),
                                backbone_type)
    target = root_relative(keypoints_3d, skeleton)
    if flip:
        images, keypoints_2d, keypoints_2d_crop, target = flip_batch(
            images, keypoints_2d, keypoints_2d_crop, target, crop_width=images.shape[2],
            skeleton=skeleton)
    return images, keypoints_2d, keypoints_2d_crop, target
