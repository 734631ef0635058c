"""Input pipeline, side by side: the reference path (pkl + full-frame JPEG + warpAffine) and stores.

On the same machine and data, in one run:
  1. samples/s of each dataset: in-process (ms per sample) and through a DataLoader with 1 and
     N workers (batch 32, random order);
  2. bytes per frame of each;
  3. labels for 1.5 million rows (synthetic): load time, RSS, and how much a DataLoader-like
     forked worker's private memory grows in one pass over them -- the reference's list of dicts
     (measured at --reference-label-rows, extrapolated linearly: a 1.5M-row list needs ~12 GB)
     and the store's label columns; the time to validate them (every record's values, ids and
     image path, as loading does);
  4. the integrity check of a frame (mvn.images: end-of-image marker, libjpeg's warnings caught
     during the decode) per sample, against the decode it guards and against a store sample;
  5. the stores' CRC32 check of each crop read: every store is measured with it (as it is read)
     and without it (`check_crops=False`), side by side.
The last lines are the store/reference ratio without the CRC check and then
`store/reference samples/s ratio: X` (first store as it is read, with the check; 1 worker).

  python bench/bench_data.py --root /tmp/h36m_bench --stores /tmp/h36m_bench/store_jpeg \
      /tmp/h36m_bench/store_raw [--split train] [--workers 2] [--seconds 4] [--rounds 3]
"""
import argparse
import multiprocessing
import os
import pickle
import sys
import tempfile
import time

import cv2
import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler

from mvn.human36m import facts as h36m
from mvn.human36m.dataset import Human36MDataset, Human36MStoreDataset
from mvn.datasets import store as store_module
from mvn.human36m.labels import LabelColumns, find_bad_records
from mvn.images import FRAME_READ_FLAGS, decode_jpeg_checked, image_problem
from mvn.errors import run_main

MB = 1 << 20


# ----------------------------------------------------------------------------------------------
# Samples per second and bytes per frame

def ms_per_sample(dataset, count, seed=0):
    """Mean milliseconds of `dataset[i]` in this process over `count` random indices."""
    indices = np.random.default_rng(seed).integers(0, len(dataset), count)
    dataset[int(indices[0])]  # open files, warm caches
    start = time.perf_counter()
    for i in indices:
        dataset[int(i)]
    return (time.perf_counter() - start) / count * 1000


def paired_ms_per_sample(first, second, count, rounds=5):
    """(ms per sample of `first`, of `second`): ms_per_sample of each in `rounds` interleaved
    rounds, the best round of each -- a small difference survives a machine shared with others."""
    times = [[], []]
    for round_ in range(rounds):
        for i, dataset in enumerate((first, second)):
            times[i].append(ms_per_sample(dataset, count, seed=round_))
    return min(times[0]), min(times[1])


def loader_samples_per_s(dataset, workers, batch_size, seconds):
    """samples/s of a shuffled DataLoader, timed after its first batch for about `seconds`."""
    sampler = RandomSampler(dataset, replacement=True, num_samples=batch_size * 100000)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                        prefetch_factor=4 if workers else None)
    batches = iter(loader)
    next(batches)                                    # workers started
    samples, start = 0, time.perf_counter()
    for batch in batches:
        samples += len(batch["index"])
        if time.perf_counter() - start >= seconds:
            break
    rate = samples / (time.perf_counter() - start)
    del batches
    return rate


def reference_bytes_per_frame(dataset):
    """Mean size of the full-frame JPEGs the labels name."""
    names = np.unique(dataset.labels.image)
    return float(np.mean([os.path.getsize(os.path.join(dataset.images_root, n.decode()))
                          for n in names]))


def store_bytes_per_frame(dataset):
    """Stored bytes of one crop (raw: its array; jpeg: the mean JPEG size)."""
    if dataset.format == "raw":
        return float(np.prod(store_module.CROP_SHAPE))
    return float(dataset.frame_size.mean())


# ----------------------------------------------------------------------------------------------
# Labels at scale

