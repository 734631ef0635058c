"""One configuration system: defaults, then a YAML file, then `key=value` overrides, validated.

    config = load_config("experiments/human36m/hrnet_32.yaml", ["train.batch_size=64"])
    config.train.batch_size  # 64

Every key the project reads has a default below. A key that is not in DEFAULTS is an error that
names it and the closest valid key; a value of the wrong type is an error naming the key.
"""
import copy
import difflib
import logging
import os

import yaml

from mvn import benchmarks, released_config
from mvn.errors import CAPFError
from mvn.human36m import facts as h36m
from mvn.models.backbones import BACKBONES

logger = logging.getLogger(__name__)


DEFAULTS = {
    "title": "capf",         # experiment folders: <logdir>/<title>@<date-time>
    # What train.py trains: "capf" (the 3D lifter, the released model) or "detector" (stage 1:
    # the 2D heatmap detector whose backbone CA-PF freezes; the `detector` section, mvn/detector.py)
    "task": "capf",
    "seed": 0,
    # PyTorch threads per process; 0: OMP_NUM_THREADS if set, else the process's cores less its
    # DataLoader workers (mvn/threads.py). Numbers are bit-identical only at equal thread counts.
    "torch_threads": 0,
    "model": {
        "backbone": {
            "type": "hrnet_32",
            # Pretrained backbone file; "" -> data/pretrained/<the type's published file name>.
            # "none" trains from the random initialisation (synthetic and test configs only).
            "pretrained": "",
            "frozen": True,
            # BatchNorm of a frozen backbone while training: "eval" (running statistics, kept)
            # or "train" (batch statistics, running ones updated: the MPI-INF-3DHP code, Q4).
            "bn_mode": "eval",
        },
        # false: the context-agnostic counterpart (an addition, docs/fidelity.md): no backbone
        # is built and no image is decoded; the same transformer lifts the 2D joints alone.
        "image_features": True,
        # Deformable context blocks (Human3.6M CA-PF); the MPI-INF-3DHP models have none.
        "deformable_context": True,
        "embed_dim_ratio": 128,  # D, the token width
        "depth": 4,              # blocks per group (context, per-joint levels, joints)
        "levels": 4,             # backbone feature maps sampled
        "drop_path_rate": 0.2,
        # Weights for the whole CA_PF model loaded before training ("" = none).
        "init_weights": "",
    },
    "dataset": {
        # "human36m" or "mpi_inf_3dhp" (root: the folder holding mpi_inf_3dhp/ and
        # mpi_inf_3dhp_test_set/; the val split is the test set, as in the released code)
        "name": "human36m",
        "format": "pkl",         # "pkl" (published label files + images) or "store"
        "root": "H36M-Toolbox/images",
        "train_labels_path": "H36M-Toolbox/" + h36m.LABEL_FILES["train"],
        "val_labels_path": "H36M-Toolbox/" + h36m.LABEL_FILES["val"],
        "store_path": "data/h36m_store",
        "num_workers": 4,
        # A label record with non-finite values, ids out of range or an image path leaving
        # dataset.root: "error" (stop, naming them) or "drop" (leave them out, reported).
        "bad_records": "error",
        "allow_images_outside_root": False,  # absolute or '..' image paths in the labels
        # The 2D joints CA-PF trains and evaluates on: "cpn" (the released labels' CPN
        # detections; MPI-INF-3DHP: the ground truth) or the NAME of H36M-Toolbox/detect_2d.py /
        # MPI-INF-3DHP-Toolbox/detect_2d_3dhp.py --name NAME (label files, format pkl).
        "keypoints_2d": "cpn",
        # Use every n-th labelled frame (1 = all; the published protocol evaluates on all).
        "train_frame_stride": 1,
        "val_frame_stride": 1,
    },
    "train": {
        "n_epochs": 60,
        "batch_size": 512,       # per process (the published runs: one process)
        # The lr every volume_net parameter trains at: the released code's effective rate
        # (docs/fidelity.md, "Learning rate").
        "volume_net_lr": 0.00064,
        # 1.0: one parameter group, as the released code trains. Another value gives the paper's
        # intended two groups: `sampling_offsets` at this factor x volume_net_lr, the rest at
        # volume_net_lr (e.g. 0.0064 and 0.1); no published number was made that way.
        "sampling_offsets_lr_factor": 1.0,
        "weight_decay": 0.1,     # AdamW's decoupled weight decay, every parameter
        "lr_decay": 0.99,        # per epoch, every group
        "flip_augmentation": True,
        "tf32": False,           # CUDA: TF32 matmuls and convolutions (off: exact fp32)
        "amp": False,            # bf16 autocast
        "channels_last": False,
        "compile": False,
        "max_steps_per_epoch": 0,  # 0 = the whole split (debug/test runs use a few)
        # last.bin every this many steps (and at every epoch's end); 0: at epoch ends only
        "checkpoint_every_steps": 500,
        # a collective that waits longer (a frozen or dead process) ends the run, naming it
        "collective_timeout_s": 1800,
        "log_every": 50,
        # The best epoch: its validation P1 rounded to this many mm (0: not rounded), then a
        # strict < (Human3.6M's released loop rounds to 0.1 mm, the MPI-INF-3DHP one does not).
        "best_epoch_round_mm": 0.1,
        "vis_every_epoch": True,
        # > 0: zero-mean Gaussian noise of this sigma (full-frame pixels) on the training 2D
        # inputs, both of them moved as a detection would (mvn/evaluations/noise.py); 0: the
        # released inputs, unchanged
        "noise_2d_px": 0.0,
        # The frozen backbone's maps of every frame (and of its mirror image) computed once and
        # read back (mvn/feature_cache.py, an addition; training and --eval): "none" (the
        # released path: the backbone runs on every batch), "memory" (computed at the start of
        # each run) or "disk" (kept in feature_cache_dir, reused by later runs of the same
        # backbone and frames). Needs a frozen backbone with bn_mode eval.
        "feature_cache": "none",
        "feature_cache_dir": "",  # "": <logdir>/feature_cache
    },
    "val": {
        "batch_size": 512,
        "flip_test": True,
        "max_batches": 0,        # 0 = the whole split
        # MPI-INF-3DHP: the printed MPJPE averages all 17 joints, the root (error 0) included,
        # as the released code does (Q5); false: the 16 others.
        "root_in_mpjpe": True,
    },
    # Evaluations beside the benchmark's table, by `train.py --eval` (mvn/evaluations/); all off:
    # the released evaluation alone. Results in the evaluation folder (JSON, CSV, PNG).
    "evaluation": {
        "per_joint": False,          # MPJPE / P-MPJPE per joint
        "noise_sweep": False,        # the evaluation again with 2D-noise of each sigma below
        "noise_sigmas_px": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0],  # any length, each >= 0
        "noise_seed": 0,             # the noise of sample i: from (noise_seed, i) alone
        "hard_frames": False,        # P1 / P2 of frames whose 2D input error > the threshold
        "hard_frame_threshold_px": 5.0,  # mean over joints, full-frame pixels
        "cost": False,               # parameters, GFLOPs per sample, measured samples/s
    },
    # Stage 1 (task: detector, mvn/detector.py): the 2D heatmap detector, the public HRNet pose
    # recipe. It trains model.backbone.type (an HRNet) with a 1x1 heatmap head, starting from
    # model.backbone.pretrained ("": the published COCO file, fine-tuned; "none": from scratch);
    # train.n_epochs / batch_size / flip_augmentation and val.flip_test / batch_size apply.
    "detector": {
        "lr": 0.001,               # Adam, no weight decay (as the recipe builds it)
        "lr_steps": [170, 200],    # epochs (0-based) from which the lr is x lr_factor once more
        "lr_factor": 0.1,
        "sigma_px": 2.0,           # the target Gaussian's standard deviation, heatmap pixels
        "pck_threshold_px": 10.0,  # PCK: the share of joints within this full-frame distance
    },
    "loss": {
        "grad_clip": 0.0,        # > 0: clip gradient norm at grad_clip / train.volume_net_lr
        # The MPJPE loss over all 17 joints, the root (target 0) included, as both released
        # codes train (Q5 of MPI-INF-3DHP); false: the 16 others.
        "include_root": True,
    },
}


