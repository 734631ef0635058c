"""2D joints from the HRNet backbone's COCO heatmap head, converted to the Human3.6M skeleton.

Used by `demo.py` on the user's own images, where no 2D detections come with the frames:
1. the person box -> a 256x192 crop (`box_to_center_scale`, then `mvn.geometry.crop_image`);
2. HRNet features[0] (C ch, 64x48) -> `final_layer` (the 1x1 conv of the published COCO file
   `pose_hrnet_w32_256x192.pth`) -> 17 COCO heatmaps;
3. `decode_heatmaps`: argmax + a quarter-pixel shift towards the higher neighbour (HRNet's
   `get_final_preds`), scaled to crop pixels, then mapped to the frame by the inverse crop affine;
4. `coco_to_h36m`: COCO's 17 keypoints -> Human3.6M's 17 joints (mvn/keypoint_formats.py).
"""
import copy
import logging

import numpy as np
import torch
import torch.nn as nn

from mvn import keypoint_formats
from mvn.geometry import BOX_UNIT_PX, CROP_SHAPE, HEATMAP_SHAPE
from mvn.models.weights import WeightsError, check_state_dict, extract_state_dict, \
    read_weights_file

logger = logging.getLogger(__name__)

HEAD_PREFIX = "final_layer."  # the COCO heatmap head's keys in the published HRNet files
BOX_PADDING = 1.25            # HRNet's enlargement of a detector box (box_to_center_scale)
COCO_TO_H36M = keypoint_formats.conversion_matrix("coco")  # (H36M joint, COCO keypoint) weights


def coco_to_h36m(keypoints_coco):
    """(..., 17, D) COCO keypoints (any coordinates) -> (..., 17, D) Human3.6M joints."""
    return keypoint_formats.to_h36m(keypoints_coco, "coco")


def coco_scores_to_h36m(scores_coco):
    """(..., 17) COCO keypoint confidences -> (..., 17): the lowest of each joint's sources."""
    return keypoint_formats.scores_to_h36m(scores_coco, "coco")


def box_to_center_scale(boxes_px, padding=BOX_PADDING, aspect_ratio=CROP_SHAPE[1] / CROP_SHAPE[0]):
    """(..., 4) boxes x1, y1, x2, y2 -> center (..., 2) px, scale (..., 2) = (w, h) / 200.

    As HRNet's demo `box_to_center_scale`: the box is widened or heightened to the crop's
    192:256 aspect ratio around its centre, then enlarged by `padding` (1.25)."""
    boxes_px = np.asarray(boxes_px, dtype=np.float64)
    center = (boxes_px[..., :2] + boxes_px[..., 2:]) / 2
    width = boxes_px[..., 2] - boxes_px[..., 0]
    height = boxes_px[..., 3] - boxes_px[..., 1]
    width, height = (np.maximum(width, height * aspect_ratio),
                     np.maximum(height, width / aspect_ratio))
    scale = np.stack([width, height], axis=-1) / BOX_UNIT_PX * padding
    return center, scale


def box_from_keypoints(keypoints_px):
    """(..., J, 2) joints -> (..., 4) their tight bounding box x1, y1, x2, y2 (finite joints)."""
    keypoints_px = np.asarray(keypoints_px, dtype=np.float64)
    return np.concatenate([np.nanmin(keypoints_px, axis=-2), np.nanmax(keypoints_px, axis=-2)], -1)


def decode_heatmaps(heatmaps):
    """(B, J, H, W) heatmaps -> coordinates (B, J, 2) in heatmap pixels (x, y), scores (B, J).

    The argmax, moved a quarter pixel towards the higher neighbour along x and along y (HRNet's
    `get_final_preds`). QUIRK: like HRNet, no shift when the argmax lies on the first two or the
    last column / row (its test is `1 < x < W - 1`). Unlike HRNet's `get_max_preds`, a joint
    whose maximum is <= 0 keeps its argmax (HRNet moves it to (0, 0)); its score tells."""
    batch, joints, height, width = heatmaps.shape
    flat = heatmaps.reshape(batch, joints, height * width)
    index = flat.argmax(-1)                                    # (B, J), first maximum
    scores = flat.gather(-1, index[..., None])[..., 0]
    x, y = index % width, torch.div(index, width, rounding_mode="floor")
    inside = (x > 1) & (x < width - 1) & (y > 1) & (y < height - 1)
    xc, yc = x.clamp(1, width - 2), y.clamp(1, height - 2)    # neighbours exist (used if inside)

    def value(row, column):
        return flat.gather(-1, (row * width + column)[..., None])[..., 0]

    dx = torch.sign(value(yc, xc + 1) - value(yc, xc - 1))
    dy = torch.sign(value(yc + 1, xc) - value(yc - 1, xc))
    shift = torch.stack([dx, dy], -1) * 0.25 * inside[..., None]
    coords = torch.stack([x, y], -1).to(heatmaps.dtype) + shift  # (B, J, 2)
    return coords, scores


