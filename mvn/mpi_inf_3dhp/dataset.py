"""MPI-INF-3DHP samples from the released label files + the 256x192 crops (`dataset.name:
mpi_inf_3dhp`).

Label files (MPI-INF-3DHP-Toolbox/generate_labels_3dhp.py, or the released scripts), in
`dataset.root`:
  data_train_3dhp.npz  key `data`: {"S<s> Seq<q>": [{camera: {data_2d (F,17,2) px,
                       data_2d_crop (F,17,2) crop px, data_3d (F,17,3) mm}}, fps]}
  data_test_3dhp.npz   key `data`: {"TS<k>": {data_2d, data_2d_crop, data_3d, valid (n,)
                       [, activity (n,): written by this project's toolbox]}}
  (either file may hold detections beside data_2d: data_2d_NAME, data_2d_NAME_crop, written by
  MPI-INF-3DHP-Toolbox/detect_2d_3dhp.py; `dataset.keypoints_2d: NAME` takes them as the input)
As the released loader does: 2D is screen-normalised with 2048x2048 (training, TS1-4) or
1920x1080 (TS5-6, QUIRK Q10); every joint but the pelvis is made relative to it, and the pelvis
row, absolute until the training step zeroes it there (Q5), is zeroed here (the same target);
training uses every frame of every camera, the test split only the valid frames, in order.

`MpiInf3dhpDataset` reads the crop JPEGs (`dataset.format: pkl`); `MpiInf3dhpStoreDataset` the
same samples, bit for bit, from a frame store (`dataset.format: store`, built by
MPI-INF-3DHP-Toolbox/prepare_store_3dhp.py: those JPEG files' bytes and these columns).
"""
import os
import pickle
import re
import zipfile
from dataclasses import dataclass

import numpy as np

from mvn.datasets.label_files import LabelError, RestrictedUnpickler, check_crop_keypoints
from mvn.datasets.labelled_crops import LabelledCropDataset
from mvn.datasets.store import StoreDataset
from mvn.mpi_inf_3dhp import facts as mpi
from mvn.mpi_inf_3dhp import matfile
from mvn.geometry import CROP_SHAPE, apply_affines, crop_to_frame_affines, invert_affines
from mvn.images import ImageError, MissingImageError, read_frame_bgr

STORE_BUILD_COMMAND = "python MPI-INF-3DHP-Toolbox/prepare_store_3dhp.py"
TRAIN_KEY = re.compile(r"^S(\d+) Seq(\d+)$")  # "S1 Seq2", a training sequence's key
PREPARE_HINT = ("prepare it with MPI-INF-3DHP-Toolbox (README, 'MPI-INF-3DHP') or set "
                "dataset.root / dataset.train_labels_path / dataset.val_labels_path")


def read_label_npz(path):
    """The dict inside a released-format label file, unpickling only NumPy arrays, lists and
    dicts (np.load(allow_pickle=True) would run whatever the file holds)."""
    if not os.path.isfile(path):
        raise LabelError("MPI-INF-3DHP label file %s does not exist; %s" % (path, PREPARE_HINT))
    try:
        with zipfile.ZipFile(path) as archive, archive.open("data.npy") as f:
            version = np.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0)):
                raise ValueError("NumPy file format %d.%d" % version)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(f)
            if dtype != np.dtype(object) or shape != ():
                raise ValueError("'data' is a %s array of shape %s, not one pickled dict"
                                 % (dtype, shape))
            data = RestrictedUnpickler(f).load()  # the pickled 0-d object array
            if isinstance(data, np.ndarray) and data.shape == ():
                data = data.item()
    except KeyError:
        raise LabelError("%s has no array 'data': not an MPI-INF-3DHP label file; %s"
                         % (path, PREPARE_HINT)) from None
    except (zipfile.BadZipFile, pickle.UnpicklingError, ValueError, EOFError, OSError,
            AttributeError, ImportError, TypeError) as error:
        raise LabelError("%s could not be read as an MPI-INF-3DHP label file (%s: %s); it may be "
                         "truncated: regenerate it" % (path, type(error).__name__, error)) from None
    if not isinstance(data, dict) or not data:
        raise LabelError("%s: 'data' holds %s, not a dict of sequences"
                         % (path, type(data).__name__))
    return data


