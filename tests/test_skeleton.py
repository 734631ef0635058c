"""mvn.skeleton: the 17-joint tree and its left/right mirror."""
from mvn import skeleton


def test_flip_permutation_swaps_left_and_right_and_is_its_own_inverse():
    p = skeleton.FLIP_PERMUTATION
    assert sorted(p) == list(range(17))
    assert all(p[p[j]] == j for j in range(17))
    for left, right in zip(skeleton.JOINTS_LEFT, skeleton.JOINTS_RIGHT):
        assert p[left] == right and p[right] == left
    centre = set(range(17)) - set(skeleton.JOINTS_LEFT) - set(skeleton.JOINTS_RIGHT)
    assert centre == {0, 7, 8, 9, 10} and all(p[j] == j for j in centre)


def test_the_tree_has_one_root_and_mirrors_onto_itself():
    parents = skeleton.PARENTS
    assert parents[skeleton.ROOT_JOINT] == -1 and parents.count(-1) == 1
    assert all(parents[j] < j for j in range(1, 17))  # parents come first
    p = skeleton.FLIP_PERMUTATION
    assert all(parents[p[j]] == p[parents[j]] for j in range(1, 17))
    assert skeleton.JOINT_NAMES[0] == "pelvis" and len(skeleton.JOINT_NAMES) == 17
