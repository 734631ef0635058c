#!/usr/bin/env bash
# Download, on a machine that reaches a package index, the wheels that the GPU machine lacks, into
# the git-ignored bench/wheels/ (bench/gpu_check.py installs them there, offline). The GPU
# machine has Python 3.12 with torch, torchvision, opencv, h5py, tensorboard, tqdm and pyyaml;
# this fetches bench/gpu_requirements.txt (and what they need) for CPython 3.12 on x86-64 Linux.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p wheels
python3 -m pip download --quiet --disable-pip-version-check --dest wheels \
    --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux_2_28_x86_64 --platform any \
    -r gpu_requirements.txt
ls -1 wheels
