"""Reading label and detection files safely, for every benchmark: unpickling that can only
rebuild NumPy arrays, scalars, lists and dicts (a file a user downloads or is sent cannot run
code).
"""
import pickle
import zipfile

import numpy as np

from mvn import geometry
from mvn.errors import CAPFError

# What a pickle of labels may reconstruct: NumPy arrays and scalars, nothing that runs code.
ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("collections", "OrderedDict"),
})


class LabelError(CAPFError, ValueError):
    """A label file that is missing or is not what it should be; says which and why."""


# Crop keypoints recomputed from a record's full-frame joints and box agree with the file's to
# float32 rounding (~1e-3 px); a file made for another crop size is off by many pixels.
CROP_CHECK_TOLERANCE_PX = 0.5


def check_crop_keypoints(recomputed_px, stored_px, path, remedy):
    """Refuse a label file whose crop keypoints (N, J, 2) are not those of this code's crop
    (mvn.geometry.CROP_SHAPE): `recomputed_px` are the file's full-frame joints mapped through the
    crop of its own boxes, `stored_px` what the file holds. `remedy`: the command that remakes it."""
    if len(stored_px) == 0:
        return
    worst_px = float(np.abs(np.asarray(recomputed_px) - np.asarray(stored_px)).max())
    if not worst_px <= CROP_CHECK_TOLERANCE_PX:
        raise LabelError("%s was not made for the %dx%d crops this code cuts "
                         "(mvn.geometry.CROP_SHAPE): its crop keypoints are up to %.1f px from "
                         "those of such a crop; regenerate it with %s"
                         % ((path,) + geometry.CROP_SHAPE + (worst_px, remedy)))


class RestrictedUnpickler(pickle.Unpickler):
    """pickle.Unpickler that refuses every class outside ALLOWED_GLOBALS."""

    def find_class(self, module, name):
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError("refusing to load %s.%s" % (module, name))


def read_npz_array(path, key):
    """Array `key` of the .npz file at `path`, read without running code from the file.

    Plain arrays are read as NumPy reads them (allow_pickle=False). An object array (the 0-d
    dict arrays of VideoPose3D's detection files and of the released MPI-INF-3DHP label files)
    is unpickled with RestrictedUnpickler: NumPy arrays, scalars, lists and dicts only. Raises
    KeyError (no such array), pickle.UnpicklingError (anything else pickled), and ValueError,
    EOFError, OSError or zipfile.BadZipFile for a file that is not a whole .npz."""
    with np.load(path, allow_pickle=False) as data:
        if key not in data.files:
            raise KeyError(key)
        try:
            return data[key]
        except ValueError as error:
            if "allow_pickle" not in str(error):
                raise
    with zipfile.ZipFile(path) as archive, archive.open(key + ".npy") as f:
        version = np.lib.format.read_magic(f)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        read_header(f)
        return RestrictedUnpickler(f).load()  # the pickled object array itself
