"""MATLAB files of MPI-INF-3DHP: v5 (`annot.mat`, read with SciPy) and v7.3 (`annot_data.mat`,
an HDF5 file behind a 512-byte MATLAB header, read with h5py), and writing both.

Axis order: MATLAB stores arrays column-major, so h5py sees a MATLAB (2, 17, 1, n) array as
(n, 1, 17, 2). `read_v73` gives arrays in MATLAB's order (axes reversed back), as SciPy does for
v5 files; `write_v73` takes them in that order.
"""
import os
import time

import h5py
import numpy as np

from mvn.errors import CAPFError

HEADER_BYTES = 512  # the MATLAB text header in front of the HDF5 data (the HDF5 "user block")
V73_TEXT = "MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: %s HDF5 schema 1.00 ."
MATLAB_CLASSES = {np.dtype(np.float64): b"double", np.dtype(np.float32): b"single",
                  np.dtype(np.uint8): b"uint8", np.dtype(np.int32): b"int32",
                  np.dtype(np.int64): b"int64", np.dtype(np.uint16): b"uint16"}


class MatFileError(CAPFError, ValueError):
    """A MATLAB file that is missing or lacks what is needed; names the file and the variable."""


def _v73_header():
    text = V73_TEXT % time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(0))
    header = text.encode("ascii").ljust(116, b" ")
    header += b"\x00" * 8            # subsystem data offset
    header += b"\x00\x02" + b"IM"   # version 0x0200, little-endian marker
    return header.ljust(HEADER_BYTES, b"\x00")


def write_v73(path, variables):
    """Write `variables` (name -> array in MATLAB axis order) as a MATLAB v7.3 file."""
    with h5py.File(path, "w", userblock_size=HEADER_BYTES) as f:
        for name, value in variables.items():
            value = np.asarray(value)
            if value.ndim < 2:
                value = value.reshape(1, -1)   # MATLAB has no 1-D arrays: a row vector
            dataset = f.create_dataset(name, data=value.T)
            dataset.attrs["MATLAB_class"] = np.bytes_(MATLAB_CLASSES[value.dtype])
    with open(path, "r+b") as f:
        f.write(_v73_header())


def _check_file(path):
    if not os.path.isfile(path):
        raise MatFileError("%s does not exist" % path)
    if os.path.getsize(path) == 0:
        raise MatFileError("%s is empty (0 bytes), not a MATLAB file" % path)


def read_v73(path, names):
    """{name: array in MATLAB axis order} for `names` from a v7.3 file (a v5 file is read with
    SciPy instead, so either kind of file works). A file that is not a MATLAB file, a truncated
    one, or a variable that is a struct or cell (an HDF5 group) is a MatFileError."""
    _check_file(path)
    if not h5py.is_hdf5(path):
        return read_v5(path, names)
    try:
        with h5py.File(path, "r") as f:
            missing = [n for n in names if n not in f]
            if missing:
                raise MatFileError("%s has no variable %s (it has: %s)"
                                   % (path, ", ".join(missing), ", ".join(sorted(f.keys()))))
            groups = [n for n in names if not isinstance(f[n], h5py.Dataset)]
            if groups:
                raise MatFileError("%s: the variable(s) %s are MATLAB structs or cells (HDF5 "
                                   "groups), not numeric arrays" % (path, ", ".join(groups)))
            return {n: np.asarray(f[n][()]).T for n in names}
    except OSError as error:    # truncated or damaged HDF5: h5py's message names the cause
        raise MatFileError("%s could not be read as a MATLAB v7.3 file (%s)"
                           % (path, error)) from None


def read_v5(path, names):
    """{name: value} for `names` from a MATLAB v5 file (scipy.io.loadmat; cells are object
    arrays)."""
    import scipy.io
    _check_file(path)
    try:
        data = scipy.io.loadmat(path)
    except Exception as error:  # SciPy's parser on a file that is not MATLAB: many kinds
        raise MatFileError("%s could not be read as a MATLAB file (%s: %s)"
                           % (path, type(error).__name__, error)) from None
    missing = [n for n in names if n not in data]
    if missing:
        present = sorted(k for k in data if not k.startswith("__"))
        raise MatFileError("%s has no variable %s (it has: %s)"
                           % (path, ", ".join(missing), ", ".join(present)))
    return {n: data[n] for n in names}


def real_array(value, path, name):
    """`value` as an array of real numbers; a MatFileError naming the file and the variable if
    it holds complex numbers, text, cells or structs."""
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        what = {"c": "complex numbers", "O": "cells or structs", "U": "text", "S": "text"}.get(
            array.dtype.kind, "values of type %s" % array.dtype)
        raise MatFileError("%s: %s holds %s, not real numbers" % (path, name, what))
    return array


def write_v5(path, variables):
    """scipy.io.savemat: a cell array is a (n, 1) object array of arrays."""
    import scipy.io
    scipy.io.savemat(path, variables, do_compression=False)
