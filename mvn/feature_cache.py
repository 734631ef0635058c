"""The frozen backbone's feature maps computed once per frame (train.feature_cache, an addition).

A frozen backbone in eval mode gives a frame the same feature maps in every epoch and every
evaluation, so they can be computed once, for each frame and for its mirror image (the flip
augmentation and the flip test use both), and read back instead of decoding the frame and
running the backbone again. Training and --eval read them when train.feature_cache is

    "memory"  computed at the start of every run, kept in this process's memory;
    "disk"    .npy files under train.feature_cache_dir (default <logdir>/feature_cache), in a
              folder named by a key of everything the maps depend on (the backbone's weights and
              type, the levels used, the split's label file and frames, the device type and the
              precision settings); any later run with the same key reads them (the ablation's
              seeds of one backbone share one set).

Same numbers: the maps are those of the uncached path up to float rounding. A convolution's
result depends slightly on how many frames share its batch (about 5e-8 on the tiny HRNet), and
the cache is computed in the evaluation's batches (val.batch_size, in order): an evaluation
with the cache gives exactly the uncached one's predictions; a training run follows the
uncached one within float tolerance, not bit for bit (tests/test_feature_cache.py).

Not covered by the key: the frames' pixels (the JPEGs or the store's crops) are named by their
label file or store file only; after changing frames in place, delete the cache folder.
"""
import hashlib
import json
import logging
import os
import shutil
import tempfile

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from mvn.batch import prepare_batch
from mvn.cached_features import MIRRORED
from mvn.errors import CAPFError
from mvn.geometry import CROP_SHAPE
from mvn.recipe import autocast
from mvn.stopping import worker_init

logger = logging.getLogger(__name__)

MODES = ("none", "memory", "disk")


class FeatureCacheError(CAPFError):
    """The feature cache cannot be used as configured; the message says what to change."""


class FeatureCache:
    """Per level an array (N, 2, C_l, H_l, W_l) over the N frames of one dataset, in memory or
    memory-mapped from disk; `frame(index)` -> [(2, C_l, H_l, W_l)] per level."""

    def __init__(self, levels, dtype=torch.float32):
        self.levels, self.dtype = levels, dtype

    def __len__(self):
        return len(self.levels[0])

    def frame(self, index):
        return [to_torch(level[index], self.dtype) for level in self.levels]


# ----------------------------------------------------------------------------------------------
# Storage of bf16 / fp16 maps (autocast) in NumPy arrays: their bits as int16

def to_numpy_dtype(dtype):
    return {torch.float32: np.float32, torch.bfloat16: np.int16, torch.float16: np.int16}[dtype]


def to_torch(array, dtype):
    tensor = torch.from_numpy(np.array(array))  # a copy: memory maps stay read-only
    return tensor if dtype == torch.float32 else tensor.view(dtype)


def to_stored(tensor):
    tensor = tensor.detach().cpu().contiguous()
    return (tensor if tensor.dtype == torch.float32 else tensor.view(torch.int16)).numpy()


# ----------------------------------------------------------------------------------------------
# Checks and the key

def check_config(config):
    """Refuse a feature cache that would change the numbers (a backbone that changes or whose
    output depends on its batch) or has nothing to cache."""
    mode = config.train.feature_cache
    if mode not in MODES:
        raise FeatureCacheError("train.feature_cache must be one of %s, got '%s'"
                                % (", ".join(MODES), mode))
    if mode == "none":
        return
    reasons = []
    if config.task != "capf":
        reasons.append("task '%s' trains its backbone" % config.task)
    if not config.model.image_features:
        reasons.append("model.image_features is false (no backbone runs)")
    if not config.model.backbone.frozen:
        reasons.append("model.backbone.frozen is false (the backbone trains)")
    if config.model.backbone.bn_mode != "eval":
        reasons.append("model.backbone.bn_mode is '%s' (its maps depend on the batch and its "
                       "statistics change while training)" % config.model.backbone.bn_mode)
    if reasons:
        raise FeatureCacheError("train.feature_cache=%s needs a frozen backbone in eval mode: %s;"
                                " set train.feature_cache=none" % (mode, "; ".join(reasons)))


def file_identity(path):
    """(absolute path, size, mtime in ns) of a file; the absolute path alone of a folder."""
    path = os.path.abspath(path)
    if os.path.isfile(path):
        status = os.stat(path)
        return [path, status.st_size, status.st_mtime_ns]
    return [path]


