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
import functools
import os
import shlex
from dataclasses import dataclass

import cv2
import numpy as np

import h36m_toolbox as tb
from mvn import geometry
from mvn.datasets import store, store_build
from mvn.datasets.label_files import LabelError
from mvn.human36m import facts as h36m
from mvn.human36m.dataset import Human36MStoreDataset
from mvn.human36m.labels import load_label_columns
from mvn.images import ImageError, read_frame_bgr

DEFAULT_QUALITY = 95
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

    payload: raw -> (the .npy file (n, 256, 192, 3) written (big chunks never cross a pipe),
    the crops' CRC32s (n,) uint32); jpeg -> store_build.jpeg_payload of the JPEGs."""
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
        crcs = np.array([store.crop_crc32(crop) for crop in crops], np.uint32)
        crops.flush()
        del crops
        return job.split, job.index, (job.part_path, crcs)
    return job.split, job.index, store_build.jpeg_payload(encoded)


# ----------------------------------------------------------------------------------------------
# The store files

def write_chunk(f, entry, chunk, payload, fmt):
    """Put a finished chunk's crops into the split file `f` (rows chunk['start']:['stop'])."""
    if fmt == "jpeg":
        return store_build.append_jpegs(f, entry, chunk, payload)
    start = chunk["start"]
    part_path, crcs = payload
    f["frame_crc32"][start:chunk["stop"]] = crcs
    part = np.load(part_path, mmap_mode="r")                                # (n, 256, 192, 3)
    for a in range(0, len(part), COPY_ROWS):
        f["frames"][start + a:start + a + len(part[a:a + COPY_ROWS])] = part[a:a + COPY_ROWS]
    del part
    os.remove(part_path)


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
        return store.new_manifest(build.format, quality, chroma, source, build.root,
                                  Human36MStoreDataset.DATASET)
    try:
        manifest = store.read_manifest(build.out, Human36MStoreDataset.DATASET,
                                       Human36MStoreDataset.BUILD_COMMAND)
    except store.StoreError as error:
        raise tb.ToolboxError("%s (the store at %s)" % (error, build.out))
    started = (manifest["format"], manifest["jpeg_quality"], manifest["jpeg_chroma"],
               manifest["source"])
    if started != (build.format, quality, chroma, source):
        if build.overwrite:  # only the splits given were removed: the others keep their options
            raise tb.ToolboxError(
                "the store at %s keeps its split(s) %s, built with --format %s --quality %s "
                "--chroma %s --source %s: use those options, or rebuild every split with "
                "--splits %s --overwrite" % ((build.out, " ".join(manifest["splits"])) + started
                                             + (" ".join(h36m.LABEL_FILES),)))
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
    info = store_build.file_info(labels_path)
    changed = store_build.labels_change(manifest, split, info)
    if changed:
        raise tb.ToolboxError(changed + ": add --overwrite to rebuild the store from it")
    entry = store_build.split_entry(build.out, manifest, split, info, columns,
                                    sequence_runs(columns.image))
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


def prepare_store(build):
    """Build (or continue) the store under its lock; returns the manifest."""
    source = resolve_source(build.source, build.images)
    with store_build.building(build.out, build.overwrite, "prepare_store.py", build.splits):
        manifest = start_or_resume(build, source)
        jobs = []
        for split in build.splits:
            jobs += plan_split(build, manifest, split, source)
        manifest["command"] = build_command(build, manifest)
        write = functools.partial(write_chunk, fmt=build.format)
        return store_build.run_chunks(
            build.out, manifest, jobs, build_chunk, write, build.workers, build.max_chunks,
            "cropping frames (%s, %s)" % (source, build.format))


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
    store_build.add_build_arguments(parser)
    args = parser.parse_args(argv)
    if args.verify:
        return store_build.verify(args.out, Human36MStoreDataset)
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
