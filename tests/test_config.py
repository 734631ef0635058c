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


def test_old_paths_name_the_published_recipe_instead_of_copying_it():
    published = load_config(os.path.join(EXPERIMENTS, "human36m/train/human36m_vol_softmax_single.yaml"))
    hrnet_32 = load_config(os.path.join(EXPERIMENTS, "human36m/hrnet_32.yaml"))
    assert config_to_yaml(published) == config_to_yaml(hrnet_32)
    revised = load_config(os.path.join(EXPERIMENTS, "human36m/human36m.yaml"))
    assert revised.title == "human36m"
    assert {**revised.train} == {**hrnet_32.train} and {**revised.model} == {**hrnet_32.model}
    with open(os.path.join(EXPERIMENTS, "human36m/human36m.yaml")) as f:
        assert "volume_net_lr" not in f.read()  # a name, not a copy


def test_base_files_must_not_form_a_cycle(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(str(tmp_path / "a.yaml"))


def test_overrides_are_typed_and_applied():
    config = load_config(None, ["train.batch_size=64", "train.volume_net_lr=1e-3",
                                "model.backbone.type=cpn", "train.volume_net_lr=2"])
    assert config.train.batch_size == 64
    assert config.train.volume_net_lr == 2.0 and isinstance(config.train.volume_net_lr, float)
    assert config.model.backbone.type == "cpn"


def test_crop_shape_is_not_a_config_key():
    # The crop is 256 x 192 everywhere (mvn.geometry.CROP_SHAPE): no key pretends otherwise.
    with pytest.raises(ConfigError, match="unknown key 'dataset.image_shape'"):
        load_config(None, ["dataset.image_shape=[128, 96]"])


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
    with pytest.raises(ConfigError, match="is not one of hrnet_32, hrnet_48, cpn, hrnet_tiny"):
        load_config(None, ["model.backbone.type=resnet"])
    for value in (0, -5):
        with pytest.raises(ConfigError, match="train.collective_timeout_s must be at least 1"):
            load_config(None, ["train.collective_timeout_s=%d" % value])
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


def test_config_is_read_only_after_validation():
    import copy
    import pickle
    config = load_config(None, ["train.batch_size=64"])
    with pytest.raises(TypeError, match="read-only"):
        config.train.batch_size = 8
    with pytest.raises(TypeError, match="read-only"):
        config["train"]["batch_size"] = 8
    with pytest.raises(TypeError, match="read-only"):
        config.train.update(batch_size=8)
    assert config.train.batch_size == 64
    for twin in (copy.deepcopy(config), pickle.loads(pickle.dumps(config))):
        assert twin == config and twin.train.batch_size == 64
    with pytest.raises(AttributeError, match="no key 'batch_sise'"):
        config.train.batch_sise