def dataset_identity(dataset):
    """What names a dataset's frames: its class, label / store files, frames chosen."""
    names = ("labels_path", "images_root", "root", "store_path", "path", "split")
    identity = {"class": type(dataset).__name__, "frames": len(dataset)}
    for name in names:
        value = getattr(dataset, name, None)
        if isinstance(value, str):
            identity[name] = value if name == "split" else file_identity(value)
    record = getattr(dataset.labels, "record", None)
    if record is not None:
        identity["records_sha256"] = hashlib.sha256(np.ascontiguousarray(record)).hexdigest()
    return identity


def cache_key(model, dataset, config, device):
    """(hex key, what it covers) of the maps of `model`'s backbone over `dataset`."""
    weights = hashlib.sha256()
    for name, tensor in sorted(model.backbone.state_dict().items()):
        weights.update(name.encode())
        weights.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    covers = {"backbone": config.model.backbone.type, "weights_sha256": weights.hexdigest(),
              "levels": config.model.levels, "channels_last": config.train.channels_last,
              "amp": config.train.amp, "tf32": config.train.tf32, "device": device.type,
              "batch_size": config.val.batch_size, "dataset": dataset_identity(dataset)}
    text = json.dumps(covers, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24], covers


# ----------------------------------------------------------------------------------------------
# Computing the maps

def maps_shapes(model, device, levels):
    """[(C_l, H_l, W_l)] of the backbone's first `levels` maps for one crop."""
    with torch.no_grad():
        probe = torch.zeros((1,) + tuple(CROP_SHAPE) + (3,), device=device)
        return [tuple(m.shape[1:]) for m in model.backbone_features(probe)[:levels]]


def check_room(needed_bytes, folder, mode):
    """Refuse a cache that would not fit: in memory (MemAvailable) or on disk (free space)."""
    if mode == "memory":
        available = memory_available_bytes()
        if available is not None and needed_bytes > 0.8 * available:
            raise FeatureCacheError(
                "train.feature_cache=memory needs %.1f GB for the backbone's maps of this split "
                "(both orientations) and %.1f GB of memory is available; use "
                "train.feature_cache=disk or none" % (needed_bytes / 1e9, available / 1e9))
        return
    free = shutil.disk_usage(folder).free
    if needed_bytes > free:
        raise FeatureCacheError(
            "train.feature_cache=disk needs %.1f GB in %s for the backbone's maps of this split "
            "and %.1f GB is free; free space, set train.feature_cache_dir elsewhere, or use "
            "train.feature_cache=none" % (needed_bytes / 1e9, folder, free / 1e9))


def memory_available_bytes():
    """MemAvailable of /proc/meminfo in bytes (None where there is no such file)."""
    if not os.path.isfile("/proc/meminfo"):
        return None
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return None


@torch.no_grad()
def compute_maps(model, dataset, config, device, skeleton, levels_out, dtype_out, stop=None,
                 description="backbone maps"):
    """Fill `levels_out` (per level an array (N, 2, C_l, H_l, W_l)) with the backbone's maps of
    every frame of `dataset` and of its mirror image, in batches of val.batch_size in order (the
    evaluation's batches), under the run's precision. `stop` (() -> bool) is asked after every
    batch; True ends the computation (returns False). Returns True when complete."""
    was_training = model.training
    model.eval()
    with_images = dataset.with_images
    dataset.with_images = True
    workers = config.dataset.num_workers
    loader = DataLoader(dataset, batch_size=config.val.batch_size, shuffle=False,
                        num_workers=workers, worker_init_fn=worker_init if workers else None)
    start = 0
    try:
        for batch in tqdm(loader, desc=description, dynamic_ncols=True):
            images, *_ = prepare_batch(batch, config.model.backbone.type, device,
                                       skeleton=skeleton)
            with autocast(config, device):
                maps = model.backbone_features(images)              # [(B, C_l, H_l, W_l)]
                mirrored = model.backbone_features(images.flip(2))  # of the mirror images
            end = start + len(images)
            for level, (plain, mirror) in enumerate(zip(maps, mirrored)):
                if plain.dtype != dtype_out:
                    raise FeatureCacheError("the backbone's maps are %s, the cache expected %s"
                                            % (plain.dtype, dtype_out))
                levels_out[level][start:end, 0] = to_stored(plain)
                levels_out[level][start:end, MIRRORED] = to_stored(mirror)
            start = end
            if stop is not None and stop():
                return False
    finally:
        dataset.with_images = with_images
        model.train(was_training)
    return True


