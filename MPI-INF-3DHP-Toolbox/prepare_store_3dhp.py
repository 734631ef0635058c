"""Build the MPI-INF-3DHP frame store: per split, the prepared crops and the labels as columns.

train = data_train_3dhp.npz (every frame of every camera), val = data_test_3dhp.npz (the valid
frames): the rows and order of mvn.mpi_inf_3dhp.dataset.load_train_labels / load_test_labels,
their MpiLabels columns, and each row's crop JPEG (prepare_images_3dhp.py) with its bytes copied
as they are, never re-encoded: the store's samples are bit-identical to the pkl path's
(MpiInf3dhpDataset). One HDF5 file per split plus manifest.json (layout: mvn/datasets/store.py).
Every crop is checked while it is copied (a missing or damaged one stops the build, naming it).
The work runs in chunks, one per crop folder (a training camera of a sequence, or a test
sequence), in parallel; the manifest records the finished ones, so a build that was interrupted
(or stopped by --max-chunks) continues where it stopped when run again.

  python prepare_store_3dhp.py --root DIR --out data/mpi_inf_3dhp_store [--splits train val]
                               [--workers N] [--max-chunks K] [--overwrite]
  python prepare_store_3dhp.py --out data/mpi_inf_3dhp_store --verify
"""
import os
import shlex
from dataclasses import dataclass

import numpy as np

import mpi_toolbox as tb
import prepare_images_3dhp
from mvn.datasets import store, store_build
from mvn.images import decode_image
from mvn.mpi_inf_3dhp import facts as mpi
from mvn.mpi_inf_3dhp.dataset import (MpiInf3dhpStoreDataset, MpiLabels, load_test_labels,
                                      load_train_labels)

DATASET = MpiInf3dhpStoreDataset.DATASET
SCRIPT = "MPI-INF-3DHP-Toolbox/prepare_store_3dhp.py"
SOURCE = "crops"                 # the manifest's source: the prepared crop files, copied
LABEL_FILES = {"train": mpi.LABEL_FILES["train"], "val": mpi.LABEL_FILES["test"]}  # split -> file


@dataclass
class StoreBuild:
    """What to build: the parameters of one run (main() fills it from the command line)."""
    root: str                    # the dataset folder: label files and crops
    out: str                     # the store folder
    splits: list                 # e.g. ["train", "val"]
    workers: int
    max_chunks: int = None       # stop after this many chunks
    overwrite: bool = False      # start the store over


@dataclass
class ChunkJob:
    """One crop folder's rows of a split."""
    split: str
    index: int                   # chunk index in the split's manifest entry
    root: str
    labels: MpiLabels            # the chunk's rows (where each crop is: MpiLabels.image_path)
    labels_path: str             # for messages


# ----------------------------------------------------------------------------------------------
# Planning: label rows -> chunks

def load_labels(root, split):
    """(MpiLabels of `split`, the label file's path), as the pkl path loads them."""
    path = os.path.join(root, LABEL_FILES[split])
    return (load_train_labels(path) if split == "train" else load_test_labels(path, root)), path


def crop_folder_runs(labels):
    """[(crop folder, start, stop)]: the runs of rows whose crops share a folder (one training
    camera of a sequence, or one test sequence)."""
    key = labels.sequence.astype(np.int64) * 100 + labels.camera             # (N,)
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    stops = np.r_[starts[1:], len(key)]
    return [(os.path.basename(os.path.dirname(labels.image_path(a))), int(a), int(b))
            for a, b in zip(starts, stops)]


def plan_split(build, manifest, split):
    """Make sure the split has its file and manifest entry; returns its jobs still to do."""
    labels, labels_path = load_labels(build.root, split)
    info = store_build.file_info(labels_path)
    changed = store_build.labels_change(manifest, split, info)
    if changed:
        raise tb.ToolboxError(changed + ": add --overwrite to rebuild the store from it")
    entry = store_build.split_entry(build.out, manifest, split, info, labels,
                                    crop_folder_runs(labels))
    return [ChunkJob(split, index, build.root,
                     labels.subset(slice(chunk["start"], chunk["stop"])), labels_path)
            for index, chunk in enumerate(entry["chunks"]) if not chunk["done"]]


