"""The frozen 2D backbones, one row each: the only place that lists them.

A row says how to build the network, which published file it starts from, how its input is
normalised, and what its published file holds besides the backbone. The config's
`model.backbone.type`, `train.py --backbone`, batch preparation (normalisation), weight loading and
the released-config reader all read this table; the feature widths come from the built network
(`feature_channels`). A new backbone is one model file (the network, with `feature_channels`) and
one row here.
"""
from dataclasses import dataclass
from typing import Callable, Optional

from .cpn import CPN
from .hrnet import HRNET_TINY_STAGES, HRNet, hrnet_stages

# ImageNet statistics (RGB, of values / 255): the HRNet pose recipe normalises with them.
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
# The CPN recipe subtracts its pixel means (RGB, 0..255 units) and divides by nothing.
CPN_PIXEL_MEAN_RGB = (122.7717, 115.9465, 102.9801)


@dataclass(frozen=True)
class Backbone:
    """One frozen backbone. Its input: (RGB / 255 - mean_rgb) / std_rgb per channel."""
    name: str                        # model.backbone.type
    build: Callable                  # () -> the network (random weights), with .feature_channels
    published_file: Optional[str]    # its pretrained file in data/pretrained/ (None: none)
    mean_rgb: tuple
    std_rgb: tuple
    # Keys of the published file that are not the backbone's (HRNet's COCO heatmap head): left
    # out when the file is loaded as the backbone; the demo's 2D head reads them.
    head_prefixes: tuple = ()
    # `train.py --backbone NAME` trains at this batch size unless train.batch_size is given (the
    # released train.py does this for CPN); None: the config's.
    backbone_flag_batch_size: Optional[int] = None


BACKBONES = {backbone.name: backbone for backbone in (
    Backbone("hrnet_32", lambda: HRNet(hrnet_stages(32)), "pose_hrnet_w32_256x192.pth",
             IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, head_prefixes=("final_layer.",)),
    Backbone("hrnet_48", lambda: HRNet(hrnet_stages(48)), "pose_hrnet_w48_256x192.pth",
             IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, head_prefixes=("final_layer.",)),
    Backbone("cpn", CPN, "CPN50_256x192.pth.tar",
             tuple(m / 255 for m in CPN_PIXEL_MEAN_RGB), (1.0, 1.0, 1.0),
             backbone_flag_batch_size=256),
    # synthetic data and tests: no published weights
    Backbone("hrnet_tiny", lambda: HRNet(HRNET_TINY_STAGES), None,
             IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, head_prefixes=("final_layer.",)),
)}
NAMES = tuple(BACKBONES)
