"""Models: backbones (HRNet, CPN), the context-aware PoseFormer, and CA_PF."""
from .capf import CA_PF, PRETRAINED_FILES, build_backbone, build_model

__all__ = ["CA_PF", "PRETRAINED_FILES", "build_backbone", "build_model"]
