"""Writing a frame store (layout: mvn.datasets.store): what both builders share,
H36M-Toolbox/prepare_store.py and MPI-INF-3DHP-Toolbox/prepare_store_3dhp.py.

A build runs inside `building` (a lock on the folder; --overwrite and a killed build's leftovers
handled), plans its splits (`split_entry`: the split file checked or created, one chunk per
sequence) and hands the chunks still to do to `run_chunks`: worker processes make each chunk's
crops, and each finished chunk is written and flushed before the manifest marks it done, so a
build that was interrupted continues where it stopped when run again.
"""
import contextlib
import errno
import fcntl
import glob
import hashlib
import json
import os
import time

import h5py
import numpy as np

from mvn import toolbox
from mvn.datasets import store
from mvn.datasets.store import StoreError

LOCK_NAME = ".build.lock"        # held by the running build (fcntl), never suggests --overwrite
JPEG_CHUNK_BYTES = 1 << 20       # HDF5 chunk of the JPEG byte stream
# Free space kept beyond a chunk's bytes before writing it: HDF5 rounds the JPEG stream up to
# whole chunks and writes metadata. A write that hits a full disk inside HDF5 leaves a file that
# HDF5 cannot close: the error line is printed, then the interpreter crashes at exit (tried on a
# 3 MB tmpfs: exit 139). So the space is checked before each chunk; only a disk filled by
# another process between the check and the write still ends that way.
WRITE_MARGIN_BYTES = 4 * JPEG_CHUNK_BYTES


def file_info(path):
    """Size and sha256 of a label file (recorded in the manifest, checked on resume)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 23), b""):
            digest.update(block)
    return {"path": os.path.abspath(path), "size": os.path.getsize(path),
            "sha256": digest.hexdigest()}


def labels_change(manifest, split, info):
    """'<label file> changed since ...' if the label file `info` (file_info) differs from the one
    the manifest's `split` was started from, else None."""
    entry = manifest["splits"].get(split)
    if entry is None or entry["labels"]["sha256"] == info["sha256"]:
        return None
    return "%s changed since the store's '%s' split was started (sha256 differs)" % (
        info["path"], split)


def start_over_command(out, manifest, split):
    """The manifest's build command that builds `split` of the store at `out` again (--splits
    SPLIT --overwrite: its other splits are kept)."""
    return store.rebuild_split_command(out, manifest, split)


def add_build_arguments(parser):
    """The options every store builder has (beside --root, --out, --workers): --max-chunks,
    --overwrite, --verify."""
    parser.add_argument("--max-chunks", type=int,
                        help="stop after this many chunks (build a big store in several runs)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start the splits given by --splits over (the others are kept)")
    parser.add_argument("--verify", action="store_true",
                        help="only check that the store at --out is complete, readable and matches "
                             "its checksums")


# ----------------------------------------------------------------------------------------------
# The folder

@contextlib.contextmanager
def build_lock(out, script):
    """Hold the store's lock file for the whole build: a second build on the same folder refuses
    at once instead of writing into the same files (`script` names the builder in the message)."""
    path = os.path.join(out, LOCK_NAME)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError("another %s build is running on %s (it holds %s); wait for it to "
                             "finish, then run this command again" % (script, out, path)) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def remove_splits(out, splits):
    """--overwrite: the files of `splits` and their manifest entries removed, the other splits
    kept; the whole store (manifest included) when no other split is left or the manifest is not
    one this code reads."""
    try:
        with open(store.manifest_path(out)) as f:
            manifest = json.load(f)
        kept = {split: entry for split, entry in manifest["splits"].items()
                if split not in splits} if manifest.get("version") == store.STORE_VERSION else {}
    except (OSError, ValueError, AttributeError, KeyError, TypeError):  # none, or not ours
        kept = {}
    removed = splits if kept else list(store.SPLIT_FILES)
    for name in [store.SPLIT_FILES[split] for split in removed] + (
            [] if kept else [store.MANIFEST_NAME]):
        if os.path.exists(os.path.join(out, name)):
            os.remove(os.path.join(out, name))
    if kept:
        manifest["splits"] = kept
        store.write_manifest(out, manifest)


@contextlib.contextmanager
def building(out, overwrite, script, splits):
    """The build's context: `out` made, its lock held; with `overwrite` the splits `splits`
    there removed (remove_splits); the temporary files a killed build left behind removed."""
    os.makedirs(out, exist_ok=True)
    with build_lock(out, script):
        if overwrite:
            remove_splits(out, splits)
        for stale in glob.glob(os.path.join(glob.escape(out), ".part-*.npy")) + glob.glob(
                os.path.join(glob.escape(out), "*.tmp")):
            os.remove(stale)
        yield


# ----------------------------------------------------------------------------------------------
# The split files

