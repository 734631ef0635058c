"""Shared test helpers: the reference vectors in tests/reference/, a small synthetic Human3.6M
and a small synthetic MPI-INF-3DHP."""
import os
import socket

import pytest
import torch

from reference_weights import fill_reference_weights

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE_DIR = os.path.join(REPO_ROOT, "tests", "reference")


# Marker groups that must run, not skip (comma-separated): .ci/run sets CAPF_MUST_RUN=torchvision in
# the environment it made with torchvision, where a skipped person-detector test is a failure.
MUST_RUN = {name for name in os.environ.get("CAPF_MUST_RUN", "").split(",") if name}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    groups = MUST_RUN & {mark.name for mark in item.iter_markers()}
    if report.skipped and groups and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = ("skipped (%s), but CAPF_MUST_RUN=%s says the group %s must run here"
                           % (report.longrepr[-1] if isinstance(report.longrepr, tuple)
                              else report.longrepr, os.environ["CAPF_MUST_RUN"],
                              ", ".join(sorted(groups))))


def reference_path(name):
    """Path of a file of tests/reference/ (made by the released code); a missing one fails."""
    path = os.path.join(REFERENCE_DIR, name)
    if not os.path.exists(path):
        pytest.fail("reference file %s not found: it is part of the repository (see "
                    "tests/reference/README.md); restore it with git" % path)
    return path


def load_reference(name):
    return torch.load(reference_path(name), map_location="cpu", weights_only=True)


fill_state_dict = fill_reference_weights  # the reference's fill procedure


def free_port():
    """A TCP port free on 127.0.0.1 now (for a test's process group)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def zero_jpeg_middle(path, start=0.4, length=0.125):
    """Zero bytes in the middle of the JPEG file `path` (from `start` of its length, `length` of
    it), its start and end markers intact: OpenCV still decodes it, without an error, and
    libjpeg calls it corrupt on stderr. Returns the damaged bytes."""
    import cv2
    import numpy as np
    with open(path, "rb") as f:
        data = bytearray(f.read())
    begin = int(len(data) * start)
    data[begin:begin + int(len(data) * length)] = bytes(int(len(data) * length))
    assert data[:2] == b"\xff\xd8" and data.rstrip(b"\x00").endswith(b"\xff\xd9")
    assert cv2.imdecode(np.frombuffer(bytes(data), np.uint8), cv2.IMREAD_COLOR) is not None
    with open(path, "wb") as f:
        f.write(data)
    return bytes(data)


def run_toolbox(script, *args, toolbox="H36M-Toolbox"):
    """Run a script of `toolbox` as a user would; fail the test with its output if it fails."""
    import subprocess
    import sys
    command = [sys.executable, os.path.join(REPO_ROOT, toolbox, script)] + list(args)
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT)
    if result.returncode != 0:
        pytest.fail("%s failed (%d):\n%s\n%s" % (" ".join(command), result.returncode,
                                                  result.stdout[-2000:], result.stderr[-4000:]))
    return result


@pytest.fixture(scope="session")
def synthetic_h36m(tmp_path_factory):
    """A small synthetic Human3.6M (S1 train, S9 validation; 2 actions x 2 trials x 4 cameras x
    6 frames) taken through synthesis -> frame extraction -> labels. Returns its root folder."""
    root = str(tmp_path_factory.mktemp("h36m"))
    subset = ["--subjects", "1", "9", "--actions", "2", "3"]
    run_toolbox("synthesize_h36m.py", "--root", root, *subset, "--frames", "6", "--seed", "0")
    run_toolbox("video_to_images.py", "--root", root, *subset)
    run_toolbox("generate_labels_h36m.py", "--root", root, *subset)
    return root


def read_video_frames(path):
    """Every frame of a video file, decoded with OpenCV (BGR)."""
    import cv2
    capture = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


@pytest.fixture(scope="session")
def synthetic_3dhp(tmp_path_factory):
    """A small synthetic MPI-INF-3DHP (S1: 2 sequences x 8 cameras x 2 frames; TS1..TS6 x 3
    frames, some invalid) synthesised and prepared (label files + crops) with the toolbox's
    commands. Returns its root folder; tests only read it (copy it to change it)."""
    root = str(tmp_path_factory.mktemp("mpi_inf_3dhp"))
    run_toolbox("synthesize_3dhp.py", "--root", root, "--subjects", "1", "--frames", "2",
                "--test-frames", "3", "--seed", "0", "--workers", "2",
                toolbox="MPI-INF-3DHP-Toolbox")
    run_toolbox("prepare_3dhp.py", "--root", root, "--workers", "2",
                toolbox="MPI-INF-3DHP-Toolbox")
    return root
