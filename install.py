"""Install what the project needs into the Python that runs this script (use a virtual environment).

    python3 -m venv .venv && . .venv/bin/activate
    python3 install.py             # the exact versions of requirements.lock (what CI tests)
    python3 install.py --latest    # the newest versions requirements.txt allows (drift check)
    python3 install.py --torch 2.14.1 --person-detector
                                   # another torch release + its torchvision, the lock's others

Steps, each printed as the command it runs:
  1. PyTorch at the lock's version: on a machine without an NVIDIA GPU from PyTorch's CPU wheel
     index (plain PyPI gives Linux the multi-GB CUDA build), else from the default index (CUDA).
  2. Everything else: `pip install -r requirements.lock` (or `--upgrade -r requirements.txt`).
  3. This package, editable: `pip install --no-deps -e .` (makes `mvn` importable everywhere).
With --torch VERSION, steps 1-2 are one command instead: torch==VERSION (with --person-detector
also the torchvision built for it, mvn/versions.py) and the lock's other packages, from the default
indexes with their dependencies (on Linux PyPI's CUDA build, several GB, which also runs on the
CPU). CI uses it for the person-detector tests where the lock's torch has no torchvision.
Standard library and `mvn.errors` only: it runs before anything is installed (quickstart.py and
.ci/run use it).
"""
import argparse
import importlib.metadata
import os
import shlex
import shutil
import subprocess
import sys

from mvn.errors import CAPFError, run_main
from mvn.versions import torchvision_for

REPO = os.path.dirname(os.path.abspath(__file__))
LOCK = "requirements.lock"
RANGES = "requirements.txt"
# PyTorch's index of CPU-only wheels.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


class InstallError(CAPFError):
    """A step failed; the message says which and what to do."""


def locked_version(package, lock_path=os.path.join(REPO, LOCK)):
    """The version `package` is pinned to in the lock file ('2.13.0')."""
    with open(lock_path) as lock:
        for line in lock:
            name, _, version = line.split("#")[0].strip().partition("==")
            if name.lower() == package.lower() and version:
                return version.strip()
    raise InstallError("%s pins no version of %s (a line '%s==X.Y.Z')" % (lock_path, package,
                                                                          package))


def installed_version(package):
    """The installed version of `package` ('2.13.0+cpu', ...), or None."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def has_nvidia_gpu():
    return shutil.which("nvidia-smi") is not None


def pip_command():
    return [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]


def run(command):
    print("$ " + " ".join(shlex.quote(c) for c in command), flush=True)
    code = subprocess.run(command, cwd=REPO).returncode
    if code != 0:
        raise InstallError("the command above failed (exit status %d)" % code)


def torch_commands(version, nvidia_gpu):
    """The pip commands that install torch==`version`, tried in order until one succeeds.

    Without a GPU: the CPU build from PyTorch's CPU index, torch alone (--no-deps: its own needs
    come pinned from the lock in the next step), then the default index as a last resort."""
    pip, spec = pip_command(), "torch==%s" % version
    if nvidia_gpu:
        return [pip + [spec]]
    return [pip + ["--no-deps", spec, "--index-url", TORCH_CPU_INDEX, "--timeout", "20",
                   "--retries", "1"],
            pip + ["--no-deps", spec]]


def install_torch(version):
    current = installed_version("torch")
    if current is not None and current.split("+")[0] == version:
        print("PyTorch %s is installed: kept" % current, flush=True)
        return
    gpu = has_nvidia_gpu()
    print("installing PyTorch %s (%s)" % (version, "an NVIDIA GPU is present: the default, CUDA "
                                          "build" if gpu else "no NVIDIA GPU: the CPU build"),
          flush=True)
    commands = torch_commands(version, gpu)
    for n, command in enumerate(commands):
        try:
            run(command)
            return
        except InstallError:
            if n + 1 == len(commands):
                raise
            print("that index could not be used: trying the default index instead (on a "
                  "machine without a GPU this may be the large CUDA build)", flush=True)


def torchvision_commands(torch_version, nvidia_gpu):
    """The pip commands that install the torchvision built for torch `torch_version` (the
    person detector of demo.py), from the index torch came from, tried in order."""
    release = torchvision_for(torch_version)
    if release is None:
        raise InstallError("no torchvision release is known for torch %s (mvn/versions.py)"
                           % torch_version)
    pip, spec = pip_command(), "torchvision==%s.*" % release
    if nvidia_gpu or "+cpu" not in torch_version:
        return [pip + ["--no-deps", spec]]
    return [pip + ["--no-deps", spec, "--index-url", TORCH_CPU_INDEX, "--timeout", "20",
                   "--retries", "1"]]


def install_torchvision():
    torch_version = installed_version("torch")
    for command in torchvision_commands(torch_version, has_nvidia_gpu()):
        run(command)


def locked_requirements(without, lock_path=os.path.join(REPO, LOCK)):
    """The lock's pins ('numpy==2.4.6', ...), less those of the packages in `without`."""
    pins = []
    with open(lock_path) as lock:
        for line in lock:
            pin = line.split("#")[0].strip()
            if pin and pin.partition("==")[0].strip().lower() not in without:
                pins.append(pin)
    return pins


def pair_command(torch_version, person_detector):
    """One pip command: torch==`torch_version` (+ its torchvision with `person_detector`) and the
    lock's other pins, resolved together, dependencies included (a CUDA build needs its NVIDIA
    libraries to import, even on the CPU)."""
    specs = ["torch==%s" % torch_version]
    if person_detector:
        release = torchvision_for(torch_version)
        if release is None:
            raise InstallError("no torchvision release is known for torch %s (mvn/versions.py)"
                               % torch_version)
        specs.append("torchvision==%s.*" % release)
    return pip_command() + specs + locked_requirements({"torch", "torchvision"})


def install(latest=False, person_detector=False, torch_version=None):
    if torch_version is not None:  # another torch than the lock's (see the docstring)
        run(pair_command(torch_version, person_detector))
        run(pip_command() + ["--no-deps", "-e", "."])
        return
    install_torch(locked_version("torch"))
    if latest:
        run(pip_command() + ["--upgrade", "-r", RANGES])
    else:
        run(pip_command() + ["-r", LOCK])
    run(pip_command() + ["--no-deps", "-e", "."])
    if person_detector:
        install_torchvision()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latest", action="store_true",
                        help="the newest versions %s allows instead of %s" % (RANGES, LOCK))
    parser.add_argument("--person-detector", action="store_true",
                        help="also torchvision, for demo.py's person detector (the release built "
                             "for the installed torch, from the same index)")
    parser.add_argument("--torch", metavar="VERSION", dest="torch_version",
                        help="this torch release instead of the lock's (with --person-detector "
                             "also its torchvision), from the default indexes with its "
                             "dependencies; the lock's other packages as pinned")
    args = parser.parse_args(argv)
    if args.torch_version and args.latest:
        parser.error("--torch goes with the lock's versions, not --latest")
    if sys.prefix == sys.base_prefix and not os.environ.get("CONDA_PREFIX"):
        print("note: %s is not a virtual environment; the packages go into its site-packages"
              % sys.executable, flush=True)
    return run_main(lambda: install(args.latest, args.person_detector, args.torch_version),
                    "install.py")


if __name__ == "__main__":
    sys.exit(main())
