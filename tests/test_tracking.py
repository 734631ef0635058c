"""mvn/tracking.py on synthetic tracks: crossing people, a missed frame, a person leaving and
coming back, a newcomer; ids checked frame by frame."""
import numpy as np
import pytest

from mvn.tracking import Tracker, box_iou


def box_at(x, y, width=60, height=160):
    return np.array([x - width / 2, y - height / 2, x + width / 2, y + height / 2])


def joints_at(x, y, seed=0):
    """17 joints spread over the box around (x, y), the same body shape for one seed."""
    offsets = np.random.default_rng(seed).uniform([-25, -75], [25, 75], (17, 2))
    return offsets + [x, y]


def test_box_iou_against_hand_computed_values():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10], [2, 2, 4, 4]])
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 0, 1, 4 / 100]])


@pytest.mark.parametrize("with_joints", [False, True])
def test_two_people_crossing_keep_their_ids(with_joints):
    """A walks right and B left at 10 px per frame; they pass each other (boxes overlapping
    almost entirely) between frames 10 and 11. Detections come in a shuffled order."""
    tracker = Tracker()
    rng = np.random.default_rng(0)
    seen = {"A": set(), "B": set()}
    for frame in range(21):
        xa, xb = -5 + 10 * frame, 205 - 10 * frame
        people = [("A", box_at(xa, 100), joints_at(xa, 100, 1)),
                  ("B", box_at(xb, 100), joints_at(xb, 100, 2))]
        order = rng.permutation(2)
        boxes = np.stack([people[i][1] for i in order])
        joints = np.stack([people[i][2] for i in order]) if with_joints else None
        ids = tracker.update(frame, boxes, joints)
        for i, track_id in zip(order, ids):
            seen[people[i][0]].add(int(track_id))
    assert seen == {"A": {0}, "B": {1}} or seen == {"A": {1}, "B": {0}}


def test_a_missed_frame_is_bridged_and_a_long_absence_gives_a_new_id():
    tracker = Tracker(max_gap_frames=2)
    ids = []
    for frame in range(12):
        # seen in 0-2, missed in 3 (1 frame), seen 4-5, missed 6-8 (3 frames > 2), seen 9-11
        present = frame not in (3, 6, 7, 8)
        boxes = [box_at(100 + 5 * frame, 100)] if present else np.zeros((0, 4))
        ids.append(tracker.update(frame, boxes).tolist())
    assert ids == [[0], [0], [0], [], [0], [0], [], [], [], [1], [1], [1]]


def test_a_gap_of_exactly_max_gap_frames_keeps_the_id():
    tracker = Tracker(max_gap_frames=3)
    assert tracker.update(0, [box_at(100, 100)]).tolist() == [0]
    for frame in (1, 2, 3):
        assert tracker.update(frame, np.zeros((0, 4))).tolist() == []
    assert tracker.update(4, [box_at(100, 100)]).tolist() == [0]


def test_a_newcomer_gets_a_new_id_and_the_others_keep_theirs():
    tracker = Tracker()
    assert tracker.update(0, [box_at(100, 100), box_at(400, 100)]).tolist() == [0, 1]
    ids = tracker.update(1, [box_at(700, 100), box_at(402, 100), box_at(101, 100)])
    assert ids.tolist() == [2, 1, 0]
    # a detection far from every track is never matched to one
    assert tracker.update(2, [box_at(1500, 900)]).tolist() == [3]
