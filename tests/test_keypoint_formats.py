"""mvn/keypoint_formats.py: every format's conversion into Human3.6M's 17 joints against joints
computed by hand in this file from the formats' documented keypoint indices."""
import numpy as np
import pytest

from mvn import keypoint_formats
from mvn.keypoint_formats import KeypointFormatError, scores_to_h36m, to_h36m

# Documented indices of each format (typed from the formats' own documentation, not from the
# module): left/right hip, knee, ankle, shoulder, elbow, wrist, nose, eyes, ears.
INDICES = {
    "coco": dict(lhip=11, rhip=12, lknee=13, rknee=14, lankle=15, rankle=16, lsho=5, rsho=6,
                 lelb=7, relb=8, lwri=9, rwri=10, nose=0, leye=1, reye=2, lear=3, rear=4),
    "halpe26": dict(lhip=11, rhip=12, lknee=13, rknee=14, lankle=15, rankle=16, lsho=5, rsho=6,
                    lelb=7, relb=8, lwri=9, rwri=10, nose=0, leye=1, reye=2, lear=3, rear=4,
                    head=17),
    "openpose25": dict(lhip=12, rhip=9, lknee=13, rknee=10, lankle=14, rankle=11, lsho=5, rsho=2,
                       lelb=6, relb=3, lwri=7, rwri=4, nose=0, leye=16, reye=15, lear=18,
                       rear=17),
    "mediapipe33": dict(lhip=23, rhip=24, lknee=25, rknee=26, lankle=27, rankle=28, lsho=11,
                        rsho=12, lelb=13, relb=14, lwri=15, rwri=16, nose=0, leye=2, reye=5,
                        lear=7, rear=8),
}
COUNTS = {"coco": 17, "halpe26": 26, "openpose25": 25, "mediapipe33": 33}


def by_hand(k, i):
    """Human3.6M's 17 joints from keypoints k (K, 2), as the documented recipe says."""
    pelvis = (k[i["lhip"]] + k[i["rhip"]]) / 2
    thorax = (k[i["lsho"]] + k[i["rsho"]]) / 2
    spine = (pelvis + thorax) / 2
    if "head" in i:
        head = k[i["head"]]
    else:
        face = (k[i["leye"]] + k[i["reye"]] + k[i["lear"]] + k[i["rear"]]) / 4
        head = face + 0.5 * (face - thorax)
    return np.stack([pelvis, k[i["rhip"]], k[i["rknee"]], k[i["rankle"]], k[i["lhip"]],
                     k[i["lknee"]], k[i["lankle"]], spine, thorax, k[i["nose"]], head,
                     k[i["lsho"]], k[i["lelb"]], k[i["lwri"]], k[i["rsho"]], k[i["relb"]],
                     k[i["rwri"]]])


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_each_format_against_hand_computed_joints(name):
    rng = np.random.default_rng(COUNTS[name])
    keypoints = rng.uniform(0, 1000, (COUNTS[name], 2))
    np.testing.assert_allclose(to_h36m(keypoints, name), by_hand(keypoints, INDICES[name]),
                               rtol=0, atol=1e-9)
    # batches of frames and people, a score column kept as a third coordinate
    batch = rng.uniform(0, 1000, (3, 2, COUNTS[name], 3))
    converted = to_h36m(batch, name)
    assert converted.shape == (3, 2, 17, 3)
    np.testing.assert_allclose(converted[2, 1, :, :2], by_hand(batch[2, 1, :, :2], INDICES[name]),
                               atol=1e-9)


def test_h36m_is_the_identity_and_every_row_sums_to_one():
    joints = np.arange(34.0).reshape(17, 2)
    np.testing.assert_array_equal(to_h36m(joints, "h36m"), joints)
    for name in keypoint_formats.FORMATS:
        np.testing.assert_allclose(keypoint_formats.conversion_matrix(name).sum(1), 1.0)


def test_the_coco_head_conversion_is_unchanged():
    """The demo's COCO head goes through the same table (mvn.coco.coco_to_h36m)."""
    from mvn import coco
    keypoints = np.random.default_rng(5).normal(size=(4, 17, 2))
    np.testing.assert_array_equal(coco.coco_to_h36m(keypoints), to_h36m(keypoints, "coco"))


def test_scores_take_each_joints_weakest_source():
    scores = np.linspace(0.9, 0.1, 25)  # openpose25: keypoint k has score 0.9 - k / 30
    h = scores_to_h36m(scores, "openpose25")
    assert h[0] == pytest.approx(scores[12])          # pelvis: hips 9 and 12 -> 12's lower score
    assert h[3] == pytest.approx(scores[11])          # right ankle
    assert h[10] == pytest.approx(scores[18])         # head: eyes 15/16, ears 17/18, shoulders
    assert h[9] == pytest.approx(scores[0])           # nose


@pytest.mark.parametrize("name,shape", [("coco", (17, 3, 2)), ("openpose25", (18, 2)),
                                        ("mediapipe33", (33,))])
def test_a_wrong_keypoint_count_names_the_format_and_the_expected_shape(name, shape):
    with pytest.raises(KeypointFormatError, match=r"not in the %s format: expected \(\.\.\., %d, 2\)"
                       % (name, COUNTS[name])):
        to_h36m(np.zeros(shape), name)


def test_an_unknown_format_lists_the_known_ones():
    with pytest.raises(KeypointFormatError, match="unknown keypoint format 'body25'; one of: h36m, "
                       "coco, halpe26, openpose25, mediapipe33"):
        to_h36m(np.zeros((25, 2)), "body25")
