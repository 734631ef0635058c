"""Human3.6M facts: joints, actions, cameras and sequence names (from `facts.json`).

The 17 joints every Human3.6M tensor of the project uses (SKELETON):
    0 pelvis (root), 1 r_hip, 2 r_knee, 3 r_ankle, 4 l_hip, 5 l_knee, 6 l_ankle, 7 spine,
    8 thorax, 9 neck/nose, 10 head, 11 l_shoulder, 12 l_elbow, 13 l_wrist, 14 r_shoulder,
    15 r_elbow, 16 r_wrist

The JSON file is a copy of the published figures (calibration, resolutions, the sequence-name
table); everything else in the project reads them from here.
"""
import json
import os
import re

import numpy as np

from mvn.skeleton import Skeleton

FACTS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "facts.json")

with open(FACTS_PATH) as _f:
    FACTS = json.load(_f)

# The 17 joints, taken from the release's 32 (its pose files' joint order).
JOINTS_17_FROM_32 = tuple(FACTS["joints_17_from_32"])
NUM_JOINTS = 17
ROOT_JOINT = 0  # the pelvis: 3D poses are made relative to it
JOINT_NAMES = tuple(FACTS["joint_names_17"])
# Parent of each joint (-1: the root): the bones drawn by mvn.vis.
PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
JOINTS_LEFT = tuple(FACTS["joints_left"])    # (4, 5, 6, 11, 12, 13)
JOINTS_RIGHT = tuple(FACTS["joints_right"])  # (1, 2, 3, 14, 15, 16)
SKELETON = Skeleton("human36m", ROOT_JOINT, JOINT_NAMES, PARENTS, JOINTS_LEFT, JOINTS_RIGHT)

# The label files toolbox writes and training reads (file names, in the toolbox root by default).
LABEL_FILES = {"train": "h36m_train.pkl", "val": "h36m_validation.pkl"}

# Action ids 2..16 (id 1, "_ALL", is not used).
ACTION_NAMES = {int(k): v for k, v in FACTS["action_names"].items() if int(k) >= 2}
ACTIONS = tuple(sorted(ACTION_NAMES))
CAMERA_IDS = tuple(FACTS["camera_ids"])      # camera index 0..3 -> "54138969", ...
TRAIN_SUBJECTS = tuple(FACTS["train_subjects"])
TEST_SUBJECTS = tuple(FACTS["test_subjects"])
ALL_SUBJECTS = tuple(sorted(TRAIN_SUBJECTS + TEST_SUBJECTS))
FPS = FACTS["fps"]


def resolution(camera_index):
    """(width, height) in pixels of camera `camera_index` (0..3)."""
    w, h = FACTS["resolution"][CAMERA_IDS[camera_index]]
    return int(w), int(h)


def camera(subject, camera_index):
    """Calibration of `subject` (int) seen by camera `camera_index` (0..3): dict R, T, f, c, k, p, id."""
    return FACTS["cameras"]["S%d" % subject][str(camera_index + 1)]


def sequence_name(subject, action, subaction):
    """File base name, e.g. (1, 2, 1) -> 'Directions 1'."""
    return FACTS["sequence_names"]["S%d" % subject]["%d-%d" % (action, subaction)]


def trial_name(action, subaction):
    """Evaluation trial name, e.g. (2, 1) -> 'Directions-1' (docs/fidelity.md, "Evaluation")."""
    return "%s-%d" % (ACTION_NAMES[action], subaction)


SEQUENCE_NAME_PATTERN = re.compile(r"^s_(\d+)_act_(\d+)_subact_(\d+)_ca_(\d+)$")


def image_sequence_name(subject, action, subaction, camera_index):
    """Folder of a sequence's extracted frames, e.g. (9, 2, 1, 0) -> 's_09_act_02_subact_01_ca_01'."""
    return "s_%02d_act_%02d_subact_%02d_ca_%02d" % (subject, action, subaction, camera_index + 1)


def frame_file_pattern(folder):
    """printf pattern of a sequence's frame files, e.g. 's_09_act_02_subact_01_ca_01_%06d.jpg'
    (1-based frame numbers, as ffmpeg writes them)."""
    return folder + "_%06d.jpg"


def image_name(subject, action, subaction, camera_index, frame):
    """Frame path relative to the images root (`frame` 1-based), as in the label records' `image`."""
    folder = image_sequence_name(subject, action, subaction, camera_index)
    return "%s/%s" % (folder, frame_file_pattern(folder) % frame)


def frame_numbers(image_names):
    """The inverse of `image_name` for the frame: (N,) names (bytes) -> (N,) int64 1-based
    frame numbers (the `_NNNNNN.jpg` suffix)."""
    stems = np.char.rpartition(np.asarray(image_names), b".")[:, 0]
    return np.char.rpartition(stems, b"_")[:, 2].astype(np.int64)


def parse_sequence_name(folder):
    """'s_09_act_02_subact_01_ca_01' -> (subject, action, subaction, camera_index 0..3), the
    inverse of `image_sequence_name`; None for a name of another form."""
    match = SEQUENCE_NAME_PATTERN.match(folder)
    if match is None:
        return None
    subject, action, subaction, camera = map(int, match.groups())
    return subject, action, subaction, camera - 1


def detection_names(subject, action, subaction):
    """Names to try, in order, for a sequence in the CPN detection file (VideoPose3D release).

    QUIRK: that file renames "TakingPhoto" -> "Photo" and "WalkingDog" -> "WalkDog" (docs/fidelity.md).
    """
    name = sequence_name(subject, action, subaction)
    renamed = name.replace("TakingPhoto", "Photo").replace("WalkingDog", "WalkDog")
    return (name,) if renamed == name else (name, renamed)
