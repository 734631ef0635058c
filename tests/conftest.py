"""Shared test helpers: access to ../shared/reference (fail, never skip, in CI)."""
import os
import zlib

import pytest
import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE_DIR = os.environ.get(
    "CAPF_REFERENCE_DIR", os.path.join(os.path.dirname(REPO_ROOT), "shared", "reference"))


def reference_path(name):
    """Path of a reference file; fails in CI (CI=true) and skips elsewhere when it is missing."""
    path = os.path.join(REFERENCE_DIR, name)
    if not os.path.exists(path):
        message = ("reference file %s not found: the tests expect ../shared/reference beside the "
                   "checkout (or CAPF_REFERENCE_DIR)" % path)
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def load_reference(name):
    return torch.load(reference_path(name), map_location="cpu", weights_only=True)


def fill_state_dict(state_dict):
    """The reference's deterministic fill procedure (shared/reference/README.md), in place."""
    for name in sorted(state_dict):
        t = state_dict[name]
        if name.endswith("num_batches_tracked"):
            t.zero_()
            continue
        g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
        r = torch.randn(tuple(t.shape), generator=g, dtype=torch.float32)
        if name.endswith("running_var"):
            value = 1 + 0.1 * r.abs()
        elif name.endswith("running_mean"):
            value = 0.1 * r
        elif t.dim() >= 2:
            value = r / (t[0].numel() ** 0.5)
        elif name.endswith("weight"):
            value = 1 + 0.1 * r
        else:
            value = 0.1 * r
        t.copy_(value)
    return state_dict


def run_toolbox(script, *args):
    """Run an H36M-Toolbox script as a user would; fail the test with its output if it fails."""
    import subprocess
    import sys
    command = [sys.executable, os.path.join(REPO_ROOT, "H36M-Toolbox", script)] + list(args)
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