@dataclass
class MpiLabels:
    """One array per field, samples in the released loader's order."""
    # the 2D input joints (dataset.keypoints_2d: 'cpn', the GT annot2 data_2d / data_2d_crop the
    # released models take; or NAME, the detections data_2d_NAME / data_2d_NAME_crop)
    keypoints_2d: np.ndarray        # (N, 17, 2) float32, screen-normalised
    keypoints_2d_crop: np.ndarray   # (N, 17, 2) float32, crop pixels
    keypoints_3d: np.ndarray        # (N, 17, 3) float32, mm, relative to the pelvis (row 14 = 0)
    sequence: np.ndarray            # (N,) int16: train 10*subject + seq (e.g. 12), test 1..6
    camera: np.ndarray              # (N,) int16: train camera id, test -1
    frame: np.ndarray               # (N,) int32, 0-based row of the sequence
    activity: np.ndarray            # (N,) int16: test 1..7, train 0
    record: np.ndarray              # (N,) int64, the sample's index in this flattened order
    # The box the crop image was cut with (prepare_images_3dhp.py: the data_3d pelvis, the
    # camera's own intrinsics entry) and the ground-truth 2D joints (data_2d, annot2) in that
    # crop's pixels: what the 2D detector stage trains on and is scored against. Not always
    # data_2d_crop: the released training labels of cameras 4..8 map annot2 with another
    # camera's intrinsics (QUIRK Q2). None in a frame store built before these columns.
    center: np.ndarray = None                   # (N, 2) float64, box centre, full-frame px
    scale: np.ndarray = None                    # (N, 2) float64, box size / 200
    keypoints_2d_truth_crop: np.ndarray = None  # (N, 17, 2) float32, crop pixels

    def __len__(self):
        return len(self.record)

    def subset(self, index):
        return MpiLabels(**{name: None if getattr(self, name) is None
                            else getattr(self, name)[index] for name in self.__dataclass_fields__})

    def image_path(self, index):
        """The crop of sample `index`, relative to dataset.root."""
        frame = int(self.frame[index])
        if self.camera[index] < 0:
            return mpi.test_image_path("TS%d" % self.sequence[index], frame)
        subject, sequence = divmod(int(self.sequence[index]), 10)
        return mpi.train_image_path(subject, sequence, int(self.camera[index]), frame)

    def describe(self, index):
        """'S1 Seq2 camera 4 frame 17' / 'TS3 frame 5' (1-based frame numbers, as the files)."""
        frame = int(self.frame[index]) + 1
        if self.camera[index] < 0:
            return "TS%d frame %d" % (self.sequence[index], frame)
        subject, sequence = divmod(int(self.sequence[index]), 10)
        return "S%d Seq%d camera %d frame %d" % (subject, sequence, self.camera[index], frame)


def _entry_arrays(entry, where, path):
    """data_2d, data_2d_crop, data_3d of a label entry as float64, shapes checked."""
    arrays = []
    for key, width in (("data_2d", 2), ("data_2d_crop", 2), ("data_3d", 3)):
        if not isinstance(entry, dict) or key not in entry:
            raise LabelError("%s: %s has no '%s'; regenerate the label file" % (path, where, key))
        array = np.asarray(entry[key], dtype=np.float64)
        if array.ndim != 3 or array.shape[1:] != (mpi.NUM_JOINTS, width):
            raise LabelError("%s: %s '%s' has shape %s, expected (frames, 17, %d)"
                             % (path, where, key, array.shape, width))
        arrays.append(array)
    if not arrays[0].shape[0] == arrays[1].shape[0] == arrays[2].shape[0]:
        raise LabelError("%s: %s: data_2d, data_2d_crop and data_3d have different frame counts"
                         % (path, where))
    return arrays


def keypoint_keys(keypoints_2d="cpn"):
    """The label entry keys of the 2D input joints called `keypoints_2d` (config
    dataset.keypoints_2d): 'cpn' (Human3.6M's name for the default) -> data_2d / data_2d_crop,
    the ground truth annot2 the released models take; another name -> data_2d_NAME (full-frame
    pixels) and data_2d_NAME_crop (crop pixels), which MPI-INF-3DHP-Toolbox/detect_2d_3dhp.py
    --name NAME adds."""
    if keypoints_2d == "cpn":
        return "data_2d", "data_2d_crop"
    return "data_2d_%s" % keypoints_2d, "data_2d_%s_crop" % keypoints_2d