class Config(dict):
    """A validated config: nested mappings read as attributes (config.train.batch_size) and
    read-only, so that what was validated (and written to config.yaml) is what runs. Change a
    value with an override: load_config(path, ["train.batch_size=64"])."""

    def __init__(self, tree):
        super().__init__({k: Config(v) if isinstance(v, dict) else v for k, v in tree.items()})

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError("config has no key '%s'" % name) from None

    def _read_only(self, *args, **kwargs):
        raise TypeError("the config is read-only after validation; give the change as an "
                        "override, e.g. load_config(path, ['train.batch_size=64'])")

    __setattr__ = __setitem__ = __delitem__ = _read_only
    update = pop = popitem = clear = setdefault = _read_only

    def __reduce__(self):  # copy / pickle: rebuilt from a plain tree
        return Config, (to_plain(self),)


def to_plain(node):
    """A Config (or any nested mapping) as plain dicts."""
    if isinstance(node, dict):
        return {k: to_plain(v) for k, v in node.items()}
    return node


class ConfigError(CAPFError, ValueError):
    """A configuration file or override that cannot be used; the message says what to change."""


def _flatten(tree, prefix=""):
    items = {}
    for key, value in tree.items():
        name = prefix + key
        if isinstance(value, dict):
            items.update(_flatten(value, name + "."))
        else:
            items[name] = value
    return items


