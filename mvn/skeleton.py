"""The 17-joint Human3.6M skeleton every tensor of the project uses: names, tree, left/right.

    0 pelvis (root), 1 r_hip, 2 r_knee, 3 r_ankle, 4 l_hip, 5 l_knee, 6 l_ankle, 7 spine,
    8 thorax, 9 neck/nose, 10 head, 11 l_shoulder, 12 l_elbow, 13 l_wrist, 14 r_shoulder,
    15 r_elbow, 16 r_wrist

The names and the left/right lists come with the dataset's facts (mvn/h36m_facts.json).
"""
from dataclasses import dataclass

from mvn import mpi_inf_3dhp
from mvn.h36m import FACTS

NUM_JOINTS = 17
ROOT_JOINT = 0  # the pelvis: 3D poses are made relative to it
JOINT_NAMES = tuple(FACTS["joint_names_17"])
# Parent of each joint (-1: the root): the bones drawn by mvn.vis.
PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
JOINTS_LEFT = tuple(FACTS["joints_left"])    # (4, 5, 6, 11, 12, 13)
JOINTS_RIGHT = tuple(FACTS["joints_right"])  # (1, 2, 3, 14, 15, 16)


def flip_permutation(joints_left, joints_right, num_joints=NUM_JOINTS):
    """The joint order of a mirrored pose: each left joint exchanged with its right one."""
    permutation = list(range(num_joints))
    for left, right in zip(joints_left, joints_right):
        permutation[left], permutation[right] = right, left
    return tuple(permutation)


# pose[..., FLIP_PERMUTATION, :] swaps left and right joints (the mirror's relabelling).
FLIP_PERMUTATION = flip_permutation(JOINTS_LEFT, JOINTS_RIGHT)


@dataclass(frozen=True)
class Skeleton:
    """What the batch code needs of a dataset's 17 joints: the root and the left/right swap."""
    name: str
    root_joint: int
    flip_permutation: tuple
    joint_names: tuple
    parents: tuple


HUMAN36M = Skeleton("human36m", ROOT_JOINT, FLIP_PERMUTATION, JOINT_NAMES, PARENTS)
# MPI-INF-3DHP's 17 joints (another order, root 14): mvn/mpi_inf_3dhp.py.
MPI_INF_3DHP = Skeleton("mpi_inf_3dhp", mpi_inf_3dhp.ROOT_JOINT,
                        flip_permutation(mpi_inf_3dhp.JOINTS_LEFT, mpi_inf_3dhp.JOINTS_RIGHT),
                        mpi_inf_3dhp.JOINT_NAMES, mpi_inf_3dhp.PARENTS)
SKELETONS = {s.name: s for s in (HUMAN36M, MPI_INF_3DHP)}
