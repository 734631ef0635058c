"""install.py's pip commands (what runs is printed by install.py itself; here, which index and
which releases it asks for), and the torch/torchvision pairing of mvn/versions.py."""
import importlib.util
import os

import pytest

from conftest import REPO_ROOT
from mvn.versions import torchvision_for


def load_install():
    spec = importlib.util.spec_from_file_location("install",
                                                  os.path.join(REPO_ROOT, "install.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_torch_comes_from_the_cpu_index_without_a_gpu():
    install = load_install()
    first, fallback = install.torch_commands("2.13.0", nvidia_gpu=False)
    assert first[-7:] == ["--no-deps", "torch==2.13.0", "--index-url",
                          "https://download.pytorch.org/whl/cpu", "--timeout", "20", "--retries",
                          "1"][-7:]
    assert "--index-url" not in fallback
    assert install.torch_commands("2.13.0", nvidia_gpu=True)[0][-1] == "torch==2.13.0"


def test_torchvision_is_the_release_built_for_the_installed_torch():
    assert torchvision_for("2.13.0+cpu") == "0.28"
    assert torchvision_for("2.14.1") == "0.29"
    assert torchvision_for("3.0.0") is None
    install = load_install()
    command, = install.torchvision_commands("2.13.0+cpu", nvidia_gpu=False)
    assert "torchvision==0.28.*" in command and "https://download.pytorch.org/whl/cpu" in command
    command, = install.torchvision_commands("2.13.0", nvidia_gpu=True)
    assert command[-2:] == ["--no-deps", "torchvision==0.28.*"]
    with pytest.raises(install.InstallError, match="no torchvision release is known for torch "
                       "3.0.0"):
        install.torchvision_commands("3.0.0", nvidia_gpu=False)


def test_another_torch_comes_with_its_torchvision_and_the_locks_other_pins():
    install = load_install()
    command = install.pair_command("2.14.1", person_detector=True)
    pins = command[command.index("torch==2.14.1"):]
    with open(os.path.join(REPO_ROOT, "requirements.lock")) as lock:
        locked = [line.strip() for line in lock if line.strip() and not line.startswith("#")]
    others = [pin for pin in locked if not pin.startswith("torch==")]
    assert len(others) == len(locked) - 1 and len(others) > 10  # the lock's torch left out
    assert pins == ["torch==2.14.1", "torchvision==0.29.*"] + others
    assert "--no-deps" not in command and "--index-url" not in command
    assert install.pair_command("2.14.1", person_detector=False)[len(install.pip_command())] \
        == "torch==2.14.1"
    with pytest.raises(install.InstallError, match="no torchvision release is known"):
        install.pair_command("3.0.0", person_detector=True)
