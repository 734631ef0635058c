"""Models: backbones (HRNet, CPN), the context-aware PoseFormer, and CA_PF."""
from .capf import CA_PF, PRETRAINED_DIRS, PRETRAINED_FILES, build_backbone, build_model, \
    default_pretrained_path

__all__ = ["CA_PF", "PRETRAINED_DIRS", "PRETRAINED_FILES", "build_backbone", "build_model",
           "default_pretrained_path"]
