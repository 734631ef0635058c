"""Human3.6M label files: the published pickles read safely, then held as columns.

The published `h36m_train.pkl` / `h36m_validation.pkl` are lists of ~2 million dicts, one per frame
(the released label format). Held like that, every DataLoader worker slowly copies them (touching a Python
object writes its reference count). `LabelColumns` keeps one NumPy array per field instead.
"""
import logging
import os
import pickle
from dataclasses import dataclass

import numpy as np

from mvn import geometry
from mvn.datasets.label_files import LabelError, RestrictedUnpickler, check_crop_keypoints
from mvn.human36m import facts as h36m

logger = logging.getLogger(__name__)

# Keys a record must have for training and evaluation (the published files have more).
REQUIRED_KEYS = ("image", "joints_2d_cpn", "joints_2d_cpn_crop", "joints_3d", "center", "scale",
                 "subject", "action", "subaction", "camera_id")
def read_label_pickle(path):
    """The record list of a published label pickle, unpickling only NumPy arrays and scalars."""
    if not os.path.isfile(path):
        raise LabelError("label file %s does not exist; generate it with "
                         "H36M-Toolbox/generate_labels_h36m.py (see README, 'Preparing "
                         "Human3.6M') or set dataset.train_labels_path / val_labels_path" % path)
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f).load()
    except pickle.UnpicklingError as error:
        raise LabelError("%s is not a Human3.6M label file (%s); label files hold only lists of "
                         "dicts of NumPy arrays" % (path, error)) from None
    except (EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as error:
        raise LabelError("%s could not be read as a label pickle (%s: %s); it may be truncated"
                         % (path, type(error).__name__, error)) from None


@dataclass
class LabelColumns:
    """One array per field, rows in label-file order."""
    image: np.ndarray               # (N,) bytes, path relative to the images root
    keypoints_2d: np.ndarray        # (N, 17, 2) float32, CPN detections, screen-normalised
    keypoints_2d_crop: np.ndarray   # (N, 17, 2) float32, CPN detections in crop pixels
    keypoints_3d: np.ndarray        # (N, 17, 3) float32, camera frame, metres
    center: np.ndarray              # (N, 2) float64, box centre in full-frame pixels
    scale: np.ndarray               # (N, 2) float64, box size / 200 (float64 as in the label file:
                                    # the crop matrix depends on it, docs/fidelity.md "Crop")
    subject: np.ndarray             # (N,) int16
    action: np.ndarray              # (N,) int16, 2..16
    subaction: np.ndarray           # (N,) int16, 1..2
    camera_id: np.ndarray           # (N,) int16, 0..3
    record: np.ndarray              # (N,) int64, the record's index in the label file
    # (N, 17, 2) float32, the ground-truth 2D joints in crop pixels (`joints_2d_gt_crop`): what
    # the 2D detector stage trains on and is scored against; None where the file lacks them.
    keypoints_2d_truth_crop: np.ndarray = None

    def __len__(self):
        return len(self.image)

    def subset(self, index):
        return LabelColumns(**{name: None if getattr(self, name) is None
                               else getattr(self, name)[index]
                               for name in self.__dataclass_fields__})


def keypoint_keys(keypoints_2d="cpn"):
    """The record keys of the 2D joints called `keypoints_2d` (config dataset.keypoints_2d):
    'cpn' -> joints_2d_cpn (screen-normalised) and joints_2d_cpn_crop (crop pixels); another
    name, those H36M-Toolbox/detect_2d.py --name NAME added."""
    return "joints_2d_%s" % keypoints_2d, "joints_2d_%s_crop" % keypoints_2d


def records_to_columns(records, path="labels", keypoints_2d="cpn"):
    """Check that `records` is a label list and turn it into LabelColumns, its 2D joints those
    called `keypoints_2d` (`keypoint_keys`)."""
    if not isinstance(records, list) or not records:
        raise LabelError("%s holds %s, not a non-empty list of per-frame records"
                         % (path, type(records).__name__))
    first = records[0]
    if not isinstance(first, dict):
        raise LabelError("%s: records are %s, not dicts" % (path, type(first).__name__))
    screen_key, crop_key = keypoint_keys(keypoints_2d)
    if keypoints_2d != "cpn" and not (screen_key in first and crop_key in first):
        raise LabelError("%s holds no 2D joints '%s' (%s, %s): make them with "
                         "H36M-Toolbox/detect_2d.py --name %s, or set dataset.keypoints_2d to "
                         "cpn" % (path, keypoints_2d, screen_key, crop_key, keypoints_2d))
    missing = [k for k in REQUIRED_KEYS if k not in first]
    if missing:
        raise LabelError("%s is not a CA-PF Human3.6M label file: its records lack %s (they have "
                         "%s); regenerate it with H36M-Toolbox/generate_labels_h36m.py"
                         % (path, ", ".join(missing), ", ".join(sorted(first)[:12])))
    try:
        columns = LabelColumns(
            image=np.array([r["image"] for r in records], dtype=np.bytes_),
            keypoints_2d=np.stack([r[screen_key] for r in records]).astype(np.float32),
            keypoints_2d_crop=np.stack([r[crop_key] for r in records]).astype(np.float32),
            keypoints_3d=np.stack([r["joints_3d"] for r in records]).astype(np.float32),
            center=np.stack([np.asarray(r["center"]) for r in records]).astype(np.float64),
            scale=np.stack([np.asarray(r["scale"]) for r in records]).astype(np.float64),
            subject=np.array([r["subject"] for r in records], dtype=np.int16),
            action=np.array([r["action"] for r in records], dtype=np.int16),
            subaction=np.array([r["subaction"] for r in records], dtype=np.int16),
            camera_id=np.array([r["camera_id"] for r in records], dtype=np.int16),
            record=np.arange(len(records), dtype=np.int64),
            keypoints_2d_truth_crop=np.stack([r["joints_2d_gt_crop"] for r in records]).astype(
                np.float32) if "joints_2d_gt_crop" in first else None,
        )
    except (KeyError, ValueError, TypeError) as error:
        raise LabelError("%s: a record is malformed (%s: %s)"
                         % (path, type(error).__name__, error)) from None
    shapes = {"keypoints_2d": (17, 2), "keypoints_2d_crop": (17, 2), "keypoints_3d": (17, 3),
              "center": (2,), "scale": (2,)}
    for name, shape in shapes.items():
        got = getattr(columns, name).shape[1:]
        if got != shape:
            raise LabelError("%s: field for %s has shape %s per record, expected %s"
                             % (path, name, got, shape))
    return columns


BAD_RECORD_POLICIES = ("error", "drop")


def _escapes_root(image):
    """(N,) bytes paths -> (N,) bool: absolute, or with a '..' component (outside the root)."""
    slashed = np.char.replace(image, b"\\", b"/")
    absolute = np.char.startswith(slashed, b"/") | (np.char.find(slashed, b":") == 1)
    parent = np.char.find(np.char.add(np.char.add(b"/", slashed), b"/"), b"/../") >= 0
    return absolute | parent


def find_bad_records(columns, allow_images_outside_root=False):
    """Check every record at once; returns (N,) int8 codes: 0 for a good record, else the
    1-based index into the reasons of BAD_RECORD_CHECKS of the first check it fails."""
    def finite(array):
        return np.isfinite(array).reshape(len(array), -1).all(1)
    checks = [
        ~finite(columns.keypoints_2d),
        ~finite(columns.keypoints_2d_crop),
        ~finite(columns.keypoints_3d),
        ~(finite(columns.center) & finite(columns.scale)) | (columns.scale[:, 0] * 200 <= 1),
        ~np.isin(columns.subject, h36m.ALL_SUBJECTS) | ~np.isin(columns.action, h36m.ACTIONS)
        | ~np.isin(columns.subaction, (1, 2)) | ~np.isin(columns.camera_id, (0, 1, 2, 3)),
        np.zeros(len(columns), bool) if allow_images_outside_root else _escapes_root(columns.image),
    ]
    codes = np.zeros(len(columns), np.int8)
    for code, failed in enumerate(checks, 1):
        codes[(codes == 0) & failed] = code
    return codes


BAD_RECORD_CHECKS = (
    "joints_2d_cpn is not finite",
    "joints_2d_cpn_crop is not finite",
    "joints_3d is not finite",
    "the box (center, scale) is not finite or under a pixel wide",
    "subject, action, subaction or camera_id out of range",
    "its image path leaves dataset.root (absolute or '..'; dataset.allow_images_outside_root=true "
    "allows it)",
)


def describe_bad_records(columns, codes, shown=3):
    """'record 12 (s_09_.../..._000013.jpg): joints_3d is not finite; ...' for the first few."""
    bad = np.flatnonzero(codes)
    parts = ["record %d (%s): %s" % (columns.record[i], columns.image[i].decode(errors="replace"),
                                     BAD_RECORD_CHECKS[codes[i] - 1]) for i in bad[:shown]]
    return "; ".join(parts) + ("; ..." if len(bad) > shown else "")


def validate_label_columns(columns, path, bad_records="error", allow_images_outside_root=False):
    """The columns without bad records (finite values, ids in range, image paths inside the
    images root). `bad_records` 'error' (default): one LabelError naming the first few and the
    count; 'drop': leave them out, with a warning saying which."""
    if bad_records not in BAD_RECORD_POLICIES:
        raise LabelError("dataset.bad_records must be one of %s, got %r"
                         % (", ".join(BAD_RECORD_POLICIES), bad_records))
    codes = find_bad_records(columns, allow_images_outside_root)
    count = int(np.count_nonzero(codes))
    if count == 0:
        return columns
    if bad_records == "error":
        raise LabelError("%s: %d of %d records are unusable: %s. Fix or regenerate the label "
                         "file, or set dataset.bad_records=drop to leave them out"
                         % (path, count, len(columns), describe_bad_records(columns, codes)))
    logger.warning("%s: dropped %d of %d unusable records (dataset.bad_records=drop): %s",
                   path, count, len(columns), describe_bad_records(columns, codes, shown=10))
    return columns.subset(np.flatnonzero(codes == 0))


def check_crop_size(columns, path, rows=16):
    """The crop keypoints of a label file are those of this code's crop (mvn.geometry.CROP_SHAPE):
    recomputed for the first `rows` finite records from their full-frame joints, box centre and
    scale, they must agree. A file made for another crop size is refused, not used silently."""
    finite = np.flatnonzero(np.isfinite(columns.keypoints_2d).all((1, 2))
                            & np.isfinite(columns.keypoints_2d_crop).all((1, 2))
                            & np.isfinite(columns.center).all(1) & np.isfinite(columns.scale).all(1)
                            & (columns.camera_id >= 0) & (columns.camera_id < len(h36m.CAMERA_IDS)))
    recomputed, stored = [], []
    for i in finite[:rows]:
        width, height = h36m.resolution(int(columns.camera_id[i]))
        joints_px = geometry.image_coordinates(columns.keypoints_2d[i].astype(np.float64), width,
                                               height)
        affine = geometry.get_affine_transform(columns.center[i], columns.scale[i])
        recomputed.append(geometry.affine_transform_points(joints_px, affine))  # (17, 2)
        stored.append(columns.keypoints_2d_crop[i])
    check_crop_keypoints(recomputed, stored, path, "H36M-Toolbox/generate_labels_h36m.py")


def load_label_columns(path, frame_stride=1, bad_records="error",
                       allow_images_outside_root=False, keypoints_2d="cpn"):
    """Read a published label pickle into columns, validated (`validate_label_columns`), then
    every `frame_stride`-th record. Each row keeps its record index in the file (`record`)."""
    columns = records_to_columns(read_label_pickle(path), path, keypoints_2d)
    columns = validate_label_columns(columns, path, bad_records, allow_images_outside_root)
    check_crop_size(columns, path)
    if frame_stride > 1:
        columns = columns.subset(np.arange(0, len(columns), frame_stride))
    return columns
