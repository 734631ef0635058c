"""The pre-cropped frame store (`dataset.format: store`): 256x192 crops and columnar labels.

The reference decodes a ~1000x1000 JPEG per sample every epoch only to crop 256x192 from it, and
hands every DataLoader worker a list of ~2 million dicts. The store holds each sample's crop,
already made (docs/fidelity.md, "Crop"), and the labels as one array per field, in one HDF5
file per split. Each benchmark has its builder and its StoreDataset subclass: Human3.6M's
`H36M-Toolbox/prepare_store.py` and `mvn.human36m.dataset.Human36MStoreDataset` (the same samples
as the pkl path: identical tensors for raw crops made from the same images; JPEG crops differ by
a measured, tested amount), MPI-INF-3DHP's `MPI-INF-3DHP-Toolbox/prepare_store_3dhp.py` (the
prepared crop JPEGs' bytes, copied) and `mvn.mpi_inf_3dhp.dataset.MpiInf3dhpStoreDataset`. What
the builders share: `mvn.datasets.store_build`.

A store folder:
  manifest.json       the manifest (`new_manifest`, `new_split_entry` below), JSON:
                        version        STORE_VERSION
                        dataset        the benchmark's name (a StoreDataset's DATASET)
                        crop_shape     [height, width] of the crops (mvn.geometry.CROP_SHAPE)
                        format         "jpeg" or "raw"
                        jpeg_quality   1..100 (jpeg) or null
                        jpeg_chroma    "420" / "444" (jpeg) or null
                        source         "videos" or "images": where the crops were cut from
                                       ("crops": copied from the prepared crop files)
                        root           the toolbox root it was built from (absolute)
                        command        the command that builds / resumes this store
                        splits         {split: entry}; an entry:
                          file         "train.h5" / "val.h5"
                          labels       {path, size, sha256} of the label file it came from
                          rows         number of samples
                          bytes        jpeg: bytes of `frames` written so far
                          complete     every chunk done
                          chunks       [{name, start, stop, done}]: one per sequence folder,
                                       rows [start, stop), marked done once written
  train.h5, val.h5    one per split:
    labels/<field>    one dataset per field of the labels dataclass (LabelColumns,
                      MpiLabels), rows in label-file order
    frames            raw:  (N, 256, 192, 3) uint8 BGR crops, contiguous
                      jpeg: (total bytes,) uint8, the crops' JPEG files one after another
    frame_offset      jpeg only: (N,) int64, where row i's JPEG starts in `frames`
    frame_size        jpeg only: (N,) int64, its length in bytes
    frame_crc32       (N,) uint32, CRC32 (zlib.crc32) of row i's stored crop as the builder made
                      it (jpeg: its JPEG file; raw: its (256, 192, 3) array, C order): checked on
                      every read and by --verify, so a flipped bit in the file is an error naming
                      the row (bench/RESULTS.md: +3% on a JPEG sample read in-process, about
                      double for a raw one, whose 147 KB cost ~50 us)
"""
import dataclasses
import json
import os
import shlex
import zlib

import h5py
import numpy as np

from mvn import geometry
from mvn.datasets.label_files import LabelError
from mvn.datasets.labelled_crops import LabelledCropDataset
from mvn.images import FRAME_READ_FLAGS, decode_image

# 2: crops from the float64 label centre and scale; a label record column. 3: the manifest
# always names its dataset and records the crop shape. 4: a CRC32 per crop (frame_crc32).
STORE_VERSION = 4
VERSION_CHANGES = {3: "stores before version 4 keep no checksum per crop"}
MANIFEST_NAME = "manifest.json"
SPLIT_FILES = {"train": "train.h5", "val": "val.h5"}
FORMATS = ("jpeg", "raw")
CROP_SHAPE = geometry.CROP_SHAPE + (3,)  # (height, width, BGR) of a stored crop


class StoreError(LabelError):
    """A store that is missing, incomplete or inconsistent; says what and how to fix it."""


# ----------------------------------------------------------------------------------------------
# Manifest