_DEFAULT_KEYS = _flatten(DEFAULTS)
_DEFAULT_SECTIONS = {k.rsplit(".", 1)[0] for k in _DEFAULT_KEYS if "." in k}


def _closest(name):
    """The valid key most like `name` (keys of the same section first)."""
    section = name.rsplit(".", 1)[0] if "." in name else ""
    same_section = [k for k in _DEFAULT_KEYS if k.rsplit(".", 1)[0] == section]
    for candidates in (same_section, list(_DEFAULT_KEYS)):
        match = difflib.get_close_matches(name, candidates, n=1, cutoff=0.5)
        if match:
            return match[0]
    return max(_DEFAULT_KEYS, key=lambda k: difflib.SequenceMatcher(None, name, k).ratio())


# Lists of numbers of any length (other list keys keep their default's length and types).
NUMBER_LISTS = ("evaluation.noise_sigmas_px",)


def _float_if_number(text):
    """'1e-3' -> 0.001; text that is no number stays as it is (the type check refuses it)."""
    try:
        return float(text)
    except ValueError:
        return text


def _check_type(name, value, default, source):
    expected = type(default)
    if isinstance(default, float) and isinstance(value, str):
        value = _float_if_number(value)  # YAML 1.1 reads "1e-3" (no dot) as a string
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif name in NUMBER_LISTS:
        ok = isinstance(value, list) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        if ok:
            return [float(v) for v in value]
    elif isinstance(default, list):
        ok = isinstance(value, list) and len(value) == len(default) and all(
            isinstance(v, type(d)) for v, d in zip(value, default))
    else:
        ok = isinstance(value, expected)
    if not ok:
        raise ConfigError("%s: key '%s' must be %s like the default %r, got %r"
                          % (source, name, expected.__name__, default, value))
    return float(value) if isinstance(default, float) else value


def _set(tree, name, value, source):
    if name in _DEFAULT_SECTIONS:
        keys = sorted(k for k in _DEFAULT_KEYS if k.startswith(name + "."))
        raise ConfigError("%s: '%s' is a section, not a value; set one of its keys: %s"
                          % (source, name, ", ".join(keys)))
    if name not in _DEFAULT_KEYS:
        raise ConfigError("%s: unknown key '%s'; did you mean '%s'?"
                          % (source, name, _closest(name)))
    value = _check_type(name, value, _DEFAULT_KEYS[name], source)
    node = tree
    *parents, leaf = name.split(".")
    for part in parents:
        node = node[part]
    node[leaf] = value


def _validate(config, source):
    backbone = config["model"]["backbone"]["type"]
    if backbone not in BACKBONES:
        raise ConfigError("%s: model.backbone.type '%s' is not one of %s (mvn/models/backbones.py)"
                          % (source, backbone, ", ".join(BACKBONES)))
    if config["dataset"]["name"] not in benchmarks.NAMES:
        raise ConfigError("%s: dataset.name must be one of %s, got '%s'"
                          % (source, ", ".join(benchmarks.NAMES), config["dataset"]["name"]))
    if config["model"]["backbone"]["bn_mode"] not in ("eval", "train"):
        raise ConfigError("%s: model.backbone.bn_mode must be 'eval' or 'train', got '%s'"
                          % (source, config["model"]["backbone"]["bn_mode"]))
    if config["task"] not in ("capf", "detector"):
        raise ConfigError("%s: task must be 'capf' (the 3D lifter) or 'detector' (the 2D "
                          "detector stage), got '%s'" % (source, config["task"]))
    if config["train"]["feature_cache"] not in ("none", "memory", "disk"):
        raise ConfigError("%s: train.feature_cache must be 'none', 'memory' or 'disk', got '%s'"
                          % (source, config["train"]["feature_cache"]))
    if config["dataset"]["format"] not in ("pkl", "store"):
        raise ConfigError("%s: dataset.format must be 'pkl' or 'store', got '%s'"
                          % (source, config["dataset"]["format"]))
    if config["model"]["embed_dim_ratio"] % 8:
        raise ConfigError("%s: model.embed_dim_ratio must be a multiple of 8 (8 attention heads), "
                          "got %d" % (source, config["model"]["embed_dim_ratio"]))
    if not 1 <= config["model"]["levels"] <= 4:
        raise ConfigError("%s: model.levels must be 1..4 (the backbone has 4 feature maps)" % source)
    if config["dataset"]["bad_records"] not in ("error", "drop"):
        raise ConfigError("%s: dataset.bad_records must be 'error' or 'drop', got '%s'"
                          % (source, config["dataset"]["bad_records"]))
    if config["dataset"]["num_workers"] < 0:
        raise ConfigError("%s: dataset.num_workers must be 0 (load in the main process) or more, "
                          "got %d" % (source, config["dataset"]["num_workers"]))
    round_mm = config["train"]["best_epoch_round_mm"]
    if round_mm != 0 and not any(round_mm == 10.0 ** -k for k in range(-3, 7)):
        raise ConfigError("%s: train.best_epoch_round_mm must be 0 (no rounding) or a power of "
                          "ten such as 0.1, got %r" % (source, round_mm))
    evaluation = config["evaluation"]
    if evaluation["noise_sweep"] and not evaluation["noise_sigmas_px"]:
        raise ConfigError("%s: evaluation.noise_sigmas_px is empty; give the sigmas of the sweep, "
                          "e.g. [0, 1, 2, 3, 4, 5]" % source)
    if any(not sigma >= 0 for sigma in evaluation["noise_sigmas_px"]) \
            or not config["train"]["noise_2d_px"] >= 0:
        raise ConfigError("%s: evaluation.noise_sigmas_px and train.noise_2d_px are noise sigmas "
                          "in pixels: each must be 0 or more" % source)
    if not evaluation["hard_frame_threshold_px"] >= 0:
        raise ConfigError("%s: evaluation.hard_frame_threshold_px must be 0 or more" % source)
    for name in ("train.batch_size", "val.batch_size", "train.n_epochs",
                 "train.collective_timeout_s"):
        section, key = name.split(".")
        if config[section][key] < 1:
            raise ConfigError("%s: %s must be at least 1" % (source, name))


