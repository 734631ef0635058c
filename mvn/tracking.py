"""People keep their identity from frame to frame in a video: a small tracker for the demo.

Each track remembers a person's last box and 2D joints and their velocity (per frame, from the
last two frames it was seen in). In a new frame, every track predicts where its box and joints
are now (constant velocity over the frames since it was last seen) and the detections are matched
to the tracks by one assignment (scipy's Hungarian solver) minimising

    cost = (1 - IoU(predicted box, detected box)) + mean joint distance / predicted box diagonal

over the pairs that pass the gate: IoU >= `min_iou` or the normalised joint distance <=
`max_joint_distance`. A matched detection takes the track's id; an unmatched one starts a new
track (ids count up from 0, never reused); a track not seen for more than `max_gap_frames`
frames ends, so a person who leaves and comes back later gets a new id. Gaps of up to
`max_gap_frames` missed frames (a missed detection, an occlusion, a damaged frame) are bridged.
The velocity lets two people who cross keep their ids where boxes alone would swap them.
"""
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment


def box_iou(boxes_a, boxes_b):
    """(A, 4), (B, 4) boxes x1, y1, x2, y2 -> (A, B) intersection over union."""
    boxes_a = np.asarray(boxes_a, dtype=np.float64)[:, None]  # (A, 1, 4)
    boxes_b = np.asarray(boxes_b, dtype=np.float64)[None]     # (1, B, 4)
    top_left = np.maximum(boxes_a[..., :2], boxes_b[..., :2])
    bottom_right = np.minimum(boxes_a[..., 2:], boxes_b[..., 2:])
    intersection = np.prod(np.clip(bottom_right - top_left, 0, None), axis=-1)
    area_a = np.prod(boxes_a[..., 2:] - boxes_a[..., :2], axis=-1)
    area_b = np.prod(boxes_b[..., 2:] - boxes_b[..., :2], axis=-1)
    union = area_a + area_b - intersection
    return np.where(union > 0, intersection / np.where(union > 0, union, 1), 0.0)


@dataclass
class Track:
    track_id: int
    box_px: np.ndarray        # (4,) where last seen
    joints_px: np.ndarray     # (J, 2) where last seen (NaN when no joints were given)
    last_frame: int
    box_velocity_px: np.ndarray      # (4,) per frame
    joints_velocity_px: np.ndarray   # (J, 2) per frame

    def predicted(self, frame):
        """(box (4,), joints (J, 2)) expected at `frame` at constant velocity."""
        steps = frame - self.last_frame
        return (self.box_px + steps * self.box_velocity_px,
                self.joints_px + steps * self.joints_velocity_px)


class Tracker:
    """update(frame, boxes, joints) -> one track id per detection; see the module's docstring."""

    def __init__(self, max_gap_frames=5, min_iou=0.1, max_joint_distance=0.5):
        self.max_gap_frames = max_gap_frames
        self.min_iou = min_iou
        self.max_joint_distance = max_joint_distance
        self.tracks = []
        self.next_id = 0

    def _costs(self, frame, boxes_px, joints_px):
        """(tracks, detections) matching costs, np.inf where the gate refuses the pair."""
        costs = np.full((len(self.tracks), len(boxes_px)), np.inf)
        for t, track in enumerate(self.tracks):
            box, joints = track.predicted(frame)                      # (4,), (J, 2)
            iou = box_iou(box[None], boxes_px)[0]                     # (D,)
            distance = np.full(len(boxes_px), np.inf)                 # joints unknown
            if joints_px is not None and joints.shape == joints_px.shape[1:]:
                diagonal = max(float(np.hypot(box[2] - box[0], box[3] - box[1])), 1e-6)
                gap = np.linalg.norm(joints[None] - joints_px, axis=-1).mean(-1)  # (D,)
                distance = np.where(np.isfinite(gap), gap / diagonal, np.inf)
            cost = (1 - iou) + np.where(np.isfinite(distance), distance, 0.0)
            allowed = (iou >= self.min_iou) | (distance <= self.max_joint_distance)
            costs[t] = np.where(allowed, cost, np.inf)
        return costs

    def update(self, frame, boxes_px, joints_px=None):
        """Track ids (D,) int for the detections of frame number `frame` (increasing): boxes
        (D, 4) x1, y1, x2, y2 and optionally their 2D joints (D, J, 2), in pixels."""
        boxes_px = np.asarray(boxes_px, dtype=np.float64).reshape(-1, 4)
        if joints_px is not None:
            joints_px = np.asarray(joints_px, dtype=np.float64)
        self.tracks = [t for t in self.tracks if frame - t.last_frame <= self.max_gap_frames + 1]
        ids = np.full(len(boxes_px), -1, dtype=np.int64)
        matched = []
        if self.tracks and len(boxes_px):
            costs = self._costs(frame, boxes_px, joints_px)
            finite = np.where(np.isfinite(costs), costs, 1e9)
            for t, d in zip(*linear_sum_assignment(finite)):
                if np.isfinite(costs[t, d]):
                    matched.append((self.tracks[t], d))
        for track, d in matched:
            ids[d] = track.track_id
            self._move(track, frame, boxes_px[d], None if joints_px is None else joints_px[d])
        for d in np.flatnonzero(ids < 0):
            joints = (np.full((1, 2), np.nan) if joints_px is None else joints_px[d])
            self.tracks.append(Track(self.next_id, boxes_px[d].copy(), joints.copy(), frame,
                                     np.zeros(4), np.zeros_like(joints)))
            ids[d] = self.next_id
            self.next_id += 1
        return ids

    @staticmethod
    def _move(track, frame, box_px, joints_px):
        steps = frame - track.last_frame
        track.box_velocity_px = (box_px - track.box_px) / steps
        if joints_px is not None and track.joints_px.shape == joints_px.shape:
            track.joints_velocity_px = (joints_px - track.joints_px) / steps
            track.joints_px = joints_px.copy()
        track.box_px = box_px.copy()
        track.last_frame = frame
