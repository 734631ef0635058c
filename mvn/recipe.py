"""The released training recipe's pieces: the model to train (its pretrained backbone, layout),
the optimiser and its groups, the learning rate of each epoch, and the numeric precision.

What each reproduces of the released code (one AdamW group at 0.00064, the per-epoch decay by
repeated multiplication, ...) is listed in docs/fidelity.md; mvn/engine.py runs them.
"""
import logging
import os
from contextlib import nullcontext

import torch

from mvn.models import BACKBONES, build_model, default_pretrained_path
from mvn.models.weights import WeightsError, load_backbone_weights, load_model_weights

logger = logging.getLogger(__name__)


def resolve_pretrained_path(config):
    """The backbone file to start from, or None for 'none' (random backbone)."""
    value = config.model.backbone.pretrained
    backbone = config.model.backbone.type
    if value.lower() == "none":
        return None
    if value:
        return value
    path = default_pretrained_path(backbone)
    if path is None:
        raise WeightsError("backbone '%s' has no published weights: set "
                           "model.backbone.pretrained to a file, or to none" % backbone)
    return path


def build_training_model(config):
    """build_model + the pretrained backbone + optional whole-model init weights."""
    model = build_model(config)
    path = None if model.backbone is None else resolve_pretrained_path(config)
    if model.backbone is None:
        logger.info("model.image_features is false: no backbone, the 2D joints alone are lifted")
    elif path is not None:
        if not os.path.isfile(path):
            raise WeightsError("pretrained backbone %s not found: download the published file "
                               "into data/pretrained/ or data/pretrained/coco/ (see README), or "
                               "set model.backbone.pretrained" % path)
        load_backbone_weights(model.backbone, path,
                              BACKBONES[config.model.backbone.type].head_prefixes)
        logger.info("backbone weights: %s", path)
    else:
        logger.warning("model.backbone.pretrained is none: the backbone keeps its random "
                       "initialisation")
    if config.model.init_weights:
        load_model_weights(model, config.model.init_weights)
        logger.info("model weights: %s", config.model.init_weights)
    return model


def apply_channels_last(model, config):
    """train.channels_last: the backbone's weights in NHWC and its input the NHWC batch itself
    (CA_PF permutes the (B, 256, 192, 3) images without the copy the released code makes), so
    the convolutions run channels-last. Off (the default): the released NCHW layout."""
    if config.train.channels_last and model.backbone is not None:
        model.backbone.to(memory_format=torch.channels_last)
        model.channels_last = True
    return model


def group_lr_factors(config):
    """The lr factor of each optimiser group: [1.0] for the released recipe (one group), or
    [1.0, f] for the intended two-group recipe (`sampling_offsets` at f x lr)."""
    factor = config.train.sampling_offsets_lr_factor
    return [1.0] if factor == 1.0 else [1.0, factor]


def make_optimizer(model, config):
    """AdamW (weight decay on every parameter) over the trainable `volume_net` parameters.

    One group at train.volume_net_lr, as the released code trains (docs/fidelity.md, "Learning
    rate"); with train.sampling_offsets_lr_factor != 1, the paper's intended two groups."""
    lr = config.train.volume_net_lr
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    factors = group_lr_factors(config)
    if len(factors) == 1:  # the released order: volume_net.named_parameters()
        groups = [{"params": [p for _, p in trainable], "lr": lr}]
    else:
        others = [p for n, p in trainable if "sampling_offsets" not in n]
        offsets = [p for n, p in trainable if "sampling_offsets" in n]
        groups = [{"params": others, "lr": lr}, {"params": offsets, "lr": lr * factors[1]}]
    return torch.optim.AdamW(groups, lr=lr, weight_decay=config.train.weight_decay)


def learning_rate(config, epoch):
    """The lr of `epoch` (0-based): train.volume_net_lr decayed by train.lr_decay once per
    finished epoch, by repeated multiplication as the released loop does (same float64 values)."""
    lr = config.train.volume_net_lr
    for _ in range(epoch):
        lr *= config.train.lr_decay
    return lr


def set_learning_rate(optimizer, config, epoch):
    """Every group's lr for `epoch`; returns the base lr (the one `best_epoch.bin` records)."""
    lr = learning_rate(config, epoch)
    for group, factor in zip(optimizer.param_groups, group_lr_factors(config)):
        group["lr"] = lr * factor
    return lr


def configure_tf32(config):
    """train.tf32: TF32 for CUDA matmuls and cuDNN convolutions; off (the default) = exact fp32.
    The published numbers were made with PyTorch 1.11, where both were TF32 by default."""
    torch.backends.cuda.matmul.allow_tf32 = config.train.tf32
    torch.backends.cudnn.allow_tf32 = config.train.tf32


def autocast(config, device):
    """train.amp: bf16 autocast for the forward pass; otherwise nothing."""
    if not config.train.amp:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