def synthetic_columns(rows, seed=0):
    """LabelColumns of `rows` synthetic frames (sequences of 2500 frames)."""
    rng = np.random.default_rng(seed)
    frame = np.arange(rows) % 2500 + 1
    sequence = np.arange(rows) // 2500
    image = np.char.add(np.char.mod(b"s_%02d_act_02_subact_01_ca_01/", sequence % 100),
                        np.char.mod(b"s_09_act_02_subact_01_ca_01_%06d.jpg", frame))
    return LabelColumns(
        image=image.astype(np.bytes_),
        keypoints_2d=rng.standard_normal((rows, 17, 2), dtype=np.float32),
        keypoints_2d_crop=rng.random((rows, 17, 2), dtype=np.float32) * 191,
        keypoints_3d=rng.standard_normal((rows, 17, 3), dtype=np.float32),
        center=rng.random((rows, 2)) * 1000,
        scale=0.5 + rng.random((rows, 2)) * 4,
        subject=np.full(rows, 9, np.int16), action=(sequence % 15 + 2).astype(np.int16),
        subaction=np.ones(rows, np.int16), camera_id=(sequence % 4).astype(np.int16),
        record=np.arange(rows, dtype=np.int64))


def capture_overhead_us(repeats=2000):
    """Microseconds mvn.images.decode_jpeg_checked adds to a decode (catching libjpeg's
    warnings: a lock and five system calls), measured on an 8x8 JPEG whose decode is short, so
    the difference is the fixed cost (the best of 3 rounds each, against the shared machine)."""
    tiny = cv2.imencode(".jpg", np.full((8, 8, 3), 128, np.uint8))[1]
    rounds = {"plain": [], "checked": []}
    for _ in range(3):
        for name, decode in (("plain", cv2.imdecode), ("checked", decode_jpeg_checked)):
            start = time.perf_counter()
            for _ in range(repeats):
                decode(tiny, FRAME_READ_FLAGS)
            rounds[name].append((time.perf_counter() - start) / repeats * 1e6)
    return max(0.0, min(rounds["checked"]) - min(rounds["plain"]))


def image_check_costs(dataset, samples):
    """(microseconds per frame of the integrity check -- mvn.images.image_problem and catching
    libjpeg's warnings --, of cv2.imdecode) over the frame files of `dataset` (a
    Human36MDataset), read into memory first."""
    paths = [os.path.join(dataset.images_root, dataset.labels.image[i].decode())
             for i in range(min(samples, len(dataset)))]
    data = [np.fromfile(path, dtype=np.uint8) for path in paths]
    start = time.perf_counter()
    for _ in range(20):
        for encoded in data:
            image_problem(encoded)
    check_us = (time.perf_counter() - start) / (20 * len(data)) * 1e6
    start = time.perf_counter()
    for encoded in data:
        cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    decode_us = (time.perf_counter() - start) / len(data) * 1e6
    return check_us + capture_overhead_us(), decode_us


def crc_check_us(dataset, samples, repeats=20):
    """Microseconds of the CRC32 check of one stored crop of `dataset` (a StoreDataset): the
    checksum of the bytes a read returns, over `samples` rows read into memory first."""
    frames = dataset._frames()
    rows = dataset.rows[:samples]
    if dataset.format == "raw":
        crops = [frames[row] for row in rows]
    else:
        crops = [frames[dataset.frame_offset[r]:dataset.frame_offset[r] + dataset.frame_size[r]]
                 for r in rows]
    start = time.perf_counter()
    for _ in range(repeats):
        for row, crop in zip(rows, crops):
            store_module.crop_crc32(crop) != dataset.frame_crc32[row]
    return (time.perf_counter() - start) / (repeats * len(crops)) * 1e6


def write_reference_pickle(columns, path):
    """The reference's label file for `columns`: a list of dicts with every key of a record."""
    camera = {"R": np.eye(3), "T": np.zeros((3, 1)), "fx": np.ones(1), "fy": np.ones(1),
              "cx": np.ones(1), "cy": np.ones(1), "k": np.zeros((3, 1)), "p": np.zeros((2, 1))}
    c = columns
    records = [{
        "image": c.image[i].decode(), "joints_2d_gt": c.keypoints_2d[i].astype(np.float64),
        "joints_2d_cpn": c.keypoints_2d[i].astype(np.float64),
        "joints_3d": c.keypoints_3d[i].astype(np.float64), "joints_vis": np.ones((17, 3)),
        "video_id": 0, "image_id": i + 1, "subject": 9, "action": int(c.action[i]),
        "subaction": 1, "camera_id": int(c.camera_id[i]), "source": "h36m",
        "camera": camera, "nposes": 2500,
        "center": (np.float64(c.center[i, 0]), np.float64(c.center[i, 1])),
        "scale": (np.float64(c.scale[i, 0]), np.float64(c.scale[i, 1])),
        "box": np.zeros(4), "joints_2d_gt_crop": c.keypoints_2d_crop[i],
        "joints_2d_cpn_crop": c.keypoints_2d_crop[i],
    } for i in range(len(c))]  # one object per record, like the real file: no shortcut exists
    with open(path, "wb") as f:
        pickle.dump(records, f, protocol=4)


