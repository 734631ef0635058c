"""The released repository's YAML files, read unchanged and mapped onto this project's keys.

The released CA-PF code (QitaoZhao/ContextAware-PoseFormer) configures a run with YAML files such
as `experiments/human36m/human36m.yaml` (its 2024 revision) and
`experiments/human36m/train/human36m_vol_softmax_single.yaml` (the 2023 release). Most of their
keys are left over from the code it grew out of and change nothing. `translate_released_config`
maps the keys that do have an effect onto ours, checks the ones that allow a single value here,
and returns every other key so that the caller can list them in one warning.

The learning rate depends on which train.py read the file (docs/fidelity.md, "Learning rate"):
the 2023 train.py builds two parameter groups but, through its `match_name_keywords` quirk, puts
every parameter into the `sampling_offsets` group at 0.1 x `train.volume_net_lr`; the 2024
revision trains one group at `train.volume_net_lr`. A file with `model.backbone.type` is the
2024 revision's; one without it is the 2023 release's.
"""
from mvn.models.backbones import BACKBONES

# Values of the released code's defaults (its mvn/utils/cfg.py) for the keys mapped below, used
# where a released file leaves a key out.
RELEASED_DEFAULTS = {
    "model.backbone.init_weights": True,
    "model.backbone.fix_weights": False,
    "model.poseformer.embed_dim_ratio": 128,
    "model.poseformer.depth": 4,
    "model.poseformer.levels": 4,
    "model.init_weights": True,
    "model.checkpoint": None,
    "loss.grad_clip": 0,
    "train.n_epochs": 9999,
    "train.batch_size": 3,
    "train.volume_net_lr": 0.001,
    "train.volume_net_lr_decay": 0.99,
    "train.num_workers": 8,
    "val.batch_size": 6,
    "val.flip_test": True,
}

# released key -> our key, copied as they are.
DIRECT_KEYS = {
    "title": "title",
    "model.backbone.fix_weights": "model.backbone.frozen",
    "model.poseformer.embed_dim_ratio": "model.embed_dim_ratio",
    "model.poseformer.depth": "model.depth",
    "model.poseformer.levels": "model.levels",
    "loss.grad_clip": "loss.grad_clip",
    "dataset.root": "dataset.root",
    "dataset.train_labels_path": "dataset.train_labels_path",
    "dataset.val_labels_path": "dataset.val_labels_path",
    "train.n_epochs": "train.n_epochs",
    "train.batch_size": "train.batch_size",
    "train.volume_net_lr_decay": "train.lr_decay",
    "train.num_workers": "dataset.num_workers",
    "val.batch_size": "val.batch_size",
    "val.flip_test": "val.flip_test",
}

# released key -> the one value this project (and the released Human3.6M pipeline) supports.
SINGLE_VALUE_KEYS = {
    "kind": "human36m",
    "dataset.kind": "human36m",
    "model.image_shape": [192, 256],
    "loss.criterion": "MPJPE",
    "train.shuffle": True,
}

# Published backbone file names (mvn/models/backbones.py): a released `model.backbone.checkpoint`
# naming one of them means "the published file", found in data/pretrained/ or its coco/.
PUBLISHED_BACKBONE_FILES = tuple(b.published_file for b in BACKBONES.values() if b.published_file)


def is_released_config(loaded):
    """True for a mapping written for the released code (it has the top-level key `kind`)."""
    return isinstance(loaded, dict) and "kind" in loaded


def released_revision(flat):
    """'2024' (one parameter group) or '2023' (the sampling_offsets quirk) for a released file."""
    return "2024" if "model.backbone.type" in flat else "2023"


def translate_released_config(flat, source):
    """Released keys (flattened, 'a.b.c' -> value) -> (our keys -> values, ignored keys, notes).

    `ignored` lists every key of the file without an effect in the released Human3.6M training
    (the caller warns about them once); `notes` says how the learning rate was read. Raises
    ValueError naming the key for a value that only the released code's other paths support.
    """
    values = dict(RELEASED_DEFAULTS)
    values.update(flat)
    ours, used = {}, set()
    for key, expected in SINGLE_VALUE_KEYS.items():
        if key in flat:
            used.add(key)
            if flat[key] != expected:
                raise ValueError("%s: released key '%s' is %r; only %r is supported (the released "
                                 "Human3.6M training)" % (source, key, flat[key], expected))
    for released, key in DIRECT_KEYS.items():
        if released in values:
            used.add(released)
            ours[key] = values[released]

    revision = released_revision(flat)
    used.add("train.volume_net_lr")
    if revision == "2023":
        # Two groups meant, one in effect: every parameter at 0.1 x volume_net_lr.
        ours["train.volume_net_lr"] = float(values["train.volume_net_lr"]) * 0.1
        note = ("released 2023 config: train.volume_net_lr %g trains every parameter at %g "
                "(the released sampling_offsets quirk, docs/fidelity.md)"
                % (values["train.volume_net_lr"], ours["train.volume_net_lr"]))
        # Its clipping threshold is grad_clip / the file's volume_net_lr: the same threshold
        # over the lr in effect needs a tenth of grad_clip.
        ours["loss.grad_clip"] = float(values["loss.grad_clip"]) * 0.1
    else:
        ours["train.volume_net_lr"] = float(values["train.volume_net_lr"])
        note = ("released 2024 config: one parameter group at train.volume_net_lr %g"
                % ours["train.volume_net_lr"])
    ours["train.sampling_offsets_lr_factor"] = 1.0
    ours["train.weight_decay"] = 0.1   # fixed in the released train.py

    used.update(("model.backbone.init_weights", "model.backbone.checkpoint"))
    if not values["model.backbone.init_weights"]:
        ours["model.backbone.pretrained"] = "none"
    elif flat.get("model.backbone.checkpoint"):
        path = str(flat["model.backbone.checkpoint"])
        published = path.replace("\\", "/").rsplit("/", 1)[-1] in PUBLISHED_BACKBONE_FILES
        ours["model.backbone.pretrained"] = "" if published else path

    # The 2023 train.py loads whole-model weights from model.checkpoint when model.init_weights.
    if revision == "2023" and values["model.init_weights"] and flat.get("model.checkpoint"):
        used.update(("model.init_weights", "model.checkpoint"))
        ours["model.init_weights"] = str(flat["model.checkpoint"])

    # The released train.py sets the backbone from --backbone (default hrnet_32), whatever the
    # file says: model.backbone.type is listed as ignored, and hrnet_32 is the default here too.
    ours["model.backbone.type"] = "hrnet_32"
    ignored = sorted(key for key in flat if key not in used)
    return ours, ignored, note
