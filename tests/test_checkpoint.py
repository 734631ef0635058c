"""mvn.checkpoint: the released best_epoch.bin format, last.bin (mid-epoch position, the previous
one kept), resume and its refusals, failed writes, finding a checkpoint."""
import os

import pytest
import torch

from mvn import checkpoint
from mvn.checkpoint import (CheckpointWriteError, experiment_folder_of, find_checkpoint,
                            model_state_with_module_prefix, resume_state, save_best, save_last)
from mvn.config import load_config
from mvn.recipe import make_optimizer
from mvn.experiment import write_config
from mvn.models import build_model
from mvn.models.weights import WeightsError

TINY = ["model.backbone.type=hrnet_tiny", "model.embed_dim_ratio=32"]


def tiny_model_and_optimizer():
    config = load_config(None, TINY)
    model = build_model(config)
    return model, make_optimizer(model, config)


def experiment(tmp_path):
    folder = str(tmp_path / "run@20261126-120000")
    os.makedirs(folder)
    write_config(folder, load_config(None, TINY))
    return folder


def test_best_epoch_holds_exactly_the_released_keys(tmp_path):
    model, optimizer = tiny_model_and_optimizer()
    save_best(str(tmp_path), model, optimizer, 2, 0.00064 * 0.99)
    best = torch.load(tmp_path / "checkpoints" / "best_epoch.bin", weights_only=True)
    assert set(best) == {"epoch", "lr", "model", "optimizer"}  # the released format, exactly
    assert best["epoch"] == 2 and best["lr"] == 0.00064 * 0.99
    assert set(best["model"]) == {"module." + k for k in model.state_dict()}