# ----------------------------------------------------------------------------------------------
# Workers: read and check one chunk's crop files

def remake_hint(root, path):
    """How to make the crop `path` again (a folder marked complete is skipped otherwise)."""
    command = "`python MPI-INF-3DHP-Toolbox/prepare_images_3dhp.py --root %s`" % root
    marker = os.path.join(os.path.dirname(path), prepare_images_3dhp.MARKER)
    if os.path.exists(marker):
        return "delete %s (the folder is marked complete) and run %s" % (marker, command)
    return "make the crops with %s" % command


def read_crop(path, job, row):
    """The bytes (n,) uint8 of the crop JPEG `path` of row `row` of the job, after checking that
    it decodes to a 256x192 crop; ToolboxError naming the file otherwise."""
    problem = None
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        problem = "does not exist"
    else:
        image, problem = decode_image(data)
        if image is not None and image.shape != store.CROP_SHAPE:
            problem = "is %dx%d, not a %dx%d crop" % (image.shape[1], image.shape[0],
                                                     store.CROP_SHAPE[1], store.CROP_SHAPE[0])
        elif problem is not None:
            problem = "is damaged (%s)" % problem
    if problem is not None:
        raise tb.ToolboxError("crop %s %s (%s of %s); %s"
                              % (path, problem, job.labels.describe(row), job.labels_path,
                                 remake_hint(job.root, path)))
    return data


def copy_chunk(job):
    """Every crop file of `job`, checked; returns (split, index, store_build.jpeg_payload of the
    files' bytes in row order)."""
    files = [read_crop(os.path.join(job.root, job.labels.image_path(row)), job, row)
             for row in range(len(job.labels))]
    return job.split, job.index, store_build.jpeg_payload(files)


# ----------------------------------------------------------------------------------------------
# The build

def build_command(build, manifest):
    """The command that resumes this store (what the dataset's error message tells to run)."""
    parts = ["python", SCRIPT, "--root", os.path.abspath(build.root), "--out", build.out,
             "--splits"] + [split for split in LABEL_FILES if split in manifest["splits"]]
    return " ".join(shlex.quote(p) for p in parts)


def start_or_resume(build):
    """The manifest to build into: a new one, or the existing one (of this dataset)."""
    if not os.path.exists(store.manifest_path(build.out)):
        return store.new_manifest("jpeg", None, None, SOURCE, build.root, DATASET)
    try:
        return store.read_manifest(build.out, DATASET, MpiInf3dhpStoreDataset.BUILD_COMMAND)
    except store.StoreError as error:
        raise tb.ToolboxError("%s (building: choose another --out, or add --overwrite to start "
                              "the store at %s over)" % (error, build.out))


def prepare_store(build):
    """Build (or continue) the store under its lock; returns the manifest."""
    with store_build.building(build.out, build.overwrite, os.path.basename(SCRIPT),
                              build.splits):
        manifest = start_or_resume(build)
        jobs = []
        for split in build.splits:
            jobs += plan_split(build, manifest, split)
        manifest["command"] = build_command(build, manifest)
        return store_build.run_chunks(build.out, manifest, jobs, copy_chunk,
                                      store_build.append_jpegs, build.workers, build.max_chunks,
                                      "copying crops")


def main(argv=None):
    parser = tb.argument_parser(__doc__.split("\n")[0])
    parser.add_argument("--out", default="data/mpi_inf_3dhp_store", help="store folder to write")
    parser.add_argument("--splits", nargs="+", choices=tuple(LABEL_FILES),
                        default=list(LABEL_FILES),
                        help="splits to build (train: %s, val: %s)" % tuple(LABEL_FILES.values()))
    store_build.add_build_arguments(parser)
    args = parser.parse_args(argv)
    if args.verify:
        return store_build.verify(args.out, MpiInf3dhpStoreDataset)
    prepare_store(StoreBuild(root=args.root, out=args.out, splits=list(args.splits),
                             workers=args.workers, max_chunks=args.max_chunks,
                             overwrite=args.overwrite))


if __name__ == "__main__":
    tb.run_cli(main)
