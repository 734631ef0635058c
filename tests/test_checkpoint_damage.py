"""Damaged checkpoints (issue 25): the SHA-256 every checkpoint carries, verified at every load;
a flipped bit, a cut and an empty file in last.bin, last.previous.bin and best_epoch.bin found
and named, the fallback, the refusal to start over (nothing in the folder changed) and
--start-over; published files without our checksum; the free space checked before a save."""
import hashlib
import logging
import os
import shutil
import struct
import zipfile

import pytest
import torch

from mvn import checkpoint
from mvn.checkpoint import (CheckpointWriteError, ResumeRefused, model_state_with_module_prefix,
                            resume_state, save_best, save_last)
from mvn.checksum import COMMENT_BYTES, MAGIC, verify_checksum
from mvn.config import load_config
from mvn.recipe import make_optimizer
from mvn.experiment import write_config
from mvn.models import build_model
from mvn.models.weights import DamagedFileError, WeightsError, load_model_weights

TINY = ["model.backbone.type=hrnet_tiny", "model.embed_dim_ratio=32"]
FILES = ("last.bin", "last.previous.bin", "best_epoch.bin")


def tiny_model_and_optimizer():
    config = load_config(None, TINY)
    model = build_model(config)
    return model, make_optimizer(model, config)


def fill(model, value):
    model.volume_net.head[1].bias.data.fill_(value)


def bias(model):
    return model.volume_net.head[1].bias[0].item()


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """An experiment folder as a run leaves it: last.previous.bin (step 40, bias 0.25), last.bin
    (step 50, bias 0.5), best_epoch.bin (bias 0.75) and best_evaluation.json."""
    folder = str(tmp_path_factory.mktemp("saved") / "run@20261126-120000")
    os.makedirs(folder)
    write_config(folder, load_config(None, TINY))
    model, optimizer = tiny_model_and_optimizer()
    fill(model, 0.75)
    save_best(folder, model, optimizer, 3, 0.1)
    with open(os.path.join(folder, "best_evaluation.json"), "w") as f:
        f.write('{"average": {"p1": 55.5}}')
    for step, value in ((40, 0.25), (50, 0.5)):
        fill(model, value)
        save_last(folder, model, optimizer, (3, step), 0.1, 55.5, [{"epoch": 2}],
                  {"steps": step})
    return folder


@pytest.fixture
def run_folder(saved_run, tmp_path):
    """A copy of `saved_run` for one test to damage."""
    folder = str(tmp_path / os.path.basename(saved_run))
    shutil.copytree(saved_run, folder)
    return folder


def path_of(folder, name):
    return os.path.join(folder, "checkpoints", name)


def largest_record_middle(path):
    """An offset in the middle of the largest record of the zip: tensor data."""
    with zipfile.ZipFile(path) as archive:
        info = max(archive.infolist(), key=lambda i: i.compress_size)
    with open(path, "rb") as f:
        f.seek(info.header_offset + 26)
        name_length, extra_length = struct.unpack("<HH", f.read(4))
    return info.header_offset + 30 + name_length + extra_length + info.compress_size // 2


def damage(path, how):
    """Damage the file at `path` in place (as a new file: last.previous.bin may share its
    bytes with another name through a hard link)."""
    offset = largest_record_middle(path) if how == "bit in the tensor data" else None
    with open(path, "rb") as f:
        data = bytearray(f.read())
    os.remove(path)
    if how == "bit in the tensor data":
        data[offset] ^= 0x04
    elif how == "bit in the checksum":
        data[-3] ^= 0x01
    elif how == "bit in the end record":
        data[-COMMENT_BYTES - 2] ^= 0x01         # the comment's length
    elif how == "cut":
        data = data[:len(data) * 2 // 3]
    elif how == "empty":
        data = bytearray()
    with open(path, "wb") as f:
        f.write(data)


def tensors(obj, prefix=""):
    """{dotted key: tensor} of a loaded checkpoint (dicts and lists walked)."""
    if torch.is_tensor(obj):
        return {prefix: obj}
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) \
        if isinstance(obj, (list, tuple)) else ()
    found = {}
    for key, value in items:
        found.update(tensors(value, "%s.%s" % (prefix, key)))
    return found