def manifest_path(store_path):
    return os.path.join(store_path, MANIFEST_NAME)


def read_manifest(store_path, dataset, command):
    """The manifest dict of the store of `dataset` at `store_path`; StoreError if there is none
    (no store at `store_path`), it holds another dataset or crops of another size. `command`
    builds such a store (named in the errors)."""
    path = manifest_path(store_path)
    if not os.path.isfile(path):
        raise StoreError("no frame store at %s (%s missing): build it with `%s --root "
                         "<toolbox root> --out %s`, or set dataset.store_path"
                         % (store_path, MANIFEST_NAME, command, store_path))
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as error:
        raise StoreError("%s is not a store manifest (%s); rebuild the store with `%s --out %s "
                         "--overwrite`" % (path, error, command, store_path)) from None
    if manifest.get("version") != STORE_VERSION:
        rebuild = ("%s --out %s --overwrite" % (command, store_path)
                   if not isinstance(manifest.get("command"), str) or not manifest["command"]
                   else command_for(store_path, manifest, overwrite=True))
        why = VERSION_CHANGES.get(manifest.get("version"))
        raise StoreError("%s: store version %r, this code reads version %d%s; rebuild it with "
                         "`%s`" % (path, manifest.get("version"), STORE_VERSION,
                                   " (%s)" % why if why else "", rebuild))
    held = manifest.get("dataset")
    if held is None:
        raise StoreError("%s names no dataset: not a manifest this code wrote; rebuild the store "
                         "with `%s --out %s --overwrite`" % (path, command, store_path))
    if held != dataset:
        raise StoreError("the store at %s holds %s frames, not %s: set dataset.store_path to a "
                         "store built by `%s`" % (store_path, held, dataset, command))
    crop_shape = tuple(manifest.get("crop_shape", ()))
    if crop_shape != geometry.CROP_SHAPE:
        raise StoreError("the store at %s holds %s crops, this code makes %dx%d crops "
                         "(mvn.geometry.CROP_SHAPE); rebuild it with `%s --out %s --overwrite`"
                         % (store_path, "x".join(map(str, crop_shape)) or "unsized",
                            geometry.CROP_SHAPE[0], geometry.CROP_SHAPE[1], command, store_path))
    return manifest


def new_manifest(format, jpeg_quality, jpeg_chroma, source, root, dataset):
    """A manifest of `dataset`'s store with no split yet (schema: the module docstring)."""
    return {"version": STORE_VERSION, "dataset": dataset, "crop_shape": list(geometry.CROP_SHAPE),
            "format": format, "jpeg_quality": jpeg_quality, "jpeg_chroma": jpeg_chroma,
            "source": source, "root": os.path.abspath(root), "command": "", "splits": {}}


def new_split_entry(split, labels_info, rows, sequence_runs):
    """A split's manifest entry, nothing written yet: `labels_info` {path, size, sha256},
    `sequence_runs` [(folder, start, stop)] of its rows."""
    return {"file": SPLIT_FILES[split], "labels": labels_info, "rows": rows, "bytes": 0,
            "complete": False,
            "chunks": [{"name": name, "start": start, "stop": stop, "done": False}
                       for name, start, stop in sequence_runs]}


def write_manifest(store_path, manifest):
    """Write the manifest atomically (temporary file + rename): a kill never tears it."""
    path = manifest_path(store_path)
    with open(path + ".tmp", "w") as f:
        json.dump(manifest, f, indent=1)
    os.replace(path + ".tmp", path)


def command_for(store_path, manifest, overwrite=False):
    """The manifest's build command aimed at the store actually being read (it may have been
    moved since), optionally with --overwrite. The builders record it when they start."""
    parts = shlex.split(manifest["command"])
    if "--out" in parts and parts.index("--out") + 1 < len(parts):
        parts[parts.index("--out") + 1] = store_path
    else:
        parts += ["--out", store_path]
    return " ".join(shlex.quote(p) for p in parts + (["--overwrite"] if overwrite else []))


