"""MPI-INF-3DHP facts: joints, sequences, cameras, file names and the crop box of the release.

The figures (from `facts.json`, a copy of the published ones) are the single home
of everything the toolbox, the datasets and the evaluation need to know about the benchmark.

Joints: the 17-joint MATLAB `relevant` set, in its order (0-based):
    0 head_top, 1 neck, 2 r_shoulder, 3 r_elbow, 4 r_wrist, 5 l_shoulder, 6 l_elbow, 7 l_wrist,
    8 r_hip, 9 r_knee, 10 r_ankle, 11 l_hip, 12 l_knee, 13 l_ankle, 14 pelvis (root), 15 spine,
    16 head
(a different order from the Human3.6M skeleton of mvn/skeleton.py).

Raw release layout (the download scripts' result), relative to the dataset folder `root`:
    mpi_inf_3dhp/S<s>/Seq<q>/annot.mat                  MATLAB v5: cameras, frames, annot2, ...
    mpi_inf_3dhp/S<s>/Seq<q>/imageSequence/video_<c>.avi
    mpi_inf_3dhp_test_set/TS<k>/annot_data.mat          MATLAB v7.3 (HDF5)
    mpi_inf_3dhp_test_set/TS<k>/imageSequence/img_<NNNNNN>.jpg   (1-based)
Prepared (MPI-INF-3DHP-Toolbox), relative to `root`:
    data_train_3dhp.npz, data_test_3dhp.npz             label files (the released format)
    mpi_inf_3dhp/images/s_SS_seq_QQ_ca_CC/s_SS_seq_QQ_ca_CC_NNNNNN.jpg   256x192 crops
    mpi_inf_3dhp_test_set/images/TS<k>/TS<k>_NNNNNN.jpg                  256x192 crops
"""
import json
import os

import numpy as np

from mvn import geometry
from mvn.skeleton import Skeleton

FACTS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "facts.json")

with open(FACTS_PATH) as _f:
    FACTS = json.load(_f)

# --- joints ------------------------------------------------------------------------------------
NUM_JOINTS = 17
NUM_JOINTS_RAW = 28                                  # joints of a training annot.mat row
JOINT_NAMES_28 = tuple(FACTS["joint_names_28"])
JOINTS_17_FROM_28 = tuple(FACTS["joints_17_from_28"])  # 0-based into the 28
JOINT_NAMES = tuple(FACTS["joint_names_17"])
ROOT_JOINT = FACTS["root_joint"]                     # 14, the pelvis
JOINTS_LEFT = tuple(FACTS["joints_left"])            # (5, 6, 7, 11, 12, 13)
JOINTS_RIGHT = tuple(FACTS["joints_right"])          # (2, 3, 4, 8, 9, 10)
# Parent of each joint (-1: the root), for drawing: the MATLAB `relevant` tree, made 0-based.
PARENTS = tuple(-1 if i == ROOT_JOINT else p - 1
                for i, p in enumerate(FACTS["parents_17_one_based"]))
SKELETON = Skeleton("mpi_inf_3dhp", ROOT_JOINT, JOINT_NAMES, PARENTS, JOINTS_LEFT, JOINTS_RIGHT)

# --- training set ------------------------------------------------------------------------------
SUBJECTS = tuple(range(1, 9))
SEQUENCES = (1, 2)
# The cameras the pipeline uses (the "vnect" set), in the order the label script lists them.
TRAIN_CAMERAS = tuple(FACTS["train_cameras"])        # (0, 1, 2, 4, 5, 6, 7, 8)
TRAIN_RESOLUTION = (2048, 2048)                      # (width, height) of every training camera
# "S1 Seq1" -> (frames used, fps as the released table states it; QUIRK Q14: S1 Seq2, S3 and
# S5 say 50). Only the first `frames` annotation rows and video frames are used.
SEQUENCE_INFO = {k: (int(v[0]), int(v[1])) for k, v in FACTS["train_sequences_frames_fps"].items()}

# The released hard-coded intrinsics table: entries 0..13 are the studio cameras, 14 is the
# outdoor GoPro of TS5/TS6. Each: fx, fy, cx, cy (px), width, height, OpenCV k1 k2 p1 p2 k3.
INTRINSICS_NAMES = tuple(e["id"] for e in FACTS["intrinsics_table"])
INTRINSICS = np.array([e["focal_length"] + e["center"] for e in FACTS["intrinsics_table"]],
                      dtype=np.float64)              # (15, 4) fx, fy, cx, cy
RESOLUTIONS = tuple((e["res_w"], e["res_h"]) for e in FACTS["intrinsics_table"])
DISTORTION = np.array([e["radial_distortion"][:2] + e["tangential_distortion"]
                       + e["radial_distortion"][2:] for e in FACTS["intrinsics_table"]],
                      dtype=np.float64)              # (15, 5) k1, k2, p1, p2, k3
OUTDOOR_INTRINSICS = 14


def sequence_name(subject, sequence):
    """'S1 Seq2': the key of a training sequence in the label file."""
    return "S%d Seq%d" % (subject, sequence)


# --- test set ----------------------------------------------------------------------------------
TEST_SEQUENCES = tuple(FACTS["test_sequences"])      # ("TS1", ..., "TS6")
TEST_INFO = FACTS["test_sequences"]                  # name -> scene, res_wh, valid_frames, ...
SCENES = {"GS": ("TS1", "TS2"), "noGS": ("TS3", "TS4"), "Outdoor": ("TS5", "TS6")}


def sequence_resolution(name):
    """(width, height) of test sequence `name` ('TS1'..'TS6')."""
    w, h = TEST_INFO[name]["res_wh"]
    return int(w), int(h)


