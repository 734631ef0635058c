"""train.py with damaged checkpoints and a full disk (issue 25), in-process on the tiny
synthetic Human3.6M: --eval refuses a damaged file with one line; a resume with no intact
checkpoint beside a run's results exits 2 changing nothing, and --start-over trains the folder
anew; a disk full at the first save leaves no folder and promises no resume."""
import hashlib
import os

import pytest
import torch

import train as train_cli
from test_checkpoint_damage import damage
from test_train import CONFIG, options

pytestmark = pytest.mark.slow   # trains (a few steps): left out of `-m "not slow"`


def error_lines(text):
    assert "Traceback" not in text, text[-2000:]
    return [line for line in text.replace("\r", "\n").splitlines() if line.startswith("error:")]


def digests(folder, leave_out=("train.log", "run.lock")):
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            if name in leave_out:
                continue
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return found


@pytest.fixture(scope="module")
def finished_run(synthetic_h36m, tmp_path_factory):
    """One epoch of 2 steps with last.bin after each step: (logdir, folder)."""
    logdir = str(tmp_path_factory.mktemp("logs"))
    code = train_cli.main(["--config", CONFIG, "--logdir", logdir, "--device", "cpu",
                           "--name", "run", "--opts"]
                          + options(synthetic_h36m, **{"train.checkpoint_every_steps": 1}))
    assert code == 0
    return logdir, os.path.join(logdir, "run")


def copy_of(finished_run, tmp_path):
    import shutil
    logdir = str(tmp_path / "logs")
    shutil.copytree(finished_run[0], logdir)
    return logdir, os.path.join(logdir, "run")


def test_eval_refuses_a_damaged_checkpoint_with_one_line(synthetic_h36m, finished_run,
                                                         tmp_path, capsys):
    logdir, folder = copy_of(finished_run, tmp_path)
    best = os.path.join(folder, "checkpoints", "best_epoch.bin")
    damage(best, "bit in the tensor data")
    code = train_cli.main(["--config", CONFIG, "--logdir", str(tmp_path / "eval"), "--device",
                           "cpu", "--eval", "--checkpoint", best, "--opts"]
                          + options(synthetic_h36m))
    assert code == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert line.startswith("error: %s is damaged: its SHA-256 differs" % best)
    assert os.listdir(tmp_path / "eval") == []            # no evaluation folder left


def test_a_resume_without_an_intact_checkpoint_changes_nothing_until_start_over(
        synthetic_h36m, finished_run, tmp_path, capsys):
    logdir, folder = copy_of(finished_run, tmp_path)
    for name, how in (("last.bin", "empty"), ("last.previous.bin", "bit in the tensor data")):
        damage(os.path.join(folder, "checkpoints", name), how)
    before = digests(folder)
    best_inode = os.stat(os.path.join(folder, "checkpoints", "best_epoch.bin")).st_ino
    command = ["--config", CONFIG, "--logdir", logdir, "--device", "cpu", "--resume", "auto",
               "--name", "run", "--opts"] + options(synthetic_h36m,
                                                    **{"train.checkpoint_every_steps": 1})
    assert train_cli.main(command) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "no intact checkpoint to resume in %s" % folder in line
    assert "last.bin is damaged (it is empty (0 bytes))" in line
    assert "last.previous.bin is damaged (its SHA-256 differs" in line
    assert "--start-over" in line
    assert digests(folder) == before                       # best_epoch.bin & co untouched

    assert train_cli.main(command + ["--start-over"]) == 0
    assert "starting it from the beginning as --start-over asks" in capsys.readouterr().err
    last = torch.load(os.path.join(folder, "checkpoints", "last.bin"), weights_only=True)
    assert (last["epoch"], last["step"]) == (1, 0) and len(last["history"]) == 1
    # best_epoch.bin written anew (a new file renamed into place); the same bytes, as the run
    # is deterministic
    assert os.stat(os.path.join(folder, "checkpoints", "best_epoch.bin")).st_ino != best_inode
    assert digests(folder)["checkpoints/best_epoch.bin"] == before["checkpoints/best_epoch.bin"]


def test_start_over_without_resume_is_refused(synthetic_h36m, tmp_path, capsys):
    assert train_cli.main(["--config", CONFIG, "--logdir", str(tmp_path), "--start-over",
                           "--opts"] + options(synthetic_h36m)) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "--start-over is for a resume" in line


def test_a_disk_full_at_the_first_save_leaves_no_folder_and_promises_no_resume(
        synthetic_h36m, tmp_path, monkeypatch, capsys):
    def disk_full(obj, path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(torch, "save", disk_full)
    logdir = str(tmp_path / "logs")
    code = train_cli.main(["--config", CONFIG, "--logdir", logdir, "--device", "cpu", "--opts"]
                          + options(synthetic_h36m, **{"train.checkpoint_every_steps": 1}))
    assert code == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "last.bin ([Errno 28] No space left on device)" in line
    assert "nothing to resume" in line and "start the run again" in line
    assert "--resume" not in line
    assert os.listdir(logdir) == []                        # the run's folder was removed