def write_store_labels(columns, path):
    with h5py.File(path, "w") as f:
        store_module.write_label_columns(f.create_group("labels"), columns)


def memory_mb():
    """(RSS, private) MB of this process, from /proc/self/smaps_rollup."""
    fields = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                fields[parts[0].rstrip(":")] = int(parts[1]) / 1024
    return fields["Rss"], fields["Private_Clean"] + fields["Private_Dirty"]


def load_labels(kind, path):
    if kind == "reference":
        with open(path, "rb") as f:
            return pickle.load(f)
    with h5py.File(path, "r") as f:
        return store_module.read_label_columns(f["labels"], LabelColumns)


def touch_all(kind, labels):
    """One epoch of label reads, as each dataset's __getitem__ does them."""
    if kind == "reference":
        for record in labels:
            (record["image"], record["joints_2d_cpn"], record["joints_2d_cpn_crop"],
             record["joints_3d"], record["center"], record["scale"])
    else:
        for i in range(len(labels)):
            (labels.image[i], labels.keypoints_2d[i], labels.keypoints_2d_crop[i],
             labels.keypoints_3d[i], labels.center[i], labels.scale[i])


def measure_labels(kind, path, queue):
    """In a fresh process: load time and the RSS the labels add; then how much a forked
    worker's private memory grows in one pass over them."""
    rss_before_mb, _ = memory_mb()
    start = time.perf_counter()
    labels = load_labels(kind, path)
    load_s = time.perf_counter() - start
    rss_mb = memory_mb()[0] - rss_before_mb
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the "DataLoader worker"
        _, before = memory_mb()
        touch_all(kind, labels)
        _, after = memory_mb()
        os.write(write_end, pickle.dumps(after - before))
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        growth_mb = pickle.loads(f.read())
    os.waitpid(pid, 0)
    queue.put((load_s, rss_mb, growth_mb))


def labels_figures(kind, path):
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=measure_labels, args=(kind, path, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


# ----------------------------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, help="toolbox root with images/ and the labels")
    parser.add_argument("--stores", nargs="+", required=True, help="store folders to compare")
    parser.add_argument("--split", choices=("train", "val"), default="train")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="N")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=4.0, help="per loader measurement")
    parser.add_argument("--samples", type=int, default=200, help="in-process samples timed")
    parser.add_argument("--rounds", type=int, default=3,
                        help="passes over all datasets; the best figure of each is shown")
    parser.add_argument("--label-rows", type=int, default=1_500_000)
    parser.add_argument("--reference-label-rows", type=int, default=300_000,
                        help="rows of the reference list actually built (memory: ~8 KB each)")
    parser.add_argument("--tmp", default=tempfile.gettempdir(), help="for the label files")
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the data path is NumPy/OpenCV: no intra-op threads competing
    try:
        run(args)
    finally:
        torch.set_num_threads(threads)  # main() is also called in-process (tests)