def sequence_intrinsics_index(name):
    """The table entry the released test-label script uses: 8 (cam_8) for TS1-4, 14 for TS5-6."""
    return int(TEST_INFO[name]["intrinsics_index"])


# --- file names --------------------------------------------------------------------------------
TRAIN_FOLDER = "mpi_inf_3dhp"
TEST_FOLDER = "mpi_inf_3dhp_test_set"
LABEL_FILES = {"train": "data_train_3dhp.npz", "test": "data_test_3dhp.npz"}


def annot_path(subject, sequence):
    return os.path.join(TRAIN_FOLDER, "S%d" % subject, "Seq%d" % sequence, "annot.mat")


def video_path(subject, sequence, camera):
    return os.path.join(TRAIN_FOLDER, "S%d" % subject, "Seq%d" % sequence, "imageSequence",
                        "video_%d.avi" % camera)


def train_image_folder(subject, sequence, camera):
    """'s_01_seq_02_ca_04': the image folder (and file-name stem) of one training video."""
    return "s_%02d_seq_%02d_ca_%02d" % (subject, sequence, camera)


def train_image_path(subject, sequence, camera, frame):
    """Frame `frame` (0-based annotation row) of a training video; files are 1-based."""
    folder = train_image_folder(subject, sequence, camera)
    return os.path.join(TRAIN_FOLDER, "images", folder, "%s_%06d.jpg" % (folder, frame + 1))


def test_annot_path(name):
    return os.path.join(TEST_FOLDER, name, "annot_data.mat")


def test_frame_path(name, frame):
    """The full-resolution test frame of row `frame` (0-based); files are 1-based."""
    return os.path.join(TEST_FOLDER, name, "imageSequence", "img_%06d.jpg" % (frame + 1))


def test_image_path(name, frame):
    """The 256x192 crop of test row `frame` (0-based)."""
    return os.path.join(TEST_FOLDER, "images", name, "%s_%06d.jpg" % (name, frame + 1))


# --- 2D normalisation --------------------------------------------------------------------------

def normalize_screen(keypoints_px, width, height):
    """(..., 2) pixels -> x in [-1, 1], y in [-h/w, h/w] (the released camera.py formula)."""
    return keypoints_px / width * 2 - np.array([1, height / width])


# --- published checkpoints ---------------------------------------------------------------------
# Raw state dicts of the nn.DataParallel model ('module.' keys), in checkpoint/, named
# HRNet_<width>_<r>_no_refine_<epoch>_<int(P1 * 100)>.pth.
PUBLISHED_CHECKPOINTS = {
    backbone: "HRNet_%s_%d_no_refine_%d_%d.pth" % (backbone[6:], p["embed_dim_ratio"], p["epoch"],
                                                  round(p["mpjpe_mm"] * 100))
    for backbone, p in FACTS["published"].items()}


# --- crop boxes (the released label and crop scripts) ----------------------
# QUIRK Q11: the box comes from the univ_annot3 pelvis (which need not reproject onto the image),
# through the undistorted pinhole model (also for the distorted TS5/TS6 frames, Q10); its centre
# is 100 mm below the pelvis and only its width sets the zoom (mvn.geometry.get_affine_transform,
# the same arithmetic as the released MPI copy of that function).
BOX_CORNERS_MM = np.array([[-1000.0, -900.0, 0.0],     # top left, relative to the pelvis
                           [1000.0, 1100.0, 0.0]])     # bottom right


def crop_center_scale(root_mm, intrinsics_index):
    """(F, 3) pelvis (camera mm) -> centre (F, 2) px, scale (F, 2) = box (width, height) / 200.

    Computed as the released scripts do, in the annotation's own dtype (a float32 annotation gives
    a float32 box, operation by operation): corner = root + offset, u = (X / Z) * fx + cx, centre
    = 0.5 * (tl + br), scale = (br - tl) / 200. `intrinsics_index`: the INTRINSICS entry.
    """
    root_mm = np.asarray(root_mm)
    if root_mm.dtype not in (np.float32, np.float64):
        root_mm = root_mm.astype(np.float64)
    dtype = root_mm.dtype
    f_px = INTRINSICS[intrinsics_index, :2].astype(dtype)
    c_px = INTRINSICS[intrinsics_index, 2:].astype(dtype)
    corners = root_mm[:, None, :] + BOX_CORNERS_MM.astype(dtype)          # (F, 2, 3)
    corners_px = corners[..., :2] / corners[..., 2:3] * f_px + c_px       # (F, 2, 2)
    top_left, bottom_right = corners_px[:, 0], corners_px[:, 1]
    center = dtype.type(0.5) * (top_left + bottom_right)                  # (F, 2)
    scale = (bottom_right - top_left) / dtype.type(200.0)                 # (F, 2)
    return center, scale


def crop_affines(center, scale):
    """(F, 2) centres and scales -> (F, 2, 3) float64 matrices, full frame -> 256x192 crop.

    One cv2.getAffineTransform per frame (the released call; its solver's rounding is kept)."""
    affines = np.zeros((len(center), 2, 3))
    for i in range(len(center)):
        affines[i] = geometry.get_affine_transform(center[i], scale[i])
    return affines


def crop_keypoints(points_px, affines):
    """(F, J, 2) full-frame px -> crop px, in the points' dtype, as the released label scripts map
    them: one np.dot(M, [x, y, 1.0]) per joint. Kept per joint: a batched product goes through
    another BLAS kernel and rounds differently in the last bit."""
    points_px = np.asarray(points_px)
    out = np.empty_like(points_px)
    homogeneous = np.ones(points_px.shape[:-1] + (3,))                   # (F, J, 3) float64
    homogeneous[..., :2] = points_px
    for i in range(len(points_px)):
        matrix = affines[i]
        for j in range(points_px.shape[1]):
            out[i, j] = np.dot(matrix, homogeneous[i, j])
    return out