def create_split_file(path, columns, fmt):
    """A split's HDF5 file: the label columns (a labels dataclass), and room for the frames and
    their checksums."""
    rows = len(columns)
    with h5py.File(path, "w") as f:
        store.write_label_columns(f.create_group("labels"), columns)
        f.create_dataset("frame_crc32", (rows,), np.uint32)
        if fmt == "raw":
            # Contiguous and allocated now (never filled): writing a chunk's crops then touches
            # no HDF5 metadata, so a build killed mid-write leaves a readable file.
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
            f.create_dataset("frames", (rows,) + store.CROP_SHAPE, np.uint8, dcpl=dcpl,
                             fill_time="never")
        else:
            f.create_dataset("frames", (0,), np.uint8, maxshape=(None,),
                             chunks=(JPEG_CHUNK_BYTES,))
            f.create_dataset("frame_offset", (rows,), np.int64)
            f.create_dataset("frame_size", (rows,), np.int64)


def open_split_file(path, command):
    """The split file `path`, open for writing; `command` builds its split again."""
    try:
        return h5py.File(path, "r+")
    except OSError as error:
        raise StoreError("cannot open %s (%s): it was torn, perhaps by a kill during a write or "
                         "a full disk; build this split again with `%s`" % (path, error, command))


def check_split_file(path, entry, fmt, command):
    """A split file that a rerun continues must be whole as far as its manifest says: readable,
    with its rows, and (jpeg) the bytes written so far. `command` builds its split again."""
    try:
        with h5py.File(path, "r") as f:
            rows = len(f["labels"]["record"])
            written = len(f["frames"]) if fmt == "jpeg" else rows
    except (OSError, KeyError) as error:
        problem = "unreadable (%s)" % error
    else:
        problem = None
        if rows != entry["rows"]:
            problem = "%d label rows, the manifest says %d" % (rows, entry["rows"])
        elif written < entry["bytes"]:
            problem = "%d bytes of crops, the manifest says %d" % (written, entry["bytes"])
    if problem is not None:
        raise StoreError("%s is damaged: %s; build this split again with `%s`"
                         % (path, problem, command))


def split_entry(out, manifest, split, labels_info, columns, runs):
    """The manifest entry of `split`: on a rerun, after checking its file; else a new entry and
    file from `columns` (a labels dataclass), one chunk per (name, start, stop) of `runs`."""
    path = os.path.join(out, store.SPLIT_FILES[split])
    entry = manifest["splits"].get(split)
    if entry is not None and os.path.isfile(path):
        check_split_file(path, entry, manifest["format"],
                         start_over_command(out, manifest, split))
        return entry
    create_split_file(path, columns, manifest["format"])
    entry = store.new_split_entry(split, labels_info, len(columns), runs)
    manifest["splits"][split] = entry
    return entry


def jpeg_payload(encoded):
    """A chunk's JPEG files (a list of bytes or (n,) uint8 arrays, in row order) -> the payload
    append_jpegs takes: (sizes (n,) int64, data (total,) uint8, CRC32s (n,) uint32), the
    checksums made where the crops are made."""
    sizes = np.array([len(e) for e in encoded], dtype=np.int64)
    crcs = np.array([store.crop_crc32(np.frombuffer(e, np.uint8)) for e in encoded], np.uint32)
    data = np.frombuffer(b"".join(bytes(e) for e in encoded), dtype=np.uint8)
    return sizes, data, crcs


def append_jpegs(f, entry, chunk, payload):
    """Append a finished chunk's JPEG files, payload (jpeg_payload), to the split file `f` as
    rows chunk['start']:['stop']."""
    sizes, data, crcs = payload
    start, stop = chunk["start"], chunk["stop"]
    f["frame_crc32"][start:stop] = crcs
    offset = entry["bytes"]
    f["frames"].resize((offset + len(data),))
    f["frames"][offset:] = data
    f["frame_offset"][start:stop] = offset + np.cumsum(sizes) - sizes
    f["frame_size"][start:stop] = sizes
    entry["bytes"] = offset + len(data)


# ----------------------------------------------------------------------------------------------
# The build

def write_failed(out, manifest, error):
    """The StoreError of a write into the store at `out` that failed with the OSError `error`
    (a full disk, a quota): what is kept and the command that continues the build."""
    full = error.errno in (errno.ENOSPC, errno.EDQUOT)
    return StoreError("writing the store at %s failed: %s; the chunks marked done are kept: %s "
                      "and run `%s` to continue (a split file this left unreadable is named then, "
                      "with the command that builds that split again)"
                      % (out, error, "free disk space" if full else "fix this", manifest["command"]
                         or "the same command"))


