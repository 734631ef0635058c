"""The Human3.6M skeleton (mvn.skeleton, mvn.human36m.facts): the 17-joint tree and its left/right mirror."""
from mvn.human36m import facts as h36m


def test_flip_permutation_swaps_left_and_right_and_is_its_own_inverse():
    p = h36m.SKELETON.flip_permutation
    assert sorted(p) == list(range(17))
    assert all(p[p[j]] == j for j in range(17))
    for left, right in zip(h36m.JOINTS_LEFT, h36m.JOINTS_RIGHT):
        assert p[left] == right and p[right] == left
    centre = set(range(17)) - set(h36m.JOINTS_LEFT) - set(h36m.JOINTS_RIGHT)
    assert centre == {0, 7, 8, 9, 10} and all(p[j] == j for j in centre)


def test_the_tree_has_one_root_and_mirrors_onto_itself():
    parents = h36m.PARENTS
    assert parents[h36m.ROOT_JOINT] == -1 and parents.count(-1) == 1
    assert all(parents[j] < j for j in range(1, 17))  # parents come first
    p = h36m.SKELETON.flip_permutation
    assert all(parents[p[j]] == p[parents[j]] for j in range(1, 17))
    assert h36m.JOINT_NAMES[0] == "pelvis" and len(h36m.JOINT_NAMES) == 17
