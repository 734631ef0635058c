"""Build the pre-cropped frame store: per split, the 256x192 crops and the labels as columns.

Reads the videos directly (no full-frame JPEG stage) or an existing images/ folder, crops every
labelled frame exactly as the training would (mvn.geometry.crop_image with the record's center
and scale) and writes one HDF5 file per split plus manifest.json (layout: mvn/datasets/store.py).
Crops are stored as JPEG (quality 95; bench/RESULTS.md: 14 KB per crop, decoded ~13x faster
than a full frame is decoded and warped) or raw uint8 (identical to the pkl path's crops when
built from the same images). The work runs in chunks, one per sequence, in parallel; the
manifest records the finished ones, so a build that was interrupted (or stopped by
--max-chunks) continues where it stopped when run again.

  python prepare_store.py --root DIR --out data/h36m_store [--format jpeg|raw] [--quality 95]
                          [--chroma 420|444] [--source auto|videos|images] [--splits train val]
                          [--workers N] [--max-chunks K] [--overwrite]
  python prepare_store.py --out data/h36m_store --verify
"""
import contextlib
import fcntl
import glob
import hashlib
import os
import shlex
import time
from dataclasses import dataclass

import cv2
import h5py
import numpy as np

import h36m_toolbox as tb
from mvn import geometry, h36m
from mvn.datasets import store
from mvn.images import ImageError, read_frame_bgr
from mvn.datasets.labels import LabelError, load_label_columns

DEFAULT_QUALITY = 95
LOCK_NAME = ".build.lock"        # held by the running build (fcntl), never suggests --overwrite
JPEG_CHUNK_BYTES = 1 << 20       # HDF5 chunk of the JPEG byte stream
COPY_ROWS = 256                  # raw crops copied into the store this many at a time


@dataclass
class ChunkJob:
    """One sequence's rows of a split: where its frames come from and how to store the crops."""
    split: str
    index: int                   # chunk index in the split's manifest entry
    name: str                    # image folder of the sequence, e.g. s_01_act_02_subact_01_ca_01
    source: str                  # "videos" or "images"
    path: str                    # the video file, or the images root
    image_names: np.ndarray      # (n,) bytes, paths relative to the images root
    records: np.ndarray          # (n,) int64, their records in the label file
    frames: np.ndarray           # (n,) int64, 1-based frame numbers
    centers: np.ndarray          # (n, 2) float64, as in the labels
    scales: np.ndarray           # (n, 2) float64
    format: str                  # "jpeg" or "raw"
    quality: int
    chroma: str                  # JPEG chroma subsampling, "420" or "444"
    part_path: str               # raw: the temporary .npy the worker fills


@dataclass
class StoreBuild:
    """What to build: the parameters of one prepare_store run (main() fills it from the
    command line; the functions below take it instead of the argparse namespace)."""
    root: str                    # the toolbox root (videos under extracted/)
    out: str                     # the store folder
    format: str                  # "jpeg" or "raw"
    quality: int                 # JPEG quality 1..100
    chroma: str                  # JPEG chroma subsampling, "420" or "444"
    source: str                  # "auto", "videos" or "images"
    splits: list                 # e.g. ["train", "val"]
    labels: dict                 # split -> label file path
    images: str                  # the full-frame images folder
    workers: int
    max_chunks: int = None       # stop after this many chunks
    overwrite: bool = False      # start the store over


# ----------------------------------------------------------------------------------------------
# Planning: label rows -> chunks

def sequence_runs(image_names):
    """(N,) bytes 'folder/folder_NNNNNN.jpg' -> [(folder, start, stop)], runs of one folder."""
    folders = np.char.partition(image_names, b"/")[:, 0]                  # (N,)
    starts = np.flatnonzero(np.r_[True, folders[1:] != folders[:-1]])
    stops = np.r_[starts[1:], len(folders)]
    return [(folders[a].decode(), int(a), int(b)) for a, b in zip(starts, stops)]