def _input_arrays(entry, keypoints_2d, frames, where, path):
    """The selected 2D input joints of a label entry: (frames, 17, 2) full-frame and crop
    pixels, float64."""
    arrays = []
    for key in keypoint_keys(keypoints_2d):
        if key not in entry:
            raise LabelError("%s: %s holds no 2D joints '%s' (%s): make them with "
                             "MPI-INF-3DHP-Toolbox/detect_2d_3dhp.py --name %s, or set "
                             "dataset.keypoints_2d to cpn"
                             % (path, where, keypoints_2d, key, keypoints_2d))
        array = np.asarray(entry[key], dtype=np.float64)
        if array.shape != (frames, mpi.NUM_JOINTS, 2):
            raise LabelError("%s: %s '%s' has shape %s, expected (%d, 17, 2); make it again with "
                             "MPI-INF-3DHP-Toolbox/detect_2d_3dhp.py --name %s"
                             % (path, where, key, array.shape, frames, keypoints_2d))
        arrays.append(array)
    return arrays


def image_crop_truth(data_2d, data_3d, intrinsics_index):
    """The box the crop image of each frame was cut with (prepare_images_3dhp.py: the pelvis of
    the label's data_3d in its own dtype, intrinsics entry `intrinsics_index`) and the
    ground-truth 2D joints `data_2d` (F, 17, 2) full-frame px in that crop: (centre (F, 2),
    scale (F, 2), joints (F, 17, 2) crop px). Vectorised (mvn.geometry's closed form): it agrees
    with the per-frame cv2 matrices the crops were warped with to their float32 rounding
    (~1e-4 px)."""
    center, scale = mpi.crop_center_scale(np.asarray(data_3d)[:, mpi.ROOT_JOINT], intrinsics_index)
    to_crop = invert_affines(crop_to_frame_affines(center, scale))   # (F, 2, 3)
    return (center.astype(np.float64), scale.astype(np.float64),
            apply_affines(data_2d, to_crop))


def _relative_to_pelvis(data_3d):
    """(F, 17, 3) mm: the released loader subtracts the pelvis from the other joints (in
    float64); its own row is zeroed by the training step (QUIRK Q5), here at once."""
    root = mpi.ROOT_JOINT
    relative = data_3d - data_3d[:, root:root + 1]
    relative[:, root] = 0
    return relative


def _check_finite(arrays, where, path, keys=("data_2d", "data_2d_crop", "data_3d")):
    for array, key in zip(arrays, keys):
        bad = ~np.isfinite(array).reshape(len(array), -1).all(1)
        if bad.any():
            rows = np.flatnonzero(bad)
            raise LabelError("%s: %s '%s' is not finite in %d frame(s), first rows %s; regenerate "
                             "the label file from intact annotations"
                             % (path, where, key, len(rows), ", ".join(map(str, rows[:5] + 1))))


LABELS_COMMAND = "MPI-INF-3DHP-Toolbox/generate_labels_3dhp.py"


def check_crop_size(data_2d, data_2d_crop, data_3d, intrinsics_indices, where, path, rows=16):
    """The crop keypoints of one label entry are those of this code's crop (CROP_SHAPE): its first
    `rows` frames are cropped again from the full-frame joints with the box the label script
    derives from the 3D pelvis; the closest of `intrinsics_indices` (the training cameras' two
    readings, QUIRK Q2) must agree. A file made for another crop size is refused."""
    data_2d, data_2d_crop, data_3d = data_2d[:rows], data_2d_crop[:rows], data_3d[:rows]
    candidates = []
    for index in intrinsics_indices:
        center, scale = mpi.crop_center_scale(data_3d[:, mpi.ROOT_JOINT], index)
        recomputed = mpi.crop_keypoints(data_2d, mpi.crop_affines(center, scale))  # (rows, 17, 2)
        candidates.append((np.abs(recomputed - data_2d_crop).max(initial=0.0), recomputed))
    best = min(candidates, key=lambda candidate: candidate[0])[1]
    check_crop_keypoints(best, data_2d_crop, "%s (%s)" % (path, where), LABELS_COMMAND)