def heatmap_to_crop_px(coords, heatmap_shape=HEATMAP_SHAPE, crop_shape=CROP_SHAPE):
    """(..., 2) heatmap pixels (x, y) -> crop pixels: x * 192 / 48 (= 4), as HRNet was trained.
    Shapes are (height, width)."""
    return coords * coords.new_tensor([crop_shape[1] / heatmap_shape[1],
                                       crop_shape[0] / heatmap_shape[0]])


class CocoHeatmapHead(nn.Module):
    """HRNet's `final_layer`: features[0] (B, C, 64, 48) -> (B, 17, 64, 48) COCO heatmaps."""

    def __init__(self, in_channels, num_keypoints=17, kernel_size=1):
        super().__init__()
        self.final_layer = nn.Conv2d(in_channels, num_keypoints, kernel_size,
                                     padding=kernel_size // 2)

    def forward(self, features):
        return self.final_layer(features)


class CocoKeypointDetector(nn.Module):
    """HRNet backbone + COCO heatmap head: prepared crops -> COCO keypoints in crop pixels."""

    def __init__(self, backbone, head):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, images):
        """(B, 256, 192, 3) prepared (mvn.batch.prepare_images) -> (B, 17, 64, 48) heatmaps."""
        return self.head(self.backbone(images.permute(0, 3, 1, 2))[0])

    @torch.no_grad()
    def detect(self, images):
        """(B, 256, 192, 3) prepared -> COCO keypoints (B, 17, 2) crop pixels, scores (B, 17)."""
        heatmaps = self(images)
        coords, scores = decode_heatmaps(heatmaps.float())
        return heatmap_to_crop_px(coords, tuple(heatmaps.shape[-2:]), tuple(images.shape[1:3])), scores


def load_coco_detector(backbone, path):
    """A CocoKeypointDetector from the COCO file at `path` over `backbone` (an HRNet).

    The file's `final_layer.*` make the head. If the file also holds backbone weights (the
    published file does) and they differ from `backbone`'s, the detector uses a copy of the
    backbone with the file's weights, so the heatmaps are exactly the published network's."""
    state_dict = extract_state_dict(read_weights_file(path), path)
    head_state = {k[len(HEAD_PREFIX):]: v for k, v in state_dict.items()
                  if k.startswith(HEAD_PREFIX)}
    if "weight" not in head_state:
        raise WeightsError("%s holds no %sweight (the COCO heatmap head): use the published "
                           "HRNet COCO file, e.g. pose_hrnet_w32_256x192.pth" % (path, HEAD_PREFIX))
    weight = head_state["weight"]  # (17, C, k, k)
    in_channels = backbone.feature_channels[0]
    if weight.dim() != 4 or weight.shape[1] != in_channels:
        raise WeightsError("%s: %sweight has shape %s but the backbone's features[0] has %d "
                           "channels (expected (17, %d, 1, 1)): the file is for another HRNet width"
                           % (path, HEAD_PREFIX, tuple(weight.shape), in_channels, in_channels))
    head = CocoHeatmapHead(in_channels, weight.shape[0], weight.shape[-1])
    head_state = {HEAD_PREFIX + k: v for k, v in head_state.items()}
    check_state_dict(head, head_state, path, what="COCO heatmap head")
    head.load_state_dict(head_state, strict=True)

    backbone_state = {k: v for k, v in state_dict.items() if not k.startswith(HEAD_PREFIX)}
    if backbone_state:
        check_state_dict(backbone, backbone_state, path, what="HRNet backbone")
        current = backbone.state_dict()
        if any(not torch.equal(current[k].cpu(), v) for k, v in backbone_state.items()):
            logger.info("%s: its backbone differs from the checkpoint's; the 2D detector uses "
                        "the file's", path)
            backbone = copy.deepcopy(backbone)
            backbone.load_state_dict(backbone_state, strict=True)
    return CocoKeypointDetector(backbone, head).eval()
