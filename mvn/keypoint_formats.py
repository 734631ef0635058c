"""2D keypoints of other detectors' formats -> Human3.6M's 17 joints: the one home of every
conversion (the COCO heatmap head of the demo, a user's keypoint file, a person detector's joints).

Formats (`FORMATS`; keypoint order as each project documents it):
  h36m         Human3.6M's 17 joints (mvn.human36m.facts.JOINT_NAMES), taken as they are
  coco         COCO-17 (HRNet, ViTPose, Keypoint R-CNN, YOLO-pose, MMPose's default)
  halpe26      Halpe-26 (AlphaPose): COCO-17 + head top, neck, hip, big/small toes, heels
  openpose25   OpenPose BODY_25: nose, neck, right arm, left arm, mid-hip, legs, eyes, ears, feet
  mediapipe33  MediaPipe / BlazePose's 33 landmarks (give pixels: multiply its normalised x, y
               by the image width and height)

Each Human3.6M joint is a weighted mean of keypoints, the same recipe in every format:
  hips, knees, ankles, shoulders, elbows, wrists   the keypoint of that name
  pelvis     mean of the two hips
  thorax     mean of the two shoulders
  spine      mean of pelvis and thorax (the two hips and the two shoulders, 1/4 each)
  neck/nose  the nose
  head       the head top where the format has one (Halpe-26's `head`); otherwise the face
             (mean of the eyes and the ears) moved on by HEAD_EXTENSION times face - thorax, a
             point towards the top of the head along the neck
Every row of weights sums to 1, so a conversion commutes with any affine map (crop pixels,
frame pixels, normalised screen coordinates). A joint's confidence is the lowest of its sources'.
Joints Human3.6M has no counterpart for (OpenPose's neck and mid-hip, Halpe's neck and hip, the
feet, hands and face details) are not used: the derived joints come from the same keypoints in
every format, so a pose means the same whichever detector made it.
"""
import numpy as np

from mvn.errors import CAPFError
from mvn.human36m.facts import JOINT_NAMES as H36M_JOINT_NAMES

COCO_KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",                 # 0..4
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",          # 5..8
    "left_wrist", "right_wrist", "left_hip", "right_hip",                    # 9..12
    "left_knee", "right_knee", "left_ankle", "right_ankle",                  # 13..16
)
KEYPOINT_NAMES = {
    "h36m": H36M_JOINT_NAMES,
    "coco": COCO_KEYPOINT_NAMES,
    "halpe26": COCO_KEYPOINT_NAMES + (
        "head", "neck", "hip", "left_big_toe", "right_big_toe",              # 17..21
        "left_small_toe", "right_small_toe", "left_heel", "right_heel"),     # 22..25
    "openpose25": (
        "nose", "neck", "right_shoulder", "right_elbow", "right_wrist",      # 0..4
        "left_shoulder", "left_elbow", "left_wrist", "mid_hip",              # 5..8
        "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",   # 9..13
        "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear",      # 14..18
        "left_big_toe", "left_small_toe", "left_heel",                       # 19..21
        "right_big_toe", "right_small_toe", "right_heel"),                   # 22..24
    "mediapipe33": (
        "nose", "left_eye_inner", "left_eye", "left_eye_outer",              # 0..3
        "right_eye_inner", "right_eye", "right_eye_outer",                   # 4..6
        "left_ear", "right_ear", "mouth_left", "mouth_right",                # 7..10
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",      # 11..14
        "left_wrist", "right_wrist", "left_pinky", "right_pinky",            # 15..18
        "left_index", "right_index", "left_thumb", "right_thumb",            # 19..22
        "left_hip", "right_hip", "left_knee", "right_knee",                  # 23..26
        "left_ankle", "right_ankle", "left_heel", "right_heel",              # 27..30
        "left_foot_index", "right_foot_index"),                              # 31..32
}
FORMATS = tuple(KEYPOINT_NAMES)
HEAD_EXTENSION = 0.5  # head = face + 0.5 (face - thorax)

