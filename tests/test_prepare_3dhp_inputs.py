"""prepare_3dhp.py on damaged annotation files: each is one line naming the file, exit status 2
(the script's main called in-process, through the toolbox's run_script as its command line
does), never a traceback or NaN labels."""
import os
import pickle
import shutil
import sys

import h5py
import numpy as np
import pytest
import scipy.io

from conftest import REPO_ROOT
from mvn.mpi_inf_3dhp import matfile
from mvn.toolbox import run_script

sys.path.insert(0, os.path.join(REPO_ROOT, "MPI-INF-3DHP-Toolbox"))
import prepare_3dhp  # noqa: E402

TRAIN = os.path.join("mpi_inf_3dhp", "S1", "Seq1", "annot.mat")
TEST = os.path.join("mpi_inf_3dhp_test_set", "TS1", "annot_data.mat")
TEST_VARIABLES = ["valid_frame", "activity_annotation", "annot2", "univ_annot3"]


def write_empty(path):
    open(path, "wb").close()


def write_text(path):
    with open(path, "w") as f:
        f.write("annot2 = [1 2 3]\n")


def write_pickle(path):
    with open(path, "wb") as f:
        pickle.dump({"annot2": np.zeros(3)}, f)


def truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def write_groups(path):
    os.remove(path)
    with h5py.File(path, "w", userblock_size=matfile.HEADER_BYTES) as f:
        for name in TEST_VARIABLES:
            f.create_group(name)


def nan_in_test_frame_2(path):
    data = matfile.read_v73(path, TEST_VARIABLES)
    data["univ_annot3"] = data["univ_annot3"].astype(np.float64)
    data["univ_annot3"][0, 3, 0, 1] = np.nan              # x of joint 4, frame 2
    os.remove(path)
    matfile.write_v73(path, data)


def inf_in_train_camera_2_frame_2(path):
    data = {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    matrix = np.array(data["univ_annot3"][2, 0], dtype=np.float64)
    matrix[1, :] = np.inf
    data["univ_annot3"][2, 0] = matrix
    scipy.io.savemat(path, data)


def complex_train_annotations(path):
    data = {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    data["annot2"][0, 0] = data["annot2"][0, 0] + 1j
    scipy.io.savemat(path, data)


TRAIN_ADVICE = "download annot.mat of this sequence again"
CASES = [
    (TRAIN, write_empty, " is empty (0 bytes), not a MATLAB file; " + TRAIN_ADVICE),
    (TRAIN, write_text, " could not be read as a MATLAB file (MatReadError: "),
    (TRAIN, write_pickle, " could not be read as a MATLAB file ("),
    (TRAIN, truncate, " could not be read as a MATLAB file ("),
    (TRAIN, inf_in_train_camera_2_frame_2, ": univ_annot3 of S1 Seq1 camera 2 is not finite (NaN "
                                           "or inf) in 1 frame(s), the first frame 2 (1-based); "
                                           "download annot.mat again"),
    (TRAIN, complex_train_annotations, ": annot2 of camera 0 holds complex numbers, not real "
                                       "numbers; download annot.mat again"),
    (TEST, write_empty, " is empty (0 bytes), not a MATLAB file; unzip the test set again"),
    (TEST, write_text, " could not be read as a MATLAB file (MatReadError: "),
    (TEST, truncate, " could not be read as a MATLAB v7.3 file ("),
    (TEST, write_groups, ": the variable(s) valid_frame, activity_annotation, annot2, "
                         "univ_annot3 are MATLAB structs or cells (HDF5 groups), not numeric "
                         "arrays; unzip the test set again"),
    (TEST, nan_in_test_frame_2, ": univ_annot3 of TS1 is not finite (NaN or inf) in 1 frame(s), "
                                "the first frame 2 (1-based); unzip the test set again"),
]


@pytest.mark.parametrize("target, damage, message", CASES,
                         ids=["%s-%s" % (t.split(os.sep)[-1], d.__name__) for t, d, _ in CASES])
def test_a_weak_annotation_file_is_one_line_with_exit_2(synthetic_3dhp, tmp_path, capsys,
                                                        target, damage, message):
    root = str(tmp_path / "release")
    shutil.copytree(synthetic_3dhp, root)
    for label_file in ("data_train_3dhp.npz", "data_test_3dhp.npz"):  # made again from the files
        os.remove(os.path.join(root, label_file))
    path = os.path.join(root, target)
    damage(path)
    with pytest.raises(SystemExit) as exit_status:
        run_script(prepare_3dhp.main, ["--root", root, "--workers", "1"])
    assert exit_status.value.code == 2
    err = capsys.readouterr().err.replace("\r", "\n")
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: %s%s" % (path, message)), last