def _columns(parts, activity_parts):
    keypoints_2d, crop, keypoints_3d, sequence, camera, frame, center, scale, truth = (
        np.concatenate(column) for column in zip(*parts))
    return MpiLabels(keypoints_2d=keypoints_2d.astype(np.float32),
                     keypoints_2d_crop=crop.astype(np.float32),
                     keypoints_3d=keypoints_3d.astype(np.float32),
                     sequence=sequence.astype(np.int16), camera=camera.astype(np.int16),
                     frame=frame.astype(np.int32),
                     activity=np.concatenate(activity_parts).astype(np.int16),
                     record=np.arange(len(frame), dtype=np.int64),
                     center=center, scale=scale,
                     keypoints_2d_truth_crop=truth.astype(np.float32))


def _inputs(entry, keypoints_2d, data_2d, data_2d_crop, rows, where, path):
    """The selected 2D inputs (frame px, crop px) of `rows` of an entry, finite."""
    if keypoints_2d == "cpn":
        return data_2d[rows], data_2d_crop[rows]
    arrays = [a[rows] for a in _input_arrays(entry, keypoints_2d, len(data_2d), where, path)]
    _check_finite(arrays, where, path, keypoint_keys(keypoints_2d))
    return arrays


def load_train_labels(path, keypoints_2d="cpn"):
    """Every frame of every camera of every sequence, in the file's order (MpiLabels), the 2D
    inputs those called `keypoints_2d` (`keypoint_keys`)."""
    data = read_label_npz(path)
    parts = []
    for name, value in data.items():
        match = TRAIN_KEY.match(str(name))
        try:
            subject, sequence = int(match.group(1)), int(match.group(2))
            cameras, _fps = value
        except (AttributeError, ValueError, TypeError):
            raise LabelError("%s: entry %r is not a training sequence ('S<s> Seq<q>': [cameras, "
                             "fps]); is this the test label file?" % (path, name)) from None
        for camera_key, entry in cameras.items():
            where = "%s camera %s" % (name, camera_key)
            data_2d, data_2d_crop, data_3d = _entry_arrays(entry, where, path)
            _check_finite((data_2d, data_2d_crop, data_3d), where, path)
            if not parts:  # the first entry stands for the file
                camera = int(camera_key)
                position = (mpi.TRAIN_CAMERAS.index(camera) if camera in mpi.TRAIN_CAMERAS
                            else camera)
                check_crop_size(data_2d, data_2d_crop, data_3d, sorted({position, camera}),
                                where, path)
            w, h = mpi.TRAIN_RESOLUTION
            n = len(data_2d)
            inputs_px, inputs_crop = _inputs(entry, keypoints_2d, data_2d, data_2d_crop,
                                             slice(None), where, path)
            parts.append((mpi.normalize_screen(inputs_px, w, h), inputs_crop,
                          _relative_to_pelvis(data_3d), np.full(n, 10 * subject + sequence),
                          np.full(n, int(camera_key)), np.arange(n))
                         + image_crop_truth(data_2d, entry["data_3d"], int(camera_key)))
    if not parts:
        raise LabelError("%s holds no training frames" % path)
    return _columns(parts, [np.zeros(len(p[5]), np.int16) for p in parts])


def read_test_activities(root, name, count):
    """activity_annotation of test sequence `name` from its annot_data.mat (for label files of
    the released script, which leave it out)."""
    path = os.path.join(root, mpi.test_annot_path(name))
    try:
        activity = matfile.read_v73(path, ["activity_annotation"])["activity_annotation"]
    except matfile.MatFileError as error:
        raise LabelError("the test label file has no activity labels for %s and they cannot be "
                         "read from the test set: %s; regenerate the labels with "
                         "MPI-INF-3DHP-Toolbox/generate_labels_3dhp.py" % (name, error)) from None
    activity = np.asarray(activity).reshape(-1)
    if len(activity) != count:
        raise LabelError("%s: %d activity labels for %d labelled frames of %s"
                         % (path, len(activity), count, name))
    return activity