_FACE = {"left_eye": 0.25, "right_eye": 0.25, "left_ear": 0.25, "right_ear": 0.25}
_THORAX = {"left_shoulder": 0.5, "right_shoulder": 0.5}
_HEAD_FROM_FACE = {name: weight * (1 + HEAD_EXTENSION) for name, weight in _FACE.items()}
_HEAD_FROM_FACE.update({name: -weight * HEAD_EXTENSION for name, weight in _THORAX.items()})
# Human3.6M joint (in JOINT_NAMES order) <- {keypoint name: weight}
_RECIPE = {
    "pelvis": {"left_hip": 0.5, "right_hip": 0.5},
    "r_hip": {"right_hip": 1.0}, "r_knee": {"right_knee": 1.0}, "r_ankle": {"right_ankle": 1.0},
    "l_hip": {"left_hip": 1.0}, "l_knee": {"left_knee": 1.0}, "l_ankle": {"left_ankle": 1.0},
    "spine": {"left_hip": 0.25, "right_hip": 0.25, "left_shoulder": 0.25, "right_shoulder": 0.25},
    "thorax": _THORAX,
    "neck_nose": {"nose": 1.0},
    "head": _HEAD_FROM_FACE,
    "l_shoulder": {"left_shoulder": 1.0}, "l_elbow": {"left_elbow": 1.0},
    "l_wrist": {"left_wrist": 1.0},
    "r_shoulder": {"right_shoulder": 1.0}, "r_elbow": {"right_elbow": 1.0},
    "r_wrist": {"right_wrist": 1.0},
}


class KeypointFormatError(CAPFError, ValueError):
    """Keypoints whose format or shape is not what was asked for."""


def check_format(name):
    """`name` if it is one of FORMATS, else a KeypointFormatError listing them."""
    if name not in KEYPOINT_NAMES:
        raise KeypointFormatError("unknown keypoint format %r; one of: %s"
                                  % (name, ", ".join(FORMATS)))
    return name


def conversion_matrix(name):
    """(17, K) weights: Human3.6M joint j = sum_k W[j, k] * keypoint k of format `name`."""
    names = KEYPOINT_NAMES[check_format(name)]
    if name == "h36m":
        return np.eye(len(names))
    index = {keypoint: k for k, keypoint in enumerate(names)}
    matrix = np.zeros((len(H36M_JOINT_NAMES), len(names)))
    for joint, joint_name in enumerate(H36M_JOINT_NAMES):
        recipe = {"head": 1.0} if joint_name == "head" and "head" in index else _RECIPE[joint_name]
        for keypoint, weight in recipe.items():
            matrix[joint, index[keypoint]] = weight
    return matrix


def num_keypoints(name):
    return len(KEYPOINT_NAMES[check_format(name)])


def _check_count(array, name, what):
    expected = num_keypoints(name)
    if array.ndim < 1 + (what == "keypoints") or array.shape[-1 - (what == "keypoints")] != expected:
        shape = "(..., %d, 2)" % expected if what == "keypoints" else "(..., %d)" % expected
        raise KeypointFormatError("%s of shape %s are not in the %s format: expected %s"
                                  % (what, array.shape, name, shape))


def to_h36m(keypoints, name):
    """(..., K, D) keypoints of format `name` (any coordinates) -> (..., 17, D) float64."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    _check_count(keypoints, name, "keypoints")
    return np.einsum("hk,...kd->...hd", conversion_matrix(name), keypoints)


def scores_to_h36m(scores, name):
    """(..., K) keypoint confidences of format `name` -> (..., 17): each joint's lowest source."""
    scores = np.asarray(scores, dtype=np.float64)
    _check_count(scores, name, "scores")
    used = np.where(conversion_matrix(name) != 0, 0.0, np.inf)  # (17, K): 0 where used
    return np.min(scores[..., None, :] + used, axis=-1)
