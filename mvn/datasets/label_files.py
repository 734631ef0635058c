"""Reading label files safely, for every benchmark: unpickling that can only rebuild NumPy
arrays, scalars, lists and dicts (a label file a user downloads or is sent cannot run code).
"""
import pickle

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


class RestrictedUnpickler(pickle.Unpickler):
    """pickle.Unpickler that refuses every class outside ALLOWED_GLOBALS."""

    def find_class(self, module, name):
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError("refusing to load %s.%s" % (module, name))
