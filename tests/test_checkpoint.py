"""mvn.checkpoint: the released best_epoch.bin format, last.bin, resume, finding a checkpoint."""
import os

import pytest
import torch

from mvn.checkpoint import (find_checkpoint, find_resume_checkpoint, model_state_with_module_prefix,
                            resume_state, save_checkpoints)
from mvn.config import load_config
from mvn.engine import make_optimizer
from mvn.models import build_model
from mvn.models.weights import WeightsError

TINY = ["model.backbone.type=hrnet_tiny", "model.embed_dim_ratio=32"]


def tiny_model_and_optimizer():
    config = load_config(None, TINY)
    model = build_model(config)
    return model, make_optimizer(model, config)


def test_best_and_last_checkpoints_hold_the_released_keys(tmp_path):
    model, optimizer = tiny_model_and_optimizer()
    history = [{"epoch": 0, "p1": 80.0}, {"epoch": 1, "p1": 70.0}]
    save_checkpoints(str(tmp_path), model, optimizer, 2, 0.00064 * 0.99, 70.0, history, True)
    best = torch.load(tmp_path / "checkpoints" / "best_epoch.bin", weights_only=True)
    assert set(best) == {"epoch", "lr", "model", "optimizer"}  # the released format, exactly
    assert best["epoch"] == 2 and best["lr"] == 0.00064 * 0.99
    assert set(best["model"]) == {"module." + k for k in model.state_dict()}
    last = torch.load(tmp_path / "checkpoints" / "last.bin", weights_only=True)
    assert last["epoch"] == 2 and last["best_p1"] == 70.0 and last["history"] == history
    assert not [n for n in os.listdir(tmp_path / "checkpoints") if n.endswith(".tmp")]
    # not the best: best_epoch.bin keeps the earlier epoch, last.bin moves on
    save_checkpoints(str(tmp_path), model, optimizer, 3, 0.0006, 70.0, history, False)
    assert torch.load(tmp_path / "checkpoints" / "best_epoch.bin", weights_only=True)["epoch"] == 2
    assert torch.load(tmp_path / "checkpoints" / "last.bin", weights_only=True)["epoch"] == 3


def test_resume_restores_weights_optimizer_and_progress(tmp_path):
    model, optimizer = tiny_model_and_optimizer()
    model.volume_net.head[1].bias.data.fill_(0.25)
    optimizer.param_groups[0]["lr"] = 0.123
    save_checkpoints(str(tmp_path), model, optimizer, 4, 0.123, 55.5, [{"epoch": 3}], True)
    path = find_resume_checkpoint(str(tmp_path))                  # the folder works
    assert path == os.path.join(str(tmp_path), "checkpoints", "last.bin")
    fresh, fresh_optimizer = tiny_model_and_optimizer()
    assert resume_state(fresh, fresh_optimizer, path) == (4, 55.5, [{"epoch": 3}])
    assert torch.equal(fresh.volume_net.head[1].bias, torch.full((3,), 0.25))
    assert fresh_optimizer.param_groups[0]["lr"] == 0.123
    with pytest.raises(WeightsError, match="nothing to resume"):
        find_resume_checkpoint(str(tmp_path / "elsewhere"))


def test_a_best_epoch_file_without_optimizer_cannot_be_resumed(tmp_path):
    model, optimizer = tiny_model_and_optimizer()
    path = str(tmp_path / "weights_only.bin")
    torch.save({"model": model_state_with_module_prefix(model)}, path)
    with pytest.raises(WeightsError, match="lacks epoch, optimizer"):
        resume_state(model, optimizer, path)


def test_released_checkpoint_name_is_found(tmp_path):
    (tmp_path / "best_epoch_hrnet_32.bin").write_bytes(b"x")
    found = find_checkpoint(str(tmp_path / "best_epoch.bin"), "hrnet_32")
    assert found == str(tmp_path / "best_epoch_hrnet_32.bin")
    with pytest.raises(WeightsError, match="best_epoch_cpn.bin"):
        find_checkpoint(str(tmp_path / "best_epoch.bin"), "cpn")
    with pytest.raises(WeightsError, match="not found"):
        find_checkpoint(str(tmp_path / "other.bin"), "cpn")
