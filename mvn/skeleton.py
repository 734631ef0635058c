"""A 17-joint skeleton as the batch code, the loss and the pictures need it: the root joint
(3D poses are made relative to it), the tree (bones to draw), and the left/right mirror.

Each benchmark defines its own, with its joint order: `mvn.human36m.facts.SKELETON` (root 0, the
pelvis) and `mvn.mpi_inf_3dhp.facts.SKELETON` (root 14); `mvn.benchmarks.get(name).skeleton`
gives the one of a config's dataset.
"""
from dataclasses import dataclass, field


def flip_permutation(joints_left, joints_right, num_joints):
    """The joint order of a mirrored pose: each left joint exchanged with its right one."""
    permutation = list(range(num_joints))
    for left, right in zip(joints_left, joints_right):
        permutation[left], permutation[right] = right, left
    return tuple(permutation)


@dataclass(frozen=True)
class Skeleton:
    """`flip_permutation`: pose[..., flip_permutation, :] swaps left and right joints (the
    mirror's relabelling). `parents[j]`: the joint j's bone goes to (-1: the root)."""
    name: str
    root_joint: int
    joint_names: tuple
    parents: tuple
    joints_left: tuple
    joints_right: tuple
    flip_permutation: tuple = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "flip_permutation", flip_permutation(
            self.joints_left, self.joints_right, len(self.joint_names)))

    @property
    def num_joints(self):
        return len(self.joint_names)
