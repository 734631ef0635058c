"""train.py's command line before any work: --help must not wait for PyTorch."""
import subprocess
import sys

from conftest import REPO_ROOT


def test_help_imports_no_torch():
    result = subprocess.run([sys.executable, "-X", "importtime", "train.py", "--help"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "--resume" in result.stdout
    imported = [line.split("|")[-1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")]
    assert "mvn.errors" in imported                             # the check sees imports at all
    assert not [name for name in imported if name.split(".")[0] == "torch"]