DAMAGES = ["bit in the tensor data", "bit in the checksum", "bit in the end record", "cut",
           "empty"]


def folder_digest(folder):
    """SHA-256 of every file under `folder` except the run's log (what a refusal must not
    change)."""
    digests = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                digests[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return digests


def test_every_checkpoint_carries_its_checksum_and_loads_with_weights_only(run_folder):
    for name in FILES:
        path = path_of(run_folder, name)
        with open(path, "rb") as f:
            data = f.read()
        assert data[-COMMENT_BYTES:-64] == MAGIC
        # recomputed here: the SHA-256 of every byte before the comment
        assert data[-64:] == hashlib.sha256(data[:-COMMENT_BYTES]).hexdigest().encode()
        assert verify_checksum(path) is True
        loaded = torch.load(path, weights_only=True)
        expected = {"epoch", "lr", "model", "optimizer"}
        if name != "best_epoch.bin":
            expected |= {"step", "best_p1", "history", "progress"}
        assert set(loaded) == expected          # best_epoch.bin: the released keys exactly
    best = torch.load(path_of(run_folder, "best_epoch.bin"), weights_only=True)
    assert best["model"]["module.volume_net.head.1.bias"][0].item() == 0.75


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_file_is_refused_naming_it(run_folder, how):
    for name in FILES:
        path = path_of(run_folder, name)
        damage(path, how)
        model, _ = tiny_model_and_optimizer()
        with pytest.raises(DamagedFileError) as error:
            load_model_weights(model, path)
        assert str(error.value).startswith(path + " is damaged: ")
        assert "\n" not in str(error.value)


def test_a_flipped_bit_in_tensor_data_loads_silently_without_the_checksum(run_folder):
    # why the checksum: PyTorch itself reads the damaged weights without a word
    path = path_of(run_folder, "best_epoch.bin")
    original = tensors(torch.load(path, weights_only=True))
    damage(path, "bit in the tensor data")
    damaged = tensors(torch.load(path, weights_only=True))
    changed = [k for k in original if not torch.equal(original[k], damaged[k])]
    assert len(changed) == 1
    difference = (original[changed[0]] != damaged[changed[0]]).sum().item()
    assert difference == 1                               # one number, silently different
    model, _ = tiny_model_and_optimizer()
    with pytest.raises(DamagedFileError, match="SHA-256 differs"):
        load_model_weights(model, path)


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_last_bin_falls_back_to_the_previous_one_naming_both(run_folder, how,
                                                                       caplog):
    damage(path_of(run_folder, "last.bin"), how)
    before = folder_digest(run_folder)
    model, optimizer = tiny_model_and_optimizer()
    with caplog.at_level(logging.WARNING, logger="mvn.checkpoint"):
        state = resume_state(model, optimizer, run_folder)
    assert state[:2] == (3, 40) and bias(model) == 0.25          # last.previous.bin's state
    (message,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert message.startswith("%s is damaged (" % path_of(run_folder, "last.bin"))
    assert "resuming from %s" % path_of(run_folder, "last.previous.bin") in message
    assert folder_digest(run_folder) == before                   # nothing written


def test_after_a_fallback_the_next_save_keeps_the_intact_previous_one(run_folder):
    damage(path_of(run_folder, "last.bin"), "cut")
    model, optimizer = tiny_model_and_optimizer()
    assert resume_state(model, optimizer, run_folder)[:2] == (3, 40)
    save_last(run_folder, model, optimizer, (3, 41), 0.1, 55.5, [], {})
    previous = torch.load(path_of(run_folder, "last.previous.bin"), weights_only=True)
    assert previous["step"] == 40                  # not the damaged last.bin
    save_last(run_folder, model, optimizer, (3, 42), 0.1, 55.5, [], {})
    previous = torch.load(path_of(run_folder, "last.previous.bin"), weights_only=True)
    assert previous["step"] == 41                  # and from then on as before


@pytest.mark.parametrize("name", ["last.previous.bin", "best_epoch.bin"])
@pytest.mark.parametrize("how", ["bit in the tensor data", "cut", "empty"])
def test_a_damaged_previous_or_best_file_is_named_at_the_resume(run_folder, name, how, caplog):
    damage(path_of(run_folder, name), how)
    before = folder_digest(run_folder)
    model, optimizer = tiny_model_and_optimizer()
    with caplog.at_level(logging.WARNING, logger="mvn.checkpoint"):
        assert resume_state(model, optimizer, run_folder)[:2] == (3, 50)   # last.bin intact
    (message,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert message.startswith("%s is damaged (" % path_of(run_folder, name))
    assert folder_digest(run_folder) == before


@pytest.mark.parametrize("how", DAMAGES)
def test_no_intact_checkpoint_in_a_folder_with_results_is_refused(run_folder, how):
    for name in ("last.bin", "last.previous.bin"):
        damage(path_of(run_folder, name), how)
    before = folder_digest(run_folder)
    model, optimizer = tiny_model_and_optimizer()
    with pytest.raises(ResumeRefused) as refused:
        resume_state(model, optimizer, run_folder)
    message = str(refused.value)
    assert "\n" not in message
    assert "%s is damaged (" % path_of(run_folder, "last.bin") in message
    assert "%s is damaged (" % path_of(run_folder, "last.previous.bin") in message
    assert "checkpoints/best_epoch.bin" in message and "best_evaluation.json" in message
    assert "--start-over" in message
    assert folder_digest(run_folder) == before


def test_missing_checkpoints_beside_results_are_refused_too(run_folder):
    for name in ("last.bin", "last.previous.bin"):
        os.remove(path_of(run_folder, name))
    model, optimizer = tiny_model_and_optimizer()
    with pytest.raises(ResumeRefused, match="last.bin and last.previous.bin are missing"):
        resume_state(model, optimizer, run_folder)


def test_start_over_trains_the_folder_from_the_beginning(run_folder, caplog):
    for name in ("last.bin", "last.previous.bin"):
        damage(path_of(run_folder, name), "empty")
    model, optimizer = tiny_model_and_optimizer()
    with caplog.at_level(logging.WARNING, logger="mvn.checkpoint"):
        assert resume_state(model, optimizer, run_folder, start_over=True) is None
    assert any("--start-over" in r.getMessage() and "best_epoch.bin" in r.getMessage()
               for r in caplog.records)
    # its first save does not keep the damaged last.bin as the previous one
    save_last(run_folder, model, optimizer, (0, 1), 0.1, float("inf"), [], {})
    assert torch.load(path_of(run_folder, "last.bin"), weights_only=True)["step"] == 1
    assert os.path.getsize(path_of(run_folder, "last.previous.bin")) == 0


def test_a_folder_without_results_still_starts_from_the_beginning(tmp_path):
    # a run killed during its first save: config.yaml, a partial .tmp file, nothing else
    folder = str(tmp_path / "run")
    os.makedirs(os.path.join(folder, "checkpoints"))
    write_config(folder, load_config(None, TINY))
    open(os.path.join(folder, "train.log"), "w").close()
    open(path_of(folder, "last.bin.tmp"), "w").close()
    model, optimizer = tiny_model_and_optimizer()
    assert resume_state(model, optimizer, folder) is None


def test_published_and_older_checkpoints_without_our_checksum_still_load(run_folder, caplog):
    model, optimizer = tiny_model_and_optimizer()
    fill(model, 0.125)
    published = path_of(run_folder, "published.bin")   # the released layout, plain torch.save
    torch.save({"epoch": 24, "lr": 0.0005, "model": model_state_with_module_prefix(model),
                "optimizer": optimizer.state_dict()}, published)
    assert verify_checksum(published) is False
    fresh, _ = tiny_model_and_optimizer()
    with caplog.at_level(logging.DEBUG, logger="mvn"):
        assert load_model_weights(fresh, published)["epoch"] == 24
    assert bias(fresh) == 0.125
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    # a last.bin of the code before the checksum resumes as before
    older = path_of(run_folder, "last.bin")
    state = torch.load(older, weights_only=True)
    os.remove(older)
    torch.save(state, older)
    fresh, fresh_optimizer = tiny_model_and_optimizer()
    assert resume_state(fresh, fresh_optimizer, run_folder)[:2] == (3, 50)
    # a zip comment of someone else's is not ours: loaded as before
    with open(published, "r+b") as f:
        f.seek(-2, os.SEEK_END)
        f.write(struct.pack("<H", 5) + b"hello")
    assert verify_checksum(published) is False
    assert load_model_weights(fresh, published)["epoch"] == 24


def test_an_older_checkpoint_cut_short_is_damaged(run_folder):
    model, optimizer = tiny_model_and_optimizer()
    older = path_of(run_folder, "older.bin")
    torch.save({"model": model_state_with_module_prefix(model)}, older)
    with open(older, "r+b") as f:
        f.truncate(os.path.getsize(older) - 10)
    with pytest.raises(DamagedFileError, match="older.bin is damaged: it is cut short"):
        load_model_weights(model, older)


# ------------------------------------------------------------------------------ disk space

def test_a_save_the_disk_cannot_hold_is_refused_before_writing(run_folder, monkeypatch):
    model, optimizer = tiny_model_and_optimizer()
    needed = checkpoint.estimated_bytes({"model": model_state_with_module_prefix(model),
                                         "optimizer": optimizer.state_dict()})
    real_size = os.path.getsize(path_of(run_folder, "last.bin"))
    assert real_size <= needed < real_size * 1.1 + (1 << 20)    # the estimate is close
    before = folder_digest(run_folder)
    monkeypatch.setattr(checkpoint, "_free_bytes", lambda folder: 1_000_000)
    with pytest.raises(CheckpointWriteError) as error:
        save_last(run_folder, model, optimizer, (3, 60), 0.1, 55.5, [], {})
    message = str(error.value)
    assert message.startswith("not enough disk space to write %s: it needs about "
                              % path_of(run_folder, "last.bin"))
    assert "1.0 MB are free in %s" % os.path.join(run_folder, "checkpoints") in message
    assert "resume with --resume %s" % run_folder in message
    assert folder_digest(run_folder) == before                   # nothing written


def test_a_disk_that_fits_one_save_but_not_four_is_said_once(tmp_path, monkeypatch, caplog):
    model, optimizer = tiny_model_and_optimizer()
    size = checkpoint.estimated_bytes({"model": model_state_with_module_prefix(model),
                                       "optimizer": optimizer.state_dict()})
    monkeypatch.setattr(checkpoint, "_free_bytes", lambda folder: int(2.5 * size))
    monkeypatch.setattr(checkpoint, "_warned_low_space", [])
    with caplog.at_level(logging.WARNING, logger="mvn.checkpoint"):
        for step in (1, 2):
            save_last(str(tmp_path), model, optimizer, (0, step), 0.1, 55.5, [], {})
    (message,) = [r.getMessage() for r in caplog.records]
    assert "take up to 4 x %.1f MB" % (size / 1e6) in message
    assert message.startswith(str(tmp_path / "checkpoints"))


def test_a_failed_first_save_promises_no_resume(tmp_path, monkeypatch):
    model, optimizer = tiny_model_and_optimizer()

    def disk_full(obj, path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(CheckpointWriteError) as error:
        save_last(str(tmp_path), model, optimizer, (0, 1), 0.1, 55.5, [], {})
    assert "nothing to resume" in str(error.value) and "start the run again" in str(error.value)
    assert "--resume" not in str(error.value)
    assert os.listdir(tmp_path / "checkpoints") == []


def test_a_failed_later_save_says_how_to_resume(run_folder, monkeypatch):
    model, optimizer = tiny_model_and_optimizer()
    monkeypatch.setattr(torch, "save", lambda *a, **k: (_ for _ in ()).throw(
        OSError(28, "No space left on device")))
    with pytest.raises(CheckpointWriteError) as error:
        save_best(run_folder, model, optimizer, 4, 0.1)
    assert str(error.value).endswith("then resume with --resume %s" % run_folder)


def test_resume_from_a_named_damaged_file_is_refused_naming_it(run_folder):
    path = path_of(run_folder, "last.bin")
    damage(path, "bit in the tensor data")
    model, optimizer = tiny_model_and_optimizer()
    with pytest.raises(WeightsError, match="^--resume %s: %s is damaged" % (path, path)):
        resume_state(model, optimizer, run_folder, checkpoint_file=path)
