"""CAPF_MUST_RUN (tests/conftest.py), which .ci/run_torchvision sets: a skipped test of a named
marker group fails, other skips stay skips, and nothing changes without it."""
import os
import subprocess
import sys

from conftest import REPO_ROOT

GROUPS = '''import pytest


@pytest.mark.torchvision
def test_needs_torchvision():
    pytest.skip("torchvision is absent")


@pytest.mark.torchvision
@pytest.mark.skipif(True, reason="skipped by a marker")
def test_skipped_by_a_marker():
    pass


@pytest.mark.cuda
def test_needs_a_gpu():
    pytest.skip("no GPU")
'''


def run_groups(tmp_path, must_run):
    (tmp_path / "test_groups.py").write_text(GROUPS)
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO_ROOT, "tests"))
    env.pop("CAPF_MUST_RUN", None)
    if must_run is not None:
        env["CAPF_MUST_RUN"] = must_run
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rfEs", "-p", "conftest", "-p",
                           "no:cacheprovider", "-c", os.devnull, "--rootdir", str(tmp_path),
                           str(tmp_path / "test_groups.py")],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True)


def test_a_skip_of_a_group_that_must_run_fails_and_only_that(tmp_path):
    result = run_groups(tmp_path, "torchvision")
    assert result.returncode == 1, result.stdout[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert "1 failed" in summary and "1 skipped" in summary and "1 error" in summary, summary
    assert "CAPF_MUST_RUN=torchvision says the group torchvision must run here" in result.stdout
    assert "torchvision is absent" in result.stdout and "skipped by a marker" in result.stdout


def test_without_it_skips_are_skips(tmp_path):
    result = run_groups(tmp_path, None)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "3 skipped" in result.stdout.strip().splitlines()[-1]
