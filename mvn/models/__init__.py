"""Models: backbones (HRNet, CPN), the context-aware PoseFormer, and CA_PF."""
from .backbones import BACKBONES
from .capf import CA_PF, PRETRAINED_DIRS, build_backbone, build_model, default_pretrained_path

__all__ = ["BACKBONES", "CA_PF", "PRETRAINED_DIRS", "build_backbone", "build_model",
           "default_pretrained_path"]