def _translate_released(flat, path, warn):
    try:
        ours, ignored, note = released_config.translate_released_config(flat, path)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    warn("%s is a configuration file of the released code: %s; %d key(s) without an effect "
         "here or there were ignored: %s" % (path, note, len(ignored), ", ".join(ignored)))
    return ours


def parse_override(text):
    """'train.batch_size=64' -> ('train.batch_size', 64); the value is read as YAML."""
    if "=" not in text:
        raise ConfigError("override '%s' must look like key=value, e.g. train.batch_size=64" % text)
    name, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise ConfigError("override '%s': value is not valid YAML (%s)" % (text, error)) from None
    return name.strip(), value


def _read_yaml(path):
    """The mapping in the YAML file at `path` (an empty file is an empty mapping)."""
    try:
        with open(path) as f:
            loaded = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError("config file %s does not exist (see experiments/)" % path) from None
    except yaml.YAMLError as error:
        raise ConfigError("config file %s is not valid YAML: %s" % (path, error)) from None
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise ConfigError("config file %s must hold a mapping of keys, got %s"
                          % (path, type(loaded).__name__))
    return loaded


def _file_settings(path, warn, chain=()):
    """[(source, flat settings)] of the file at `path`, its `base:` file's first.

    `base: other.yaml` (relative to the file's folder) starts a file from another one: the
    old-path configs name the published recipe instead of copying it."""
    if os.path.abspath(path) in chain:
        raise ConfigError("config file %s: `base` files form a cycle: %s"
                          % (path, " -> ".join(chain + (os.path.abspath(path),))))
    loaded = _read_yaml(path)
    base = loaded.pop("base", None)
    settings = []
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError("config file %s: `base` must be a file name, got %r" % (path, base))
        base_path = os.path.join(os.path.dirname(path), base)
        settings = _file_settings(base_path, warn, chain + (os.path.abspath(path),))
    flat = _flatten(loaded)
    if released_config.is_released_config(loaded):
        flat = _translate_released(flat, path, warn)
    return settings + [(path, flat)]


def load_config(path=None, overrides=(), warn=None):
    """Defaults, merged with the YAML file at `path` (if any), then the `key=value` overrides.

    A file written for the released code (mvn.released_config) is read as it is: its keys with
    an effect are mapped onto ours, and `warn` (default: this module's logger) gets one message
    listing the keys without an effect and how the learning rate was read. Returns a read-only
    config (attribute access: config.train.batch_size)."""
    config = copy.deepcopy(DEFAULTS)
    if path is not None:
        for source, flat in _file_settings(path, warn or logger.warning):
            for name, value in flat.items():
                _set(config, name, value, source)
    for text in overrides:
        name, value = parse_override(text)
        _set(config, name, value, "override '%s'" % text)
    _validate(config, path or "config")
    return Config(config)


def config_to_yaml(config):
    """The resolved config as YAML text (written into every experiment folder)."""
    return yaml.safe_dump(to_plain(config), sort_keys=False)
