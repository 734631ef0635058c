"""mvn/datasets/label_files.py: files a user downloads or is sent are read without running code;
and no loader of the project can run code from a file (every call site is checked)."""
import ast
import os
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT
from mvn.datasets.label_files import read_npz_array

sys.path.insert(0, os.path.join(REPO_ROOT, "H36M-Toolbox"))  # a folder of scripts
import generate_labels_h36m  # noqa: E402
import h36m_toolbox  # noqa: E402


class WritesAMarker:
    """Unpickling this object would run `touch <path>`."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, ("touch %s" % self.path,))


def crafted_detections(tmp_path, payload):
    """A file named like VideoPose3D's detections whose positions_2d dict holds `payload`."""
    path = tmp_path / "data" / "data_2d_h36m_cpn_ft_h36m_dbb.npz"
    os.makedirs(path.parent, exist_ok=True)
    np.savez(path, positions_2d=np.array({"S1": {"Walking": payload}}, dtype=object),
             metadata=np.array({"layout_name": "h36m"}, dtype=object))
    return path


def test_the_detections_dict_is_read_with_arrays_lists_and_dicts(tmp_path):
    cameras = [np.arange(34, dtype=np.float32).reshape(1, 17, 2)] * 4
    path = crafted_detections(tmp_path, cameras)
    positions = read_npz_array(str(path), "positions_2d").item()
    np.testing.assert_array_equal(positions["S1"]["Walking"][3], cameras[3])
    assert read_npz_array(str(path), "metadata").item() == {"layout_name": "h36m"}
    np.savez(tmp_path / "plain.npz", a=np.arange(3))
    np.testing.assert_array_equal(read_npz_array(str(tmp_path / "plain.npz"), "a"), np.arange(3))
    with pytest.raises(KeyError):
        read_npz_array(str(tmp_path / "plain.npz"), "b")


def test_a_crafted_detections_file_runs_no_code(tmp_path):
    marker = tmp_path / "marker"
    crafted_detections(tmp_path, [WritesAMarker(marker)])
    assert h36m_toolbox.DETECTIONS_FILE == os.path.join("data", "data_2d_h36m_cpn_ft_h36m_dbb.npz")
    with pytest.raises(h36m_toolbox.ToolboxError, match="not VideoPose3D's detection file.*"
                                                       "refusing to load"):
        generate_labels_h36m.load_detections(str(tmp_path))
    assert not marker.exists()


def load_calls(path):
    """(line, text) of every call in the Python file `path` that reads a serialised file:
    np.load, torch.load, pickle.load(s), pickle.Unpickler(...)."""
    with open(path) as f:
        source = f.read()
    calls = []
    for node in ast.walk(ast.parse(source, path)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        owner = node.func.value
        name = "%s.%s" % (owner.id if isinstance(owner, ast.Name) else "?", node.func.attr)
        if name in ("np.load", "numpy.load", "torch.load", "pickle.load", "pickle.loads",
                    "pickle.Unpickler"):
            calls.append((name, node, ast.get_source_segment(source, node)))
    return calls


# pickle.load(s) over bytes this project wrote itself in the same run, never a user's file
OWN_BYTES = {("mvn/toolbox.py", "pickle.loads"),   # a worker's result, round-tripped in memory
             ("bench/bench_data.py", "pickle.load"),   # the bench's own reference-format file
             ("bench/bench_data.py", "pickle.loads")}  # a forked child's number, via a pipe


def test_every_loader_in_the_project_is_safe():
    files = []
    for folder, _, names in os.walk(REPO_ROOT):
        relative = os.path.relpath(folder, REPO_ROOT)
        if relative.split(os.sep)[0] in (".git", ".ci", ".venv", "data", "logs", "tests"):
            continue
        files += [os.path.join(folder, n) for n in names if n.endswith(".py")]
    seen, unsafe = 0, []
    for path in files:
        relative = os.path.relpath(path, REPO_ROOT)
        for name, node, text in load_calls(path):
            seen += 1
            keywords = {k.arg: k.value for k in node.keywords}
            if name.endswith("np.load") or name == "numpy.load":
                value = keywords.get("allow_pickle")
                if value is not None and not (isinstance(value, ast.Constant)
                                              and value.value is False):
                    unsafe.append((relative, text))
            elif name == "torch.load":
                value = keywords.get("weights_only")
                if not (isinstance(value, ast.Constant) and value.value is True):
                    unsafe.append((relative, text))
            elif (relative, name) not in OWN_BYTES:
                unsafe.append((relative, text))
    assert seen >= 10  # the scan finds the loaders at all
    assert not unsafe, unsafe
