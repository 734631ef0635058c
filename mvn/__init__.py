"""Context-Aware PoseFormer (CA-PF): 3D human pose from one 2D pose plus image context."""