def run(args):

    reference = Human36MDataset(os.path.join(args.root, "images"),
                                os.path.join(args.root, h36m.LABEL_FILES[args.split]))
    datasets = [("reference (pkl + JPEG + warp)", reference)]
    for path in args.stores:  # each store as it is read, then without its CRC check
        dataset = Human36MStoreDataset(path, args.split)
        name = "store %s (%s)" % (dataset.format, os.path.basename(path))
        datasets.append((name, dataset))
        datasets.append((name + " no CRC", Human36MStoreDataset(path, args.split,
                                                                 check_crops=False)))
    print("machine: %d CPU cores, load average %s; %d frames of the %s split of %s"
          % (os.cpu_count(), " ".join("%.1f" % v for v in os.getloadavg()), len(reference),
             args.split, args.root))

    # --rounds passes over every dataset in turn, the best of each figure kept: each pair with
    # and without the CRC check is measured side by side, the same minutes apart
    best = {name: (float("inf"), 0.0, 0.0) for name, _ in datasets}
    for round_ in range(args.rounds):
        for name, dataset in datasets:
            ms = ms_per_sample(dataset, args.samples, seed=round_)
            one = loader_samples_per_s(dataset, 1, args.batch, args.seconds)
            many = loader_samples_per_s(dataset, args.workers, args.batch, args.seconds)
            best[name] = (min(best[name][0], ms), max(best[name][1], one),
                          max(best[name][2], many))
            print("  measured %s (round %d of %d)" % (name, round_ + 1, args.rounds), flush=True)
    rows = []
    for name, dataset in datasets:
        per_byte = (reference_bytes_per_frame(dataset) if dataset is reference
                    else store_bytes_per_frame(dataset))
        rows.append((name,) + best[name] + (per_byte,))
    base = rows[0]
    print("\n%-42s %10s %14s %14s %12s %10s %10s"
          % ("samples", "ms/sample", "1 worker/s", "%d workers/s" % args.workers,
             "KB/frame", "x speed", "x bytes"))
    for name, ms, one, many, per_byte in rows:
        print("%-42s %10.3f %14.1f %14.1f %12.1f %10.2f %10.3f"
              % (name, ms, one, many, per_byte / 1000, one / base[2], per_byte / base[4]))

    with tempfile.TemporaryDirectory(dir=args.tmp) as folder:
        print("\nlabels (synthetic rows; each measured in a fresh process, then one forked "
              "worker reads every row once)", flush=True)
        reference_rows = min(args.reference_label_rows, args.label_rows)
        pickle_path = os.path.join(folder, "labels.pkl")
        write_reference_pickle(synthetic_columns(reference_rows), pickle_path)
        pickle_mb = os.path.getsize(pickle_path) / MB
        ref_load, ref_rss, ref_growth = labels_figures("reference", pickle_path)
        os.remove(pickle_path)
        store_path = os.path.join(folder, "labels.h5")
        write_store_labels(synthetic_columns(args.label_rows), store_path)
        store_mb = os.path.getsize(store_path) / MB
        store_load, store_rss, store_growth = labels_figures("store", store_path)
        scale = args.label_rows / reference_rows
        print("%-44s %10s %10s %10s %10s %18s" % ("labels", "rows", "file MB", "load s",
                                                  "+RSS MB", "worker growth MB"))
        print("%-44s %10d %10.0f %10.2f %10.0f %18.0f" % (
            "reference: pickled list of dicts", reference_rows, pickle_mb, ref_load, ref_rss,
            ref_growth))
        if scale != 1:
            print("%-44s %10d %10.0f %10.2f %10.0f %18.0f" % (
                "  the same, extrapolated linearly", args.label_rows, pickle_mb * scale,
                ref_load * scale, ref_rss * scale, ref_growth * scale))
        print("%-44s %10d %10.0f %10.2f %10.0f %18.0f" % (
            "store: label columns (HDF5)", args.label_rows, store_mb, store_load, store_rss,
            store_growth))

    columns = synthetic_columns(args.label_rows)
    start = time.perf_counter()
    codes = find_bad_records(columns)
    validation_s = time.perf_counter() - start
    print("\nlabel validation (finite values, ids, image paths) of %d rows: %.2f s, %d bad"
          % (args.label_rows, validation_s, int(np.count_nonzero(codes))))
    check_us, decode_us = image_check_costs(reference, args.samples)
    store_ms = rows[1][1]
    print("frame integrity check: %.1f us per frame, %.3f%% of its decode (%.1f ms), %.3f%% of "
          "a %s sample (%.2f ms)" % (check_us, 100 * check_us / (decode_us + 1e-9),
                                     decode_us / 1000, 100 * check_us / (store_ms * 1000),
                                     rows[1][0], store_ms))

    for (name, checked), (_, unchecked) in zip(datasets[1::2], datasets[2::2]):
        crc_us = crc_check_us(checked, args.samples)
        with_ms, without_ms = paired_ms_per_sample(checked, unchecked, args.samples)
        print("crop CRC32 check, %s: %.1f us per crop; a sample with it %.3f ms, without %.3f ms "
              "(x%.3f; best of 5 interleaved in-process rounds)"
              % (name, crc_us, with_ms, without_ms, with_ms / without_ms))

    print("\n(%s vs %s, 1 worker each)" % (rows[1][0], base[0]))
    print("store/reference samples/s ratio without the CRC check: %.1f" % (rows[2][2] / base[2]))
    print("store/reference samples/s ratio: %.1f" % (rows[1][2] / base[2]))


if __name__ == "__main__":
    sys.exit(run_main(main, "bench_data.py"))