def output_dtype(model, config, device):
    with torch.no_grad(), autocast(config, device):
        probe = torch.zeros((1,) + tuple(CROP_SHAPE) + (3,), device=device)
        return model.backbone_features(probe)[0].dtype


def build_feature_cache(model, dataset, config, device, skeleton, logdir, split, stop=None):
    """The FeatureCache of `model`'s backbone over `dataset` (config.train.feature_cache:
    "memory" computes it; "disk" reads it from its folder or computes and writes it there).
    Returns None if `stop` ended the computation."""
    mode = config.train.feature_cache
    levels = config.model.levels
    shapes = maps_shapes(model, device, levels)
    dtype = output_dtype(model, config, device)
    per_frame = sum(int(np.prod(s)) for s in shapes) * 2 * np.dtype(to_numpy_dtype(dtype)).itemsize
    needed = per_frame * len(dataset)
    description = "backbone maps (%s, %d frames, %.2f GB)" % (split, len(dataset), needed / 1e9)
    if mode == "memory":
        check_room(needed, None, mode)
        arrays = [np.empty((len(dataset), 2) + s, to_numpy_dtype(dtype)) for s in shapes]
        if not compute_maps(model, dataset, config, device, skeleton, arrays, dtype, stop,
                            description):
            return None
        return FeatureCache(arrays, dtype)
    root = config.train.feature_cache_dir or os.path.join(logdir, "feature_cache")
    key, covers = cache_key(model, dataset, config, device)
    folder = os.path.join(root, "%s_%s" % (split, key))
    if os.path.isfile(os.path.join(folder, "covers.json")):
        logger.info("backbone maps of the %s split read from %s", split, folder)
        return open_cache_folder(folder, dtype)
    try:
        os.makedirs(root, exist_ok=True)
    except OSError as error:
        raise FeatureCacheError("the feature cache's folder %s cannot be made (%s); set "
                                "train.feature_cache_dir to a folder" % (root, error)) from None
    check_room(needed, root, mode)
    partial = tempfile.mkdtemp(prefix="%s_%s." % (split, key), suffix=".partial", dir=root)
    try:
        arrays = [np.lib.format.open_memmap(os.path.join(partial, "level%d.npy" % level),
                                            mode="w+", dtype=to_numpy_dtype(dtype),
                                            shape=(len(dataset), 2) + shape)
                  for level, shape in enumerate(shapes)]
        if not compute_maps(model, dataset, config, device, skeleton, arrays, dtype, stop,
                            description):
            return None
        for array in arrays:
            array.flush()
        del arrays
        with open(os.path.join(partial, "covers.json"), "w") as f:
            json.dump(dict(covers, dtype=str(dtype).replace("torch.", "")), f, indent=1)
        try:
            os.rename(partial, folder)  # atomic; another process may have finished first
        except OSError:
            if not os.path.isfile(os.path.join(folder, "covers.json")):
                raise
    finally:
        if os.path.isdir(partial):
            shutil.rmtree(partial)
    logger.info("backbone maps of the %s split written to %s", split, folder)
    return open_cache_folder(folder, dtype)


def open_cache_folder(folder, dtype):
    try:
        with open(os.path.join(folder, "covers.json")) as f:
            covers = json.load(f)
        levels = [np.load(os.path.join(folder, "level%d.npy" % level), mmap_mode="r")
                  for level in range(covers["levels"])]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise FeatureCacheError("the feature cache %s is damaged (%s): delete that folder and "
                                "run again (it is computed anew)" % (folder, error)) from None
    if covers.get("dtype") != str(dtype).replace("torch.", ""):
        raise FeatureCacheError("%s holds %s maps where %s are needed; delete the folder"
                                % (folder, covers.get("dtype"), dtype))
    if any(len(level) != covers["dataset"]["frames"] for level in levels):
        raise FeatureCacheError("%s is incomplete (a level's frame count differs from "
                                "covers.json); delete the folder" % folder)
    return FeatureCache(levels, dtype)


def attach_feature_cache(model, dataset, config, device, skeleton, logdir, split, stop=None):
    """With train.feature_cache set, give `dataset` the cache of `model`'s backbone (its samples
    then carry the maps instead of a decoded image). Returns False if `stop` ended it."""
    if config.train.feature_cache == "none":
        return True
    cache = build_feature_cache(model, dataset, config, device, skeleton, logdir, split, stop)
    if cache is None:
        return False
    dataset.feature_cache = cache
    dataset.with_images = False
    return True
