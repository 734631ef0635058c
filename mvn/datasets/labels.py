"""Human3.6M label files: the published pickles read safely, then held as columns.

The published `h36m_train.pkl` / `h36m_validation.pkl` are lists of ~2 million dicts, one per frame
(the released label format). Held like that, every DataLoader worker slowly copies them (touching a Python
object writes its reference count). `LabelColumns` keeps one NumPy array per field instead.
"""
import os
import pickle
from dataclasses import dataclass

import numpy as np

from mvn.errors import CAPFError

# Keys a record must have for training and evaluation (the published files have more).
REQUIRED_KEYS = ("image", "joints_2d_cpn", "joints_2d_cpn_crop", "joints_3d", "center", "scale",
                 "subject", "action", "subaction", "camera_id")
# What a pickle of labels may reconstruct: NumPy arrays and scalars, nothing that runs code.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("collections", "OrderedDict"),
}


class LabelError(CAPFError, ValueError):
    """A label file that is missing or is not a Human3.6M label list; says which and why."""


class _LabelUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError("refusing to load %s.%s" % (module, name))


def read_label_pickle(path):
    """The record list of a published label pickle, unpickling only NumPy arrays and scalars."""
    if not os.path.isfile(path):
        raise LabelError("label file %s does not exist; generate it with "
                         "H36M-Toolbox/generate_labels_h36m.py (see README, 'Preparing "
                         "Human3.6M') or set dataset.train_labels_path / val_labels_path" % path)
    try:
        with open(path, "rb") as f:
            return _LabelUnpickler(f).load()
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

    def __len__(self):
        return len(self.image)

    def subset(self, index):
        return LabelColumns(**{name: getattr(self, name)[index] for name in self.__dataclass_fields__})


def records_to_columns(records, path="labels"):
    """Check that `records` is a label list and turn it into LabelColumns."""
    if not isinstance(records, list) or not records:
        raise LabelError("%s holds %s, not a non-empty list of per-frame records"
                         % (path, type(records).__name__))
    first = records[0]
    if not isinstance(first, dict):
        raise LabelError("%s: records are %s, not dicts" % (path, type(first).__name__))
    missing = [k for k in REQUIRED_KEYS if k not in first]
    if missing:
        raise LabelError("%s is not a CA-PF Human3.6M label file: its records lack %s (they have "
                         "%s); regenerate it with H36M-Toolbox/generate_labels_h36m.py"
                         % (path, ", ".join(missing), ", ".join(sorted(first)[:12])))
    try:
        columns = LabelColumns(
            image=np.array([r["image"] for r in records], dtype=np.bytes_),
            keypoints_2d=np.stack([r["joints_2d_cpn"] for r in records]).astype(np.float32),
            keypoints_2d_crop=np.stack([r["joints_2d_cpn_crop"] for r in records]).astype(np.float32),
            keypoints_3d=np.stack([r["joints_3d"] for r in records]).astype(np.float32),
            center=np.stack([np.asarray(r["center"]) for r in records]).astype(np.float64),
            scale=np.stack([np.asarray(r["scale"]) for r in records]).astype(np.float64),
            subject=np.array([r["subject"] for r in records], dtype=np.int16),
            action=np.array([r["action"] for r in records], dtype=np.int16),
            subaction=np.array([r["subaction"] for r in records], dtype=np.int16),
            camera_id=np.array([r["camera_id"] for r in records], dtype=np.int16),
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


def load_label_columns(path, frame_stride=1):
    """Read a published label pickle into columns (every `frame_stride`-th record)."""
    columns = records_to_columns(read_label_pickle(path), path)
    if frame_stride > 1:
        columns = columns.subset(np.arange(0, len(columns), frame_stride))
    return columns
