"""mvn.released_config: the released repository's YAML files, read unchanged (kept as test data in
tests/data/released_configs/, see the README there), give the published recipe."""
import os

import pytest
import torch

from conftest import REPO_ROOT
from mvn.config import ConfigError, load_config
from mvn.recipe import make_optimizer
from mvn.models import build_model

EXPERIMENTS = os.path.join(REPO_ROOT, "experiments")
RELEASED_CONFIGS = os.path.join(REPO_ROOT, "tests", "data", "released_configs")


def optimizer_of(config):
    with torch.device("meta"):  # full-size model, no memory
        return make_optimizer(build_model(config), config)


RECIPE_KEYS = ["model.backbone.type", "model.backbone.pretrained", "model.backbone.frozen",
               "model.embed_dim_ratio", "model.depth", "model.levels", "model.drop_path_rate",
               "train.batch_size", "train.volume_net_lr", "train.sampling_offsets_lr_factor",
               "train.weight_decay", "train.lr_decay", "train.flip_augmentation", "train.tf32",
               "loss.grad_clip", "val.batch_size", "val.flip_test"]


def value(config, key):
    for part in key.split("."):
        config = config[part]
    return config


@pytest.mark.parametrize("name, revision", [("human36m_vol_softmax_single.yaml", "2023"),
                                            ("human36m.yaml", "2024")])
def test_released_config_files_load_unchanged_and_give_the_published_recipe(name, revision):
    warnings = []
    released = load_config(os.path.join(RELEASED_CONFIGS, name), warn=warnings.append)
    ours = load_config(os.path.join(EXPERIMENTS, "human36m/hrnet_32.yaml"))
    for key in RECIPE_KEYS:
        expected = value(ours, key)
        if isinstance(expected, float):
            assert value(released, key) == pytest.approx(expected, rel=1e-12), key
        else:  # strings, integers and booleans exactly
            assert value(released, key) == expected, key
    assert released.train.n_epochs == 9999  # as released: no fixed end
    assert len(warnings) == 1 and "released %s config" % revision in warnings[0]
    for ignored in ("azureroot", "train.backbone_lr", "val.retain_every_n_frames_in_test",
                    "loss.use_volumetric_ce_loss", "train.with_damaged_actions"):
        assert ignored in warnings[0]
    for mapped in ("train.volume_net_lr,", "train.batch_size,", "val.flip_test,"):
        assert mapped not in warnings[0]
    optimizer = optimizer_of(released)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.00064], rel=1e-12)


def test_released_config_with_an_unsupported_value_is_a_config_error(tmp_path):
    path = tmp_path / "released.yaml"
    with open(os.path.join(RELEASED_CONFIGS, "human36m.yaml")) as f:
        path.write_text(f.read().replace('criterion: "MPJPE"', 'criterion: "MAE"'))
    with pytest.raises(ConfigError, match="'loss.criterion' is 'MAE'"):
        load_config(str(path), warn=lambda message: None)
