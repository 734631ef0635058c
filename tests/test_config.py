"""Config: defaults + YAML + overrides, validated with errors that name the key."""
import glob
import os

import pytest

from conftest import REPO_ROOT
from mvn.config import ConfigError, config_to_yaml, load_config

EXPERIMENTS = os.path.join(REPO_ROOT, "experiments")


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(EXPERIMENTS, "**", "*.yaml"),
                                                  recursive=True)))
def test_every_experiment_config_loads(path):
    config = load_config(path)
    assert config.model.backbone.type


def test_published_recipes():
    published = load_config(os.path.join(EXPERIMENTS, "human36m/train/human36m_vol_softmax_single.yaml"))
    hrnet_32 = load_config(os.path.join(EXPERIMENTS, "human36m/hrnet_32.yaml"))
    assert config_to_yaml(published) == config_to_yaml(hrnet_32)
    assert published.model.backbone.type == "hrnet_32"
    assert published.train.volume_net_lr == 0.0064
    assert published.train.sampling_offsets_lr_factor == 0.1
    assert published.train.weight_decay == 0.1 and published.train.lr_decay == 0.99
    assert published.train.batch_size == 512 and published.model.embed_dim_ratio == 128
    cpn = load_config(os.path.join(EXPERIMENTS, "human36m/cpn.yaml"))
    assert cpn.model.backbone.type == "cpn" and cpn.train.batch_size == 256
    revised = load_config(os.path.join(EXPERIMENTS, "human36m/human36m.yaml"))
    assert revised.train.volume_net_lr == 0.00064
    assert revised.train.sampling_offsets_lr_factor == 1.0


def test_overrides_are_typed_and_applied():
    config = load_config(None, ["train.batch_size=64", "train.volume_net_lr=1e-3",
                                "model.backbone.type=cpn", "dataset.image_shape=[128, 96]",
                                "train.volume_net_lr=2"])
    assert config.train.batch_size == 64
    assert config.train.volume_net_lr == 2.0 and isinstance(config.train.volume_net_lr, float)
    assert config.model.backbone.type == "cpn"
    assert config.dataset.image_shape == [128, 96]


def test_yaml_typo_names_key_and_closest(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("train:\n  batch_sise: 64\n")
    with pytest.raises(ConfigError) as error:
        load_config(str(path))
    assert str(path) in str(error.value)
    assert "'train.batch_sise'" in str(error.value) and "'train.batch_size'" in str(error.value)


def test_wrong_type_and_bad_values_are_errors(tmp_path):
    with pytest.raises(ConfigError, match="'train.batch_size' must be int"):
        load_config(None, ["train.batch_size=big"])
    with pytest.raises(ConfigError, match="'val.flip_test' must be bool"):
        load_config(None, ["val.flip_test=1"])
    with pytest.raises(ConfigError, match="is not one of"):
        load_config(None, ["model.backbone.type=resnet"])
    with pytest.raises(ConfigError, match="is a section"):
        load_config(None, ["model.backbone=cpn"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["train.batch_size"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(bad))
