"""Evaluations beside the benchmark's own table (config section `evaluation`, train.py --eval):
per-joint errors, a 2D-noise sweep, hard frames, and the model's cost. One module per concept
(per_joint, noise, hard_frames, cost); `report` runs the enabled ones and writes their files."""
