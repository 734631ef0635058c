"""Synthetic releases: a moving figure (motion.py), cameras with their lens models (camera.py)
and the renderer that draws the figure in a room (render.py), shared by H36M-Toolbox and
MPI-INF-3DHP-Toolbox."""