def test_last_keeps_the_previous_one_and_resume_falls_back_to_it(tmp_path):
    folder = experiment(tmp_path)
    model, optimizer = tiny_model_and_optimizer()
    model.volume_net.head[1].bias.data.fill_(0.25)
    save_last(folder, model, optimizer, (3, 40), 0.1, 55.5, [{"epoch": 2}], {"steps": 40})
    model.volume_net.head[1].bias.data.fill_(0.5)
    save_last(folder, model, optimizer, (3, 50), 0.1, 55.5, [{"epoch": 2}], {"steps": 50})
    names = sorted(os.listdir(os.path.join(folder, "checkpoints")))
    assert names == ["last.bin", "last.previous.bin"]          # no .tmp left
    fresh, fresh_optimizer = tiny_model_and_optimizer()
    assert resume_state(fresh, fresh_optimizer, folder) == (3, 50, 55.5, [{"epoch": 2}],
                                                            {"steps": 50})
    assert torch.equal(fresh.volume_net.head[1].bias, torch.full((3,), 0.5))
    last = os.path.join(folder, "checkpoints", "last.bin")
    with open(last, "r+b") as f:                                 # torn, e.g. a failing disk
        f.truncate(os.path.getsize(last) // 3)
    fresh, fresh_optimizer = tiny_model_and_optimizer()
    assert resume_state(fresh, fresh_optimizer, folder)[:2] == (3, 40)   # the previous one
    assert torch.equal(fresh.volume_net.head[1].bias, torch.full((3,), 0.25))


def saves_watching_last_bin(monkeypatch, folder, model, optimizer):
    """Two save_last calls; for every rename and link on the way, whether last.bin existed
    just before and just after it (a kill -9 can land between any two of them)."""
    last = os.path.join(folder, "checkpoints", "last.bin")
    seen = []

    def watched(original):
        def call(source, destination):
            before = os.path.isfile(last)
            original(source, destination)
            seen.append((os.path.basename(destination), before, os.path.isfile(last)))
        return call

    monkeypatch.setattr(os, "replace", watched(os.replace))
    monkeypatch.setattr(os, "link", watched(os.link))
    for step in (40, 50):
        save_last(folder, model, optimizer, (3, step), 0.1, 55.5, [], {"steps": step})
    monkeypatch.undo()
    return seen


def test_last_bin_exists_at_every_instant_of_a_save(tmp_path, monkeypatch):
    folder = experiment(tmp_path)
    model, optimizer = tiny_model_and_optimizer()
    seen = saves_watching_last_bin(monkeypatch, folder, model, optimizer)
    assert [name for name, _, _ in seen] == [
        "last.bin",                                              # the first save
        "last.previous.bin.tmp", "last.previous.bin", "last.bin"]  # link, rename, rename
    assert all(before and after for _, before, after in seen[1:])
    directory = os.path.join(folder, "checkpoints")
    assert sorted(os.listdir(directory)) == ["last.bin", "last.previous.bin"]
    previous = torch.load(os.path.join(directory, "last.previous.bin"), weights_only=True)
    assert (previous["step"], torch.load(os.path.join(directory, "last.bin"),
                                         weights_only=True)["step"]) == (40, 50)


def test_without_hard_links_the_previous_one_is_renamed_and_said_once(tmp_path, monkeypatch,
                                                                      caplog):
    folder = experiment(tmp_path)
    model, optimizer = tiny_model_and_optimizer()

    def no_links(source, destination):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(checkpoint, "_warned_no_hard_links", [])
    monkeypatch.setattr(os, "link", no_links)
    with caplog.at_level("WARNING", logger="mvn.checkpoint"):
        for step in (40, 50, 60):
            save_last(folder, model, optimizer, (3, step), 0.1, 55.5, [], {"steps": step})
    monkeypatch.undo()
    assert [r.getMessage() for r in caplog.records if "hard links" in r.getMessage()] == [
        "no hard links in %s (Operation not permitted): last.bin is renamed to "
        "last.previous.bin before each save" % os.path.join(folder, "checkpoints")]
    fresh, fresh_optimizer = tiny_model_and_optimizer()
    os.remove(os.path.join(folder, "checkpoints", "last.bin"))   # a kill between the renames
    assert resume_state(fresh, fresh_optimizer, folder)[:2] == (3, 50)


def test_a_folder_without_a_checkpoint_starts_over(tmp_path):
    folder = experiment(tmp_path)
    model, optimizer = tiny_model_and_optimizer()
    assert resume_state(model, optimizer, folder) is None


def test_resume_refuses_anything_but_an_experiment_folder(tmp_path):
    folder = experiment(tmp_path)
    assert experiment_folder_of(folder) == folder
    os.makedirs(os.path.join(folder, "checkpoints"))
    last = os.path.join(folder, "checkpoints", "last.bin")
    open(last, "w").close()
    assert experiment_folder_of(last) == folder
    stray = tmp_path / "elsewhere" / "sub"
    os.makedirs(stray)
    (stray / "last.bin").write_bytes(b"x")
    for path in (str(stray / "last.bin"), str(tmp_path / "elsewhere"), str(tmp_path / "none")):
        with pytest.raises(WeightsError, match="not an experiment folder"):
            experiment_folder_of(path)
    assert os.listdir(tmp_path / "elsewhere") == ["sub"]   # nothing written there


def test_a_failed_write_removes_its_partial_file_and_says_so(tmp_path, monkeypatch):
    model, optimizer = tiny_model_and_optimizer()

    def disk_full(obj, path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 512")
    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(CheckpointWriteError, match="cannot write .*best_epoch.bin .*unexpected "
                                                   "pos.*partial file was removed"):
        save_best(str(tmp_path), model, optimizer, 1, 0.1)
    assert os.listdir(tmp_path / "checkpoints") == []


def test_a_best_epoch_file_without_optimizer_cannot_be_resumed(tmp_path):
    folder = experiment(tmp_path)
    model, optimizer = tiny_model_and_optimizer()
    os.makedirs(os.path.join(folder, "checkpoints"))
    torch.save({"model": model_state_with_module_prefix(model)},
               os.path.join(folder, "checkpoints", "last.bin"))
    with pytest.raises(WeightsError, match="lacks epoch, optimizer"):
        resume_state(model, optimizer, folder)


def test_released_checkpoint_name_is_found(tmp_path):
    (tmp_path / "best_epoch_hrnet_32.bin").write_bytes(b"x")
    found = find_checkpoint(str(tmp_path / "best_epoch.bin"), "hrnet_32")
    assert found == str(tmp_path / "best_epoch_hrnet_32.bin")
    with pytest.raises(WeightsError, match="best_epoch_cpn.bin"):
        find_checkpoint(str(tmp_path / "best_epoch.bin"), "cpn")
    with pytest.raises(WeightsError, match="not found"):
        find_checkpoint(str(tmp_path / "other.bin"), "cpn")