def video_of(root, folder):
    """The video an image folder was extracted from (1-based camera in the folder name)."""
    parsed = h36m.parse_sequence_name(folder)
    if parsed is None:
        raise tb.ToolboxError("label image folder %r is not s_SS_act_AA_subact_BB_ca_CC: these "
                              "labels do not name Human3.6M frames; use --source images" % folder)
    return tb.Sequence(*parsed).video_path(root)


def file_info(path):
    """Size and sha256 of a label file (recorded in the manifest, checked on resume)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 23), b""):
            digest.update(block)
    return {"path": os.path.abspath(path), "size": os.path.getsize(path),
            "sha256": digest.hexdigest()}


# ----------------------------------------------------------------------------------------------
# Workers: decode, crop, encode one chunk

def video_frames(video_path, frames):
    """Decode the video once, in order; yield (row position, BGR frame) per wanted frame."""
    capture = cv2.VideoCapture(video_path)
    if not capture.isOpened():
        raise tb.ToolboxError("OpenCV cannot open the video %s: is it a complete mp4 file? "
                              "Re-extract it from the archive" % video_path)
    try:
        number, frame = 0, None                       # frames decoded so far, the last one
        for position in np.argsort(frames, kind="stable"):
            target = frames[position]
            while number < target - 1:                # skip unlabelled frames without converting
                if not capture.grab():
                    break
                number += 1
            if number < target:
                ok, frame = capture.read()
                number += 1 if ok else 0
            if number < target:
                raise tb.ToolboxError("%s has %d frames but the labels name frame %d: the labels "
                                      "do not belong to this video (or it is truncated)"
                                      % (video_path, number, target))
            yield position, frame
    finally:
        capture.release()


def image_frames(images_root, image_names, records):
    """Yield (row position, BGR frame) read from the extracted full-frame JPEGs, each checked
    (a missing, truncated or corrupt frame stops the build, naming it and its label record)."""
    for position, name in enumerate(image_names):
        path = os.path.join(images_root, name.decode())
        try:
            image = read_frame_bgr(path)
        except ImageError as error:
            raise tb.ToolboxError("%s (record %d of the labels): re-run video_to_images.py for "
                                  "it, or use --source videos" % (error, records[position]))
        yield position, image


def encode_jpeg(crop, quality, chroma):
    """(256, 192, 3) uint8 -> JPEG bytes. Chroma 420 (libjpeg's default) decodes ~20% faster
    than 444, which is ~15% larger and about halves the largest colour errors."""
    sampling = {"420": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
                "444": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444}[chroma]
    ok, data = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, quality,
                                           cv2.IMWRITE_JPEG_SAMPLING_FACTOR, sampling])
    if not ok:
        raise tb.ToolboxError("OpenCV could not encode a JPEG (quality %d)" % quality)
    return data.tobytes()


def build_chunk(job):
    """Crop every row of `job`; returns (split, index, payload).

    payload: raw -> the .npy file (n, 256, 192, 3) written (big chunks never cross a pipe);
    jpeg -> (sizes (n,) int64, data (total,) uint8), the JPEGs one after another."""
    n = len(job.frames)
    if job.source == "videos":
        frames = video_frames(job.path, job.frames)
    else:
        frames = image_frames(job.path, job.image_names, job.records)
    if job.format == "raw":
        crops = np.lib.format.open_memmap(job.part_path, mode="w+", dtype=np.uint8,
                                          shape=(n,) + store.CROP_SHAPE)
    else:
        encoded = [b""] * n
    for position, image in frames:
        crop = geometry.crop_image(image, job.centers[position], job.scales[position])
        if job.format == "raw":
            crops[position] = crop
        else:
            encoded[position] = encode_jpeg(crop, job.quality, job.chroma)
    if job.format == "raw":
        crops.flush()
        del crops
        return job.split, job.index, job.part_path
    sizes = np.array([len(e) for e in encoded], dtype=np.int64)
    return job.split, job.index, (sizes, np.frombuffer(b"".join(encoded), dtype=np.uint8))


# ----------------------------------------------------------------------------------------------
# The store files

def create_split_file(path, columns, fmt):
    """A split's HDF5 file: the label columns, and room for the frames."""
    rows = len(columns)
    with h5py.File(path, "w") as f:
        store.write_label_columns(f.create_group("labels"), columns)
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


def open_split_file(path, out):
    try:
        return h5py.File(path, "r+")
    except OSError as error:
        raise tb.ToolboxError("cannot open %s (%s): it was torn, perhaps by a kill during a "
                              "write; start this store over with `%s --out %s --overwrite`"
                              % (path, error, store.BUILD_COMMAND, out))


def check_split_file(path, entry, fmt, out):
    """A split file that a rerun continues must be whole as far as its manifest says: readable,
    with its rows, and (jpeg) the bytes written so far."""
    try:
        with h5py.File(path, "r") as f:
            rows = len(f["labels"]["image"])
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
        raise tb.ToolboxError("%s is damaged: %s; start this store over with `%s --out %s "
                              "--overwrite`" % (path, problem, store.BUILD_COMMAND, out))


def write_chunk(f, entry, chunk, payload, fmt):
    """Put a finished chunk's crops into the split file `f` (rows chunk['start']:['stop'])."""
    start, stop = chunk["start"], chunk["stop"]
    if fmt == "raw":
        part = np.load(payload, mmap_mode="r")                              # (n, 256, 192, 3)
        for a in range(0, len(part), COPY_ROWS):
            f["frames"][start + a:start + a + len(part[a:a + COPY_ROWS])] = part[a:a + COPY_ROWS]
        del part
        os.remove(payload)
        return
    sizes, data = payload
    offset = entry["bytes"]
    f["frames"].resize((offset + len(data),))
    f["frames"][offset:] = data
    f["frame_offset"][start:stop] = offset + np.cumsum(sizes) - sizes
    f["frame_size"][start:stop] = sizes
    entry["bytes"] = offset + len(data)


# ----------------------------------------------------------------------------------------------
# The build

def resolve_source(source, images_root):
    if source == "auto":
        return "images" if os.path.isdir(images_root) else "videos"
    if source == "images" and not os.path.isdir(images_root):
        raise tb.ToolboxError("--source images: %s does not exist; run video_to_images.py, or "
                              "use --source videos" % images_root)
    return source


def build_command(build, manifest):
    """The command that resumes this store (what the dataset's error message tells to run)."""
    parts = ["python", "H36M-Toolbox/prepare_store.py", "--root", build.root, "--out", build.out,
             "--format", manifest["format"], "--source", manifest["source"]]
    if manifest["format"] == "jpeg":
        parts += ["--quality", str(manifest["jpeg_quality"]), "--chroma", manifest["jpeg_chroma"]]
    parts += ["--splits"] + sorted(manifest["splits"], reverse=True)  # train before val
    for split, entry in sorted(manifest["splits"].items()):
        default_labels = os.path.abspath(os.path.join(build.root, h36m.LABEL_FILES[split]))
        if entry["labels"]["path"] != default_labels:
            parts += ["--%s-labels" % split, entry["labels"]["path"]]
    if manifest["source"] == "images" and build.images != os.path.join(build.root, "images"):
        parts += ["--images", build.images]
    return " ".join(shlex.quote(p) for p in parts)


def start_or_resume(build, source):
    """The manifest to build into: a new one, or the existing one after checking it fits."""
    quality, chroma = (build.quality, build.chroma) if build.format == "jpeg" else (None, None)
    if not os.path.exists(store.manifest_path(build.out)):
        return store.new_manifest(build.format, quality, chroma, source, build.root)
    try:
        manifest = store.read_manifest(build.out)
    except store.StoreError as error:
        raise tb.ToolboxError("%s (the store at %s)" % (error, build.out))
    started = (manifest["format"], manifest["jpeg_quality"], manifest["jpeg_chroma"],
               manifest["source"])
    if started != (build.format, quality, chroma, source):
        raise tb.ToolboxError("the store at %s was started with --format %s --quality %s "
                              "--chroma %s --source %s: rerun with those options to continue "
                              "it, or add --overwrite to start it over" % ((build.out,) + started))
    return manifest


def plan_split(build, manifest, split, source):
    """Make sure the split has its file and manifest entry; returns its jobs still to do."""
    labels_path = build.labels[split]
    try:
        columns = load_label_columns(labels_path)
    except LabelError as error:
        raise tb.ToolboxError(str(error))
    info = file_info(labels_path)
    path = os.path.join(build.out, store.SPLIT_FILES[split])
    entry = manifest["splits"].get(split)
    if entry is not None and entry["labels"]["sha256"] != info["sha256"]:
        raise tb.ToolboxError("%s changed since the store's '%s' split was started (sha256 "
                              "differs): add --overwrite to rebuild the store from it"
                              % (labels_path, split))
    if entry is not None and os.path.isfile(path):
        check_split_file(path, entry, build.format, build.out)
    if entry is None or not os.path.isfile(path):
        create_split_file(path, columns, build.format)
        entry = store.new_split_entry(split, info, len(columns), sequence_runs(columns.image))
        manifest["splits"][split] = entry
    frames = h36m.frame_numbers(columns.image)
    jobs = []
    for index, chunk in enumerate(entry["chunks"]):
        if chunk["done"]:
            continue
        rows = slice(chunk["start"], chunk["stop"])
        where = video_of(build.root, chunk["name"]) if source == "videos" else build.images
        if source == "videos" and not os.path.isfile(where):
            raise tb.ToolboxError("%s: video %s not found (chunk %s of the '%s' split); extract "
                                  "it (see H36M-Toolbox/README.md) or use --source images"
                                  % (chunk["name"], where, chunk["name"], split))
        part = os.path.join(build.out, ".part-%s-%06d.npy" % (split, index))
        jobs.append(ChunkJob(split, index, chunk["name"], source, where, columns.image[rows],
                             columns.record[rows], frames[rows], columns.center[rows],
                             columns.scale[rows],
                             build.format, build.quality, build.chroma, part))
    return jobs


def remove_store(out):
    for name in [store.MANIFEST_NAME] + list(store.SPLIT_FILES.values()):
        if os.path.exists(os.path.join(out, name)):
            os.remove(os.path.join(out, name))


@contextlib.contextmanager
def build_lock(out):
    """Hold the store's lock file for the whole build: a second build on the same folder refuses
    at once instead of writing into the same files."""
    path = os.path.join(out, LOCK_NAME)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise tb.ToolboxError("another prepare_store.py build is running on %s (it holds %s); "
                                  "wait for it to finish, then run this command again"
                                  % (out, path)) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prepare_store(build):
    """Build (or continue) the store under its lock; returns the manifest."""
    os.makedirs(build.out, exist_ok=True)
    with build_lock(build.out):
        return _prepare_store(build)


def _prepare_store(build):
    source = resolve_source(build.source, build.images)
    if build.overwrite:
        remove_store(build.out)
    for stale in glob.glob(os.path.join(glob.escape(build.out), ".part-*.npy")) + glob.glob(
            os.path.join(glob.escape(build.out), "*.tmp")):
        os.remove(stale)                                   # left by a killed build
    manifest = start_or_resume(build, source)
    jobs = []
    for split in build.splits:
        jobs += plan_split(build, manifest, split, source)
    manifest["command"] = build_command(build, manifest)
    store.write_manifest(build.out, manifest)
    if build.max_chunks is not None:
        jobs = jobs[:build.max_chunks]
    start = time.time()
    with contextlib.ExitStack() as files:
        opened = {}
        for job in jobs:
            if job.split not in opened:
                opened[job.split] = files.enter_context(open_split_file(
                    os.path.join(build.out, store.SPLIT_FILES[job.split]), build.out))
        for split, f in opened.items():
            if build.format == "jpeg":                        # drop a tail a kill left behind
                f["frames"].resize((manifest["splits"][split]["bytes"],))
        description = "cropping frames (%s, %s)" % (source, build.format)
        for split, index, payload in tb.parallel_map(build_chunk, jobs, build.workers, description):
            entry = manifest["splits"][split]
            chunk = entry["chunks"][index]
            write_chunk(opened[split], entry, chunk, payload, build.format)
            opened[split].flush()                            # the data first, then the record
            chunk["done"] = True
            entry["complete"] = not store.unfinished_chunks(entry)
            store.write_manifest(build.out, manifest)
    report(build.out, manifest, sum(len(j.frames) for j in jobs), time.time() - start)
    return manifest


def report(out, manifest, frames_written, seconds):
    for split, entry in manifest["splits"].items():
        left = store.unfinished_chunks(entry)
        size = ""
        if not left:
            per_frame = os.path.getsize(os.path.join(out, entry["file"])) / entry["rows"]
            size = ", %.1f KB per frame (file)" % (per_frame / 1000)
        print("%s: %d rows, %d/%d chunks done%s" % (split, entry["rows"],
                                                   len(entry["chunks"]) - len(left),
                                                   len(entry["chunks"]), size))
    print("wrote %d frames in %.1f s (%.0f frames/s) to %s"
          % (frames_written, seconds, frames_written / max(seconds, 1e-9), out))
    if any(store.unfinished_chunks(e) for e in manifest["splits"].values()):
        print("the store is incomplete; continue it with: %s" % manifest["command"])


def verify(out):
    """Check the manifest and every stored crop; raises ToolboxError naming what is wrong."""
    try:
        manifest = store.read_manifest(out)
        for split in manifest["splits"]:
            dataset = store.Human36MStoreDataset(out, split)
            for index in range(len(dataset)):
                dataset.load_crop(index)
            print("%s: %d frames, complete and readable" % (split, len(dataset)))
    except (store.StoreError, OSError) as error:
        raise tb.ToolboxError(str(error))


def main(argv=None):
    parser = tb.argument_parser(__doc__.split("\n")[0])
    parser.add_argument("--out", default="data/h36m_store", help="store folder to write")
    parser.add_argument("--format", choices=store.FORMATS, default="jpeg",
                        help="crops as JPEG (small) or raw uint8 (exact)")
    parser.add_argument("--quality", type=int, default=DEFAULT_QUALITY, help="JPEG quality")
    parser.add_argument("--chroma", choices=("420", "444"), default="420",
                        help="JPEG chroma subsampling (444: ~15%% larger, smaller colour error)")
    parser.add_argument("--source", choices=("auto", "videos", "images"), default="auto",
                        help="decode the videos, or read images/ (auto: images/ if it exists)")
    parser.add_argument("--splits", nargs="+", choices=tuple(h36m.LABEL_FILES),
                        default=list(h36m.LABEL_FILES), help="splits to build")
    parser.add_argument("--train-labels", help="train label file; None: ROOT/%s"
                        % h36m.LABEL_FILES["train"])
    parser.add_argument("--val-labels", help="validation label file; None: ROOT/%s"
                        % h36m.LABEL_FILES["val"])
    parser.add_argument("--images", help="full-frame images folder; None: ROOT/images")
    parser.add_argument("--max-chunks", type=int,
                        help="stop after this many chunks (build a big store in several runs)")
    parser.add_argument("--overwrite", action="store_true", help="start the store over")
    parser.add_argument("--verify", action="store_true",
                        help="only check that the store at --out is complete and readable")
    args = parser.parse_args(argv)
    if args.verify:
        return verify(args.out)
    if not 1 <= args.quality <= 100:
        raise tb.ToolboxError("--quality must be 1..100, got %d" % args.quality)
    labels = {"train": args.train_labels or os.path.join(args.root, h36m.LABEL_FILES["train"]),
              "val": args.val_labels or os.path.join(args.root, h36m.LABEL_FILES["val"])}
    prepare_store(StoreBuild(
        root=args.root, out=args.out, format=args.format, quality=args.quality,
        chroma=args.chroma, source=args.source, splits=list(args.splits), labels=labels,
        images=args.images or os.path.join(args.root, "images"), workers=args.workers,
        max_chunks=args.max_chunks, overwrite=args.overwrite))


if __name__ == "__main__":
    tb.run_cli(main)