def load_test_labels(path, root, keypoints_2d="cpn"):
    """The valid frames of every test sequence, in order (MpiLabels), the 2D inputs those called
    `keypoints_2d`; activities from the label file, or else from `root`'s annot_data.mat files."""
    data = read_label_npz(path)
    parts, activities = [], []
    for name, entry in data.items():
        if name not in mpi.TEST_SEQUENCES:
            raise LabelError("%s: entry %r is not a test sequence (TS1..TS6); is this the "
                             "training label file?" % (path, name))
        data_2d, data_2d_crop, data_3d = _entry_arrays(entry, name, path)
        if "valid" not in entry:
            raise LabelError("%s: %s has no 'valid'; regenerate the label file" % (path, name))
        valid = np.asarray(entry["valid"]).reshape(-1) == 1
        if len(valid) != len(data_2d):
            raise LabelError("%s: %s has %d 'valid' flags for %d frames"
                             % (path, name, len(valid), len(data_2d)))
        activity = entry.get("activity")
        if activity is None:
            activity = read_test_activities(root, name, len(valid))
        activity = np.asarray(activity).reshape(-1)
        rows = np.flatnonzero(valid)
        _check_finite((data_2d[rows], data_2d_crop[rows], data_3d[rows]), name, path)
        if not parts:  # the first sequence stands for the file
            check_crop_size(data_2d[rows], data_2d_crop[rows], data_3d[rows],
                            [mpi.sequence_intrinsics_index(name)], name, path)
        w, h = mpi.sequence_resolution(name)
        inputs_px, inputs_crop = _inputs(entry, keypoints_2d, data_2d, data_2d_crop, rows, name,
                                         path)
        parts.append((mpi.normalize_screen(inputs_px, w, h), inputs_crop,
                      _relative_to_pelvis(data_3d[rows]), np.full(len(rows), int(name[2:])),
                      np.full(len(rows), -1), rows)
                     + image_crop_truth(data_2d[rows], np.asarray(entry["data_3d"])[rows],
                                        mpi.sequence_intrinsics_index(name)))
        activities.append(activity[rows])
    return _columns(parts, activities)


class MpiInf3dhpDataset(LabelledCropDataset):
    """Samples of one split: the crop JPEG (cv2.imread, BGR), the 2D input joints (the GT by
    default, or detections: `keypoints_2d`; screen-normalised and in crop pixels) and the 3D joints (mm, root-relative); the sample
    dict of LabelledCropDataset."""

    def __init__(self, root, labels_path, split, frame_stride=1, keypoints_2d="cpn"):
        self.root = root
        self.labels_path = labels_path
        self.split = split
        labels = (load_train_labels(labels_path, keypoints_2d) if split == "train"
                  else load_test_labels(labels_path, root, keypoints_2d))
        if frame_stride > 1:
            labels = labels.subset(np.arange(0, len(labels), frame_stride))
        self.labels = labels
        if not os.path.isdir(root):
            raise MissingImageError("MPI-INF-3DHP folder %s does not exist; %s"
                                    % (root, PREPARE_HINT))

    def load_crop(self, index):
        """(256, 192, 3) uint8 BGR crop of sample `index`; a missing or damaged file is an
        ImageError naming it and its frame."""
        path = os.path.join(self.root, self.labels.image_path(index))
        try:
            image = read_frame_bgr(path)
        except ImageError as error:
            raise type(error)("%s (%s of %s); make the crops with "
                              "MPI-INF-3DHP-Toolbox/prepare_images_3dhp.py"
                              % (error, self.labels.describe(index), self.labels_path)) from None
        if image.shape[:2] != CROP_SHAPE:
            raise ImageError("%s is %dx%d, not a %dx%d crop (%s): run the toolbox's crop step on "
                             "it" % (path, image.shape[1], image.shape[0], CROP_SHAPE[1],
                                     CROP_SHAPE[0], self.labels.describe(index)))
        return image


class MpiInf3dhpStoreDataset(StoreDataset):
    """Samples of one split ('train', or 'val': the test set) of an MPI-INF-3DHP frame store:
    the crop files' bytes, decoded as MpiInf3dhpDataset reads them, and its MpiLabels rows."""

    DATASET = "mpi_inf_3dhp"
    LABELS = MpiLabels
    BUILD_COMMAND = STORE_BUILD_COMMAND

    def describe(self, index):
        return "%s, %s" % (self.labels.describe(index), self.labels.image_path(index))