def rebuild_split_command(store_path, manifest, split):
    """The manifest's build command that builds only `split` of the store at `store_path` again
    (`--splits SPLIT --overwrite`: a builder's --overwrite starts over only the splits it is
    given, so the advice for a damaged split never deletes an intact one)."""
    parts = shlex.split(command_for(store_path, manifest))
    if "--splits" in parts:
        first = parts.index("--splits") + 1
        last = first
        while last < len(parts) and not parts[last].startswith("--"):
            last += 1
        parts[first:last] = [split]
    else:
        parts += ["--splits", split]
    return " ".join(shlex.quote(p) for p in parts + ["--overwrite"])


def unfinished_chunks(split_entry):
    """Names of the chunks (sequences) of a manifest split entry that are not written yet."""
    return [chunk["name"] for chunk in split_entry["chunks"] if not chunk["done"]]


def check_split(manifest, split, store_path):
    """The manifest entry of `split`, after checking that the split is there and complete."""
    entry = manifest["splits"].get(split)
    if entry is None:
        raise StoreError("the store at %s has no '%s' split (it has: %s); build it with `%s "
                         "--splits %s`" % (store_path, split, ", ".join(manifest["splits"]) or
                                           "none", command_for(store_path, manifest), split))
    missing = unfinished_chunks(entry)
    if missing:
        shown = ", ".join(missing[:4]) + (", ..." if len(missing) > 4 else "")
        raise StoreError("the store at %s is incomplete: split '%s' lacks %d of %d chunks (%s); "
                         "resume the build with `%s`" % (store_path, split, len(missing),
                                                         len(entry["chunks"]), shown,
                                                         command_for(store_path, manifest)))
    return entry


# ----------------------------------------------------------------------------------------------
# Labels as HDF5 columns

def write_label_columns(group, columns):
    """One dataset per field of the labels dataclass `columns` (LabelColumns, MpiLabels) under
    `group` (an h5py Group)."""
    for name in columns.__dataclass_fields__:
        if getattr(columns, name) is not None:  # an optional column the labels lack
            group.create_dataset(name, data=getattr(columns, name))


def read_label_columns(group, kind):
    """The labels dataclass `kind` from the datasets `write_label_columns` wrote (read whole, one
    array each)."""
    fields = kind.__dataclass_fields__
    # optional columns (a default, e.g. the ground-truth 2D joints) may be absent
    required = [name for name, field in fields.items() if field.default is dataclasses.MISSING]
    missing = [name for name in required if name not in group]
    if missing:
        raise StoreError("%s lacks the label columns %s; rebuild the store"
                         % (group.file.filename, ", ".join(missing)))
    return kind(**{name: group[name][()] for name in fields if name in group})


# ----------------------------------------------------------------------------------------------
# Frames

def damaged_crop(where, problem, store_path, command, rebuild):
    """The StoreError of a stored crop that is damaged: `where` names the row, `command` the
    store's builder, `rebuild` the command that builds its split again."""
    return StoreError("%s: the stored crop is damaged (%s); check the store with `%s --out %s "
                      "--verify` and rebuild the split with `%s`"
                      % (where, problem, command, store_path, rebuild))


def crop_crc32(crop):
    """CRC32 of a stored crop: a JPEG's (n,) uint8 bytes, or a raw (256, 192, 3) uint8 array."""
    return zlib.crc32(np.ascontiguousarray(crop))


def decode_jpeg(data, where, store_path, command, rebuild):
    """(bytes,) uint8 JPEG -> (256, 192, 3) uint8 BGR, checked (mvn.images: a truncated crop or
    one libjpeg calls corrupt is an error, not a grey one), decoded as the pkl path reads a file;
    `where` names the row in errors, `command` the store's builder, `rebuild` the command that
    builds the row's split again."""
    image, problem = decode_image(data, FRAME_READ_FLAGS)
    if image is not None and image.shape != CROP_SHAPE:
        problem = "a %dx%d image, not a %dx%d crop" % (image.shape[:2] + CROP_SHAPE[:2])
    if problem is not None:
        raise damaged_crop(where, problem, store_path, command, rebuild)
    return image