def free_bytes(path):
    """Bytes free for an unprivileged writer on the file system of `path`."""
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def payload_bytes(payload):
    """Bytes a chunk's payload adds to its split file (jpeg: its JPEG stream; raw: its crops)."""
    first = payload[0]
    if isinstance(first, str):                   # raw: the .npy file of the crops
        return len(payload[1]) * int(np.prod(store.CROP_SHAPE))
    return int(payload[1].nbytes)                # jpeg: (sizes, data, crcs)


def check_free_space(out, manifest, split, chunk, payload):
    """StoreError before a chunk is written if the disk cannot hold it (its bytes and a
    margin): the write never fails inside HDF5."""
    needed = payload_bytes(payload) + WRITE_MARGIN_BYTES
    free = free_bytes(out)
    if free < needed:
        raise StoreError("not enough free disk space for the store at %s: chunk %s of the '%s' "
                         "split needs about %.1f MB, %.1f MB are free; the chunks marked done "
                         "are kept: free disk space and run `%s` to continue"
                         % (out, chunk["name"], split, needed / 1e6, free / 1e6,
                            manifest["command"] or "the same command"))


def run_chunks(out, manifest, jobs, work, write, workers, max_chunks, description):
    """Record the manifest as planned, then do `jobs` (the first `max_chunks` of them, if given):
    `work(job)` -> (split, index, payload) in `workers` processes, `write(f, entry, chunk,
    payload)` into the split file, flushed before the chunk is marked done. Returns the manifest.
    A write that fails (a full disk) is a StoreError saying how to continue."""
    try:
        return _run_chunks(out, manifest, jobs, work, write, workers, max_chunks, description)
    except OSError as error:  # raised by a write, a flush or the closing of a split file
        raise write_failed(out, manifest, error) from None


def _run_chunks(out, manifest, jobs, work, write, workers, max_chunks, description):
    store.write_manifest(out, manifest)
    jobs = jobs if max_chunks is None else jobs[:max_chunks]
    start, frames = time.time(), 0
    with contextlib.ExitStack() as files:
        opened = {}
        for split in dict.fromkeys(job.split for job in jobs):
            opened[split] = files.enter_context(open_split_file(
                os.path.join(out, store.SPLIT_FILES[split]),
                start_over_command(out, manifest, split)))
            if manifest["format"] == "jpeg":                  # drop a tail a kill left behind
                opened[split]["frames"].resize((manifest["splits"][split]["bytes"],))
        for split, index, payload in toolbox.parallel_map(work, jobs, workers, description):
            entry = manifest["splits"][split]
            chunk = entry["chunks"][index]
            check_free_space(out, manifest, split, chunk, payload)
            write(opened[split], entry, chunk, payload)
            opened[split].flush()                            # the data first, then the record
            chunk["done"] = True
            entry["complete"] = not store.unfinished_chunks(entry)
            store.write_manifest(out, manifest)
            frames += chunk["stop"] - chunk["start"]
    report(out, manifest, frames, time.time() - start)
    return manifest


def report(out, manifest, frames_written, seconds):
    for split, entry in manifest["splits"].items():
        left = store.unfinished_chunks(entry)
        size = ""
        if not left:
            per_frame = os.path.getsize(os.path.join(out, entry["file"])) / max(entry["rows"], 1)
            size = ", %.1f KB per frame (file)" % (per_frame / 1000)
        print("%s: %d rows, %d/%d chunks done%s" % (split, entry["rows"],
                                                   len(entry["chunks"]) - len(left),
                                                   len(entry["chunks"]), size))
    print("wrote %d frames in %.1f s (%.0f frames/s) to %s"
          % (frames_written, seconds, frames_written / max(seconds, 1e-9), out))
    if any(store.unfinished_chunks(e) for e in manifest["splits"].values()):
        print("the store is incomplete; continue it with: %s" % manifest["command"])


def verify(out, dataset_class):
    """Check the store of `dataset_class` (a store.StoreDataset) at `out`: its manifest, each
    split's label file (where it still is) unchanged, every stored crop matching its CRC32 and
    decodable; StoreError naming what is wrong."""
    manifest = store.read_manifest(out, dataset_class.DATASET, dataset_class.BUILD_COMMAND)
    for split, entry in manifest["splits"].items():
        labels = entry["labels"]["path"]
        changed = os.path.isfile(labels) and labels_change(manifest, split, file_info(labels))
        if changed:
            raise StoreError("%s: rebuild the split with `%s`"
                             % (changed, store.rebuild_split_command(out, manifest, split)))
        try:
            dataset = dataset_class(out, split)
            for index in range(len(dataset)):
                dataset.load_crop(index)
        except OSError as error:
            raise StoreError("%s: %s; rebuild the split with `%s`"
                             % (out, error, store.rebuild_split_command(out, manifest, split))
                             ) from None
        print("%s: %d frames, complete, readable and matching their checksums"
              % (split, len(dataset)))
