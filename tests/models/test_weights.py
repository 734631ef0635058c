"""Loading published files: best_epoch.bin, HRNet COCO .pth, CPN .pth.tar; clear errors."""
import os

import numpy as np
import pytest
import torch

from conftest import load_reference
from mvn.config import load_config
from mvn.models import build_model
from mvn.models.backbones import BACKBONES
from mvn.models.weights import (WeightsError, load_backbone_weights,
                                load_model_weights)

TINY = ["model.backbone.type=hrnet_tiny", "model.embed_dim_ratio=32"]


@pytest.fixture(scope="module")
def tiny_reference():
    return load_reference("tiny_vectors.pt")


def tiny_model():
    return build_model(load_config(None, TINY)).eval()


def test_best_epoch_with_module_prefix_loads_and_predicts(tmp_path, tiny_reference):
    path = tmp_path / "best_epoch.bin"
    state = {"module." + k: v for k, v in tiny_reference["state_dict"].items()}
    torch.save({"epoch": 3, "lr": 0.0064, "model": state, "optimizer": {}}, path)
    model = tiny_model()
    checkpoint = load_model_weights(model, str(path))
    assert checkpoint["epoch"] == 3
    with torch.no_grad():
        output = model(tiny_reference["images"], tiny_reference["keypoints_2d"],
                       tiny_reference["keypoints_2d_crop"])
    torch.testing.assert_close(output, tiny_reference["output"], rtol=1e-5, atol=1e-5)


def test_truncated_file_is_one_clear_error(tmp_path, tiny_reference):
    path = tmp_path / "best_epoch.bin"
    torch.save({"model": tiny_reference["state_dict"]}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="best_epoch.bin is damaged: it is cut short"):
        load_model_weights(tiny_model(), str(path))


def test_file_needing_arbitrary_unpickling_is_refused(tmp_path):
    path = tmp_path / "evil.bin"
    torch.save({"model": {"w": torch.zeros(1)}, "hook": os.path.join}, path)  # a function
    with pytest.raises(WeightsError, match="run code"):
        load_model_weights(tiny_model(), str(path))


def test_checkpoint_of_another_backbone_names_it(tmp_path, tiny_reference):
    path = tmp_path / "best_epoch.bin"
    torch.save({"model": {"module." + k: v for k, v in tiny_reference["state_dict"].items()}},
               path)
    model = build_model(load_config(None, ["model.backbone.type=hrnet_32"]))
    with pytest.raises(WeightsError) as error:
        load_model_weights(model, str(path))
    message = str(error.value)
    assert "missing keys" in message and "wrong shape" in message
    assert "looks like a 'hrnet_tiny' checkpoint" in message and "'hrnet_32'" in message
    assert message.count("\n") < 8  # one short message, first few keys only


def test_hrnet_coco_file_drops_final_layer_and_reports_it(tmp_path, tiny_reference):
    backbone_state = {k[len("backbone."):]: v for k, v in tiny_reference["state_dict"].items()
                      if k.startswith("backbone.")}
    coco = dict(backbone_state)
    coco["final_layer.weight"] = torch.zeros(17, 8, 1, 1)
    coco["final_layer.bias"] = torch.zeros(17)
    path = tmp_path / "pose_hrnet_tiny.pth"
    torch.save(coco, path)
    model = tiny_model()
    dropped = load_backbone_weights(model.backbone, str(path), BACKBONES["hrnet_tiny"].head_prefixes)
    assert dropped == ["final_layer.bias", "final_layer.weight"]
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, backbone_state[k])


def test_cpn_style_file_with_state_dict_and_module_prefix(tmp_path, tiny_reference):
    backbone_state = {"module." + k[len("backbone."):]: v
                      for k, v in tiny_reference["state_dict"].items() if k.startswith("backbone.")}
    path = tmp_path / "backbone.pth.tar"
    torch.save({"epoch": 1, "state_dict": backbone_state}, path)
    model = tiny_model()
    assert load_backbone_weights(model.backbone, str(path), BACKBONES["cpn"].head_prefixes) == []


def test_cpn_weights_into_hrnet_backbone_is_refused(tmp_path):
    path = tmp_path / "CPN50_256x192.pth.tar"
    torch.save({"state_dict": {"module.resnet.conv1.weight": torch.zeros(64, 3, 7, 7)}}, path)
    with pytest.raises(WeightsError, match="looks like a 'cpn' checkpoint"):
        load_backbone_weights(tiny_model().backbone, str(path))


def test_missing_file_and_non_state_dict(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        load_model_weights(tiny_model(), str(tmp_path / "nope.bin"))
    path = tmp_path / "list.bin"
    torch.save([1, 2, 3], path)
    with pytest.raises(WeightsError, match="holds no state dict"):
        load_model_weights(tiny_model(), str(path))
    noise = tmp_path / "noise.bin"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(WeightsError, match="is damaged or not a PyTorch checkpoint") as error:
        load_model_weights(tiny_model(), str(noise))
    assert len(str(error.value)) < 250 and "weights_only" not in str(error.value)
    objects = tmp_path / "objects.bin"
    torch.save({"model": {}, "extra": WeightsError("a Python object")}, objects)
    with pytest.raises(WeightsError, match="holds Python objects besides tensors"):
        load_model_weights(tiny_model(), str(objects))