class StoreDataset(LabelledCropDataset):
    """Samples of one split of a frame store: the same keys, dtypes and order as the pkl path.
    Subclasses name the dataset (DATASET, the manifest's), its labels dataclass (LABELS) and
    the command that builds its store (BUILD_COMMAND).

    The HDF5 file is opened lazily in each process that reads frames (an h5py handle must not
    cross a fork), so the dataset can be handed to DataLoader workers as it is."""

    DATASET = None
    LABELS = None
    BUILD_COMMAND = None

    def __init__(self, store_path, split, frame_stride=1, check_crops=True):
        """`check_crops`: compare each crop read with its CRC32 (False: only to measure what the
        check costs, bench/bench_data.py)."""
        manifest = read_manifest(store_path, self.DATASET, self.BUILD_COMMAND)
        entry = check_split(manifest, split, store_path)
        self.store_path = store_path
        self.split = split
        self.check_crops = check_crops
        self.rebuild_command = rebuild_split_command(store_path, manifest, split)
        self.format = manifest["format"]
        self.path = os.path.join(store_path, entry["file"])
        if not os.path.isfile(self.path):
            raise StoreError("%s is missing although the manifest lists it; rebuild the split "
                             "with `%s`" % (self.path, self.rebuild_command))
        try:
            with h5py.File(self.path, "r") as f:
                columns = read_label_columns(f["labels"], self.LABELS)
                self.frame_crc32 = f["frame_crc32"][()]        # (N,) uint32
                if self.format == "jpeg":
                    self.frame_offset = f["frame_offset"][()]  # (N,) int64
                    self.frame_size = f["frame_size"][()]      # (N,) int64
        except (OSError, KeyError) as error:  # not HDF5, torn by a kill, or a dataset missing
            raise StoreError("cannot read %s (%s); rebuild the split with `%s`"
                             % (self.path, error, self.rebuild_command)) from None
        if len(columns) != entry["rows"]:
            raise StoreError("%s holds %d label rows but its manifest says %d; rebuild the split "
                             "with `%s`" % (self.path, len(columns), entry["rows"],
                                            self.rebuild_command))
        self.rows = np.arange(0, len(columns), frame_stride)  # store row of each sample
        self.labels = columns.subset(self.rows) if frame_stride > 1 else columns
        self._file, self._frames_dataset, self._pid = None, None, None

    def __getstate__(self):
        state = dict(self.__dict__)
        state.update(_file=None, _frames_dataset=None, _pid=None)  # opened again where unpickled
        return state

    def _frames(self):
        """The `frames` dataset, opened once per process (no chunk cache: reads are random)."""
        if self._frames_dataset is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r", rdcc_nbytes=0)
            self._frames_dataset = self._file["frames"]
            self._pid = os.getpid()
        return self._frames_dataset

    def load_crop(self, index):
        """(256, 192, 3) uint8 BGR crop of sample `index`, checked against its CRC32."""
        row = self.rows[index]
        frames = self._frames()
        if self.format == "raw":
            crop = frames[row]
        else:
            start = self.frame_offset[row]
            crop = frames[start:start + self.frame_size[row]]
        if self.check_crops and crop_crc32(crop) != self.frame_crc32[row]:
            raise damaged_crop(self.where(index), "its bytes do not match the CRC32 recorded "
                               "when it was built", self.store_path, self.BUILD_COMMAND,
                               self.rebuild_command)
        if self.format == "raw":
            return crop
        return decode_jpeg(crop, self.where(index), self.store_path, self.BUILD_COMMAND,
                           self.rebuild_command)

    def where(self, index):
        """Sample `index`'s row in the split file, in words (for errors)."""
        return "%s row %d (%s)" % (self.path, self.rows[index], self.describe(index))

    def describe(self, index):
        """Sample `index` in words, for errors."""
        raise NotImplementedError
