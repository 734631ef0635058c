"""CA_PF = a frozen 2D backbone + the context-aware PoseFormer; `build_model(config)`."""
import os

import torch
import torch.nn as nn

from mvn.cached_features import CachedFeatures
from mvn.geometry import CROP_HALF_XY

from .backbones import BACKBONES
from .poseformer import ContextPoseFormer

# Where a published backbone file is looked for, in order: this project's place, then the one the
# released README gives.
PRETRAINED_DIRS = (os.path.join("data", "pretrained"), os.path.join("data", "pretrained", "coco"))


def default_pretrained_path(backbone_type):
    """The published file of `backbone_type` in the first of PRETRAINED_DIRS that holds it (the
    first place when none does, so that an error names where to put it); None if it has none."""
    name = BACKBONES[backbone_type].published_file
    if name is None:
        return None
    candidates = [os.path.join(folder, name) for folder in PRETRAINED_DIRS]
    return next((path for path in candidates if os.path.isfile(path)), candidates[0])


def build_backbone(backbone_type):
    """The network of a row of mvn.models.backbones.BACKBONES (random weights)."""
    if backbone_type not in BACKBONES:
        raise ValueError("unknown backbone type '%s'; use one of %s"
                         % (backbone_type, ", ".join(BACKBONES)))
    return BACKBONES[backbone_type].build()


class CA_PF(nn.Module):
    """forward(images (B,256,192,3) prepared, keypoints_2d (B,17,2), keypoints_2d_crop (B,17,2))
    -> (B,1,17,3) camera-frame joints relative to the pelvis as trained (the targets are
    root-relative; the pelvis row is predicted, close to 0, not forced to 0), in the unit of the
    training targets: metres for Human3.6M, mm for MPI-INF-3DHP.

    `backbone` None (model.image_features false, an addition): the context-agnostic counterpart,
    the same transformer on the 2D joints alone; `images` is never read (it may be None)."""

    def __init__(self, backbone, volume_net, frozen_backbone=True, backbone_bn_mode="eval"):
        super().__init__()
        self.backbone = backbone
        self.volume_net = volume_net
        self.frozen_backbone = frozen_backbone
        self.backbone_bn_mode = backbone_bn_mode
        # False: the backbone gets an NCHW-contiguous copy of the images, as both released models
        # do (`permute(0, 3, 1, 2).contiguous()`); True (train.channels_last): the NHWC view
        # itself, no copy, and the convolutions run channels-last. Not bit-equal: on the CPU,
        # train-mode BatchNorm (the MPI-INF-3DHP recipe, Q4) is several times less accurate on
        # channels-last input (docs/fidelity.md, "Memory layout").
        self.channels_last = False
        if frozen_backbone and backbone is not None:
            self.backbone.requires_grad_(False)
            if backbone_bn_mode == "eval":
                self.backbone.eval()

    def train(self, mode=True):
        """A frozen backbone (and its BatchNorm statistics) stays in eval mode while training,
        unless backbone_bn_mode is "train": then it follows the model (QUIRK Q4 of the
        MPI-INF-3DHP code: batch statistics in training, running statistics updated)."""
        super().train(mode)
        if self.frozen_backbone and self.backbone_bn_mode == "eval" and self.backbone is not None:
            self.backbone.eval()
        return self

    def forward(self, images, keypoints_2d, keypoints_2d_crop):
        features = [] if self.backbone is None else self.backbone_features(images)
        return self.lift(keypoints_2d, keypoints_2d_crop, features)

    def backbone_features(self, images):
        """(B, 256, 192, 3) prepared images -> the feature maps volume_net samples. A
        CachedFeatures batch (train.feature_cache) gives its stored maps: the backbone's output
        for these frames, computed before."""
        if isinstance(images, CachedFeatures):
            return images.maps()[:len(self.volume_net.feat_embed)]
        images = images.permute(0, 3, 1, 2)  # (B, 3, 256, 192), a view of the NHWC batch
        if not self.channels_last:
            images = images.contiguous()     # the released layout
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen_backbone):
            features = self.backbone(images)  # 4 maps (B, C_l, H_l, W_l)
        return features[:len(self.volume_net.feat_embed)]

    def lift(self, keypoints_2d, keypoints_2d_crop, features):
        """volume_net on the 2D joints and the backbone's feature maps -> (B, 1, 17, 3)."""
        # Crop pixels -> grid coordinates. QUIRK: divides by the half-size (96, 128), not (95.5,
        # 127.5), so x = 191 maps to 0.99 rather than 1 (the reference does this in place on its
        # argument; here the argument is left untouched).
        ref = keypoints_2d_crop / keypoints_2d_crop.new_tensor(CROP_HALF_XY) - 1  # (B, 17, 2)
        return self.volume_net(keypoints_2d, ref, features)


def build_model(config):
    """The CA_PF model that `config.model` describes (random initialisation; no files read).
    With model.image_features false no backbone is built: the 2D joints alone are lifted."""
    model_config = config.model
    backbone = None
    feature_channels = []
    if model_config.image_features:
        backbone = build_backbone(model_config.backbone.type)
        feature_channels = backbone.feature_channels[:model_config.levels]
    volume_net = ContextPoseFormer(
        feature_channels=feature_channels,
        embed_dim_ratio=model_config.embed_dim_ratio,
        depth=model_config.depth,
        drop_path_rate=model_config.drop_path_rate,
        deformable_context=model_config.deformable_context,
    )
    return CA_PF(backbone, volume_net, frozen_backbone=model_config.backbone.frozen,
                 backbone_bn_mode=model_config.backbone.bn_mode)
