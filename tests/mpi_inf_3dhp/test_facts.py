"""mvn/mpi_inf_3dhp/facts.py: the facts against the release's own files (its test-set calibration
files in tests/reference/mpi_inf_3dhp/, the facts recorded from the released code), and
mvn/mpi_inf_3dhp/matfile.py's v7.3 files."""
import json
import os

import h5py
import numpy as np
import pytest

from conftest import REPO_ROOT
from mvn.mpi_inf_3dhp import matfile
from mvn.mpi_inf_3dhp import facts as mpi
from mvn.mpi_inf_3dhp.facts import SKELETON as MPI_INF_3DHP

REFERENCE = os.path.join(REPO_ROOT, "tests", "reference", "mpi_inf_3dhp")


def read_calib(name):
    """The first camera block of a 'tc camera calibration v0.3' file: key -> list of floats."""
    values = {}
    with open(os.path.join(REFERENCE, name)) as f:
        for line in f:
            parts = line.split("#")[0].split()
            if len(parts) > 1 and parts[0] in ("sensorSize", "focalLength", "pixelAspect",
                                               "centerOffset", "distortion"):
                values[parts[0]] = [float(p) for p in parts[1:]]
    return values


@pytest.mark.parametrize("calib, index, tolerance_px", [
    ("ts1-4cameras.calib", 8, 0.006),   # the table's fy 1500.837 vs 1500.832 from the file
    ("ts5-6cameras.calib", 14, 1e-4),
])
def test_test_set_intrinsics_agree_with_the_calibration_files(calib, index, tolerance_px):
    """fx = focal * W / sensor_w, fy = fx * aspect, c = (W/2, H/2) + offset * (W/sensor_w,
    H/sensor_h): the table entries the released scripts use for TS1-4 (8) and TS5-6 (14)."""
    c = read_calib(calib)
    width, height = mpi.RESOLUTIONS[index]
    fx = c["focalLength"][0] * width / c["sensorSize"][0]
    derived = [fx, fx * c["pixelAspect"][0],
               width / 2 + c["centerOffset"][0] * width / c["sensorSize"][0],
               height / 2 + c["centerOffset"][1] * height / c["sensorSize"][1]]
    np.testing.assert_allclose(mpi.INTRINSICS[index], derived, atol=tolerance_px)
    np.testing.assert_array_equal(mpi.DISTORTION[index], c["distortion"])
    for name in mpi.TEST_SEQUENCES:
        if mpi.sequence_intrinsics_index(name) == index:
            assert mpi.sequence_resolution(name) == (width, height)


def test_facts_equal_those_recorded_from_the_released_code():
    with open(os.path.join(REFERENCE, "facts.json")) as f:
        facts = json.load(f)
    joints = facts["joints"]
    assert [mpi.JOINT_NAMES_28[i] for i in mpi.JOINTS_17_FROM_28] == joints["names17"]
    assert mpi.JOINTS_17_FROM_28 == tuple(joints["relevant17_index_into_28_zero_based"])
    assert mpi.ROOT_JOINT == joints["root_index17"] == mpi.JOINT_NAMES.index("pelvis")
    permutation = MPI_INF_3DHP.flip_permutation
    for left, right in zip(joints["joints_left17"], joints["joints_right17"]):
        assert permutation[left] == right and permutation[right] == left
        assert mpi.JOINT_NAMES[left].replace("left", "right") == mpi.JOINT_NAMES[right]
    training = facts["training_set"]
    assert sum(f for f, _ in mpi.SEQUENCE_INFO.values()) == training["frames_per_camera_total"]
    assert len(mpi.TRAIN_CAMERAS) * training["frames_per_camera_total"] == \
        training["samples_per_epoch"]
    for entry in training["python_intrinsics_list"]:
        i = entry["list_index"]
        assert list(mpi.INTRINSICS[i]) == entry["focal_length"] + entry["center"]
    valid = {k: v["valid_frames"] for k, v in facts["test_set"]["sequences"].items()}
    assert sum(valid.values()) == facts["test_set"]["valid_frames_total"] == 2929
    assert mpi.PUBLISHED_CHECKPOINTS == {
        "hrnet_32": os.path.basename(facts["model"]["hrnet_32"]["checkpoint"]),
        "hrnet_48": os.path.basename(facts["model"]["hrnet_48"]["checkpoint"])}


def test_file_names_of_the_release_layout():
    assert mpi.train_image_path(3, 2, 8, 0) == os.path.join(
        "mpi_inf_3dhp", "images", "s_03_seq_02_ca_08", "s_03_seq_02_ca_08_000001.jpg")
    assert mpi.test_frame_path("TS6", 9) == os.path.join(
        "mpi_inf_3dhp_test_set", "TS6", "imageSequence", "img_000010.jpg")
    assert mpi.video_path(1, 1, 4).endswith(os.path.join("S1", "Seq1", "imageSequence",
                                                          "video_4.avi"))


def test_a_v73_file_as_matlab_writes_it_reads_in_matlab_axis_order(tmp_path):
    """HDF5 behind a 512-byte MATLAB header, arrays stored transposed, MATLAB_class set; the
    reader gives MATLAB's (2, 17, 1, n) order back. A v5 file reads through the same call."""
    annot2 = np.random.default_rng(0).normal(size=(2, 17, 1, 5))
    path = str(tmp_path / "annot_data.mat")
    matfile.write_v73(path, {"annot2": annot2, "valid_frame": np.array([1.0, 0, 1, 1, 1])})
    with open(path, "rb") as f:
        header = f.read(128)
    assert header.startswith(b"MATLAB 7.3 MAT-file") and header[126:128] == b"IM"
    with h5py.File(path, "r") as f:
        assert f["annot2"].shape == (5, 1, 17, 2)
        assert f["annot2"].attrs["MATLAB_class"] == b"double"
    read = matfile.read_v73(path, ["annot2", "valid_frame"])
    np.testing.assert_array_equal(read["annot2"], annot2)
    assert read["valid_frame"].shape == (1, 5)
    with pytest.raises(matfile.MatFileError, match="has no variable univ_annot3"):
        matfile.read_v73(path, ["univ_annot3"])
    v5 = str(tmp_path / "v5.mat")
    matfile.write_v5(v5, {"annot2": annot2})
    np.testing.assert_array_equal(matfile.read_v73(v5, ["annot2"])["annot2"], annot2)
