"""train.py end to end on a tiny synthetic Human3.6M: distributed training and evaluation,
resume, published-format checkpoints, and the failure modes a user meets."""
import json
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO_ROOT, free_port, zero_jpeg_middle
import train as train_cli
from mvn import engine, recipe
from mvn.checkpoint import model_state_with_module_prefix
from mvn.distributed import single_process
from mvn.config import load_config

# End-to-end runs (subprocesses, training): left out of `pytest -m "not slow"`.
pytestmark = pytest.mark.slow


CONFIG = os.path.join(REPO_ROOT, "experiments", "synthetic", "tiny.yaml")


def read_json(path):
    with open(path) as f:
        return json.load(f)


def options(root, **extra):
    values = {
        "dataset.root": os.path.join(root, "images"),
        "dataset.train_labels_path": os.path.join(root, "h36m_train.pkl"),
        "dataset.val_labels_path": os.path.join(root, "h36m_validation.pkl"),
        "dataset.num_workers": 0,
        "dataset.val_frame_stride": 9,      # 96 frames -> 11: uneven shards over 2 processes
        "train.batch_size": 8,
        "train.max_steps_per_epoch": 2,
        "train.n_epochs": 1,
        "train.vis_every_epoch": False,
        "val.batch_size": 4,
    }
    values.update(extra)
    return ["%s=%s" % item for item in values.items()]


def run_train(args, nproc=1):
    """train.py through torchrun (nproc > 1) or plain python; returns the CompletedProcess."""
    if nproc > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=%d" % nproc,
                   "--master_addr=127.0.0.1", "--master_port=%d" % free_port(), "train.py"]
    else:
        command = [sys.executable, "train.py"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(command + args, capture_output=True, text=True, cwd=REPO_ROOT, env=env,
                          timeout=600)


def only_folder(logdir):
    folders = [os.path.join(logdir, d) for d in os.listdir(logdir)]
    assert len(folders) == 1, folders
    return folders[0]


@pytest.fixture(scope="module")
def trained(synthetic_h36m, tmp_path_factory):
    """Two-process gloo training (torchrun) of one short epoch; returns (root, experiment folder)."""
    logdir = str(tmp_path_factory.mktemp("logs"))
    result = run_train(["--config", CONFIG, "--logdir", logdir, "--device", "cpu",
                        "--opts"] + options(synthetic_h36m), nproc=2)
    assert result.returncode == 0, result.stderr[-4000:]
    # a warning every process would give is printed once, by rank 0
    assert result.stderr.count("backbone keeps its random initialisation") == 1
    return synthetic_h36m, only_folder(logdir)


def test_two_process_training_writes_experiment_folder(trained):
    _, folder = trained
    for name in ("config.yaml", "train.log", "best_evaluation.json", "best_evaluation.csv",
                 "checkpoints/best_epoch.bin", "checkpoints/last.bin"):
        assert os.path.isfile(os.path.join(folder, name)), name
    assert any(f.startswith("events") for f in os.listdir(os.path.join(folder, "tensorboard")))
    best = torch.load(os.path.join(folder, "checkpoints/best_epoch.bin"), weights_only=True)
    assert set(best) == {"epoch", "lr", "model", "optimizer"}  # the reference format
    assert all(k.startswith("module.") for k in best["model"])
    assert best["epoch"] == 1 and best["lr"] == 0.002  # 1-based; the lr used in that epoch
    groups = best["optimizer"]["param_groups"]
    assert [g["lr"] for g in groups] == [0.002]  # one group, as the released code trains
    last = torch.load(os.path.join(folder, "checkpoints/last.bin"), weights_only=True)
    assert last["epoch"] == 1 and len(last["history"]) == 1
    table = read_json(os.path.join(folder, "best_evaluation.json"))
    assert set(table["actions"]) == {"Directions", "Discussion"}
    assert table["average"]["frames"] == 11


def evaluate_cli(root, checkpoint, logdir, nproc):
    result = run_train(["--config", CONFIG, "--logdir", logdir, "--device", "cpu", "--eval",
                        "--checkpoint", checkpoint, "--opts"] + options(root), nproc=nproc)
    assert result.returncode == 0, result.stderr[-4000:]
    folder = only_folder(logdir)
    assert os.path.isfile(os.path.join(folder, "best_worst_frames.png"))
    assert not os.path.exists(os.path.join(folder, "checkpoints"))  # --eval writes none
    with open(os.path.join(folder, "evaluation.json")) as f:
        return json.load(f), result


def test_two_process_evaluation_equals_one_process(trained, tmp_path):
    root, folder = trained
    checkpoint = os.path.join(folder, "checkpoints", "best_epoch.bin")  # `module.` keys
    one, result = evaluate_cli(root, checkpoint, str(tmp_path / "one"), nproc=1)
    two, _ = evaluate_cli(root, checkpoint, str(tmp_path / "two"), nproc=2)
    assert one == two  # every frame once, in order: exactly the same numbers
    assert one["average"]["frames"] == 11
    assert "average" in result.stderr and "Directions" in result.stderr  # the printed table


def test_reference_checkpoint_name_is_found(trained, tmp_path):
    root, folder = trained
    shutil.copy(os.path.join(folder, "checkpoints", "best_epoch.bin"),
                tmp_path / "best_epoch_hrnet_tiny.bin")
    table, _ = evaluate_cli(root, str(tmp_path / "best_epoch.bin"), str(tmp_path / "logs"), 1)
    assert table["average"]["frames"] == 11


def final_weights(folder):
    return torch.load(os.path.join(folder, "checkpoints", "last.bin"), weights_only=True)


def test_resumed_run_reproduces_uninterrupted_weights(synthetic_h36m, tmp_path):
    straight = str(tmp_path / "straight")
    assert train_cli.main(["--config", CONFIG, "--logdir", straight, "--device", "cpu", "--opts"]
                          + options(synthetic_h36m, **{"train.n_epochs": 2})) == 0
    interrupted = str(tmp_path / "interrupted")
    assert train_cli.main(["--config", CONFIG, "--logdir", interrupted, "--device", "cpu",
                           "--opts"] + options(synthetic_h36m, **{"train.n_epochs": 1})) == 0
    folder = only_folder(interrupted)
    assert train_cli.main(["--config", CONFIG, "--logdir", interrupted, "--device", "cpu",
                           "--resume", folder, "--opts"]
                          + options(synthetic_h36m, **{"train.n_epochs": 2})) == 0
    a, b = final_weights(only_folder(straight)), final_weights(folder)
    assert a["epoch"] == b["epoch"] == 2
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    def without_speed(history):
        return [{k: v for k, v in h.items() if k != "samples_per_s"} for h in history]
    assert len(b["history"]) == 2
    assert without_speed(a["history"]) == without_speed(b["history"])  # losses, P1, P2 equal
    # the first start's config is kept; what the resume changed is recorded beside it
    import yaml
    with open(os.path.join(folder, "config.yaml")) as f:
        assert yaml.safe_load(f)["train"]["n_epochs"] == 1
    with open(os.path.join(folder, "config.resume-1.yaml")) as f:
        assert yaml.safe_load(f)["train"]["n_epochs"] == 2


def test_missing_image_names_file_and_record(synthetic_h36m, tmp_path, capsys):
    root = str(tmp_path / "copy")
    shutil.copytree(synthetic_h36m, root)
    with open(os.path.join(root, "h36m_validation.pkl"), "rb") as f:
        first = pickle.load(f)[0]["image"]
    os.remove(os.path.join(root, "images", first))
    code = train_cli.main(["--config", CONFIG, "--logdir", str(tmp_path / "logs"), "--device",
                           "cpu", "--eval", "--checkpoint", str(tmp_path / "x.bin"), "--opts"]
                          + options(root))
    assert code == 2  # no checkpoint yet: that error comes first
    assert "x.bin not found" in capsys.readouterr().err
    model_path = tmp_path / "best_epoch.bin"
    config = load_config(CONFIG, options(root))
    from mvn.models import build_model
    torch.save({"epoch": 0, "lr": 0.0, "model": model_state_with_module_prefix(
        build_model(config)), "optimizer": {}}, model_path)
    code = train_cli.main(["--config", CONFIG, "--logdir", str(tmp_path / "logs"), "--device",
                           "cpu", "--eval", "--checkpoint", str(model_path), "--opts"]
                          + options(root, **{"dataset.val_frame_stride": 1}))
    err = capsys.readouterr().err
    assert code == 2
    assert first in err and "record 0" in err and "h36m_validation.pkl" in err


def test_label_file_of_wrong_kind_is_one_clear_error(synthetic_h36m, tmp_path, capsys):
    wrong = tmp_path / "coco_labels.pkl"
    with open(wrong, "wb") as f:
        pickle.dump([{"image": "a.jpg", "keypoints": np.zeros((17, 3))}], f)
    code = train_cli.main(["--config", CONFIG, "--logdir", str(tmp_path / "logs"), "--device",
                           "cpu", "--opts"] + options(synthetic_h36m, **{
                               "dataset.train_labels_path": str(wrong)}))
    err = capsys.readouterr().err
    assert code == 2
    assert "coco_labels.pkl is not a CA-PF Human3.6M label file" in err and "joints_3d" in err


def test_nan_loss_step_is_skipped_and_counted(synthetic_h36m):
    config = load_config(CONFIG, options(synthetic_h36m))
    processes = single_process("cpu")
    from mvn.benchmarks import build_dataset
    from mvn.models import build_model
    dataset = build_dataset(config, "train")
    good = torch.utils.data.default_collate([dataset[i] for i in range(4)])
    bad = {k: v.clone() for k, v in good.items()}
    bad["keypoints_3d"][0, 0, 3, 0] = float("nan")
    model = build_model(config)
    optimizer = recipe.make_optimizer(model, config)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stats, step = engine.train_one_epoch(model, [bad], optimizer, config, 0, processes)
    assert stats["skipped_steps"] == 1 and stats["steps"] == 0 and step == 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    stats, step = engine.train_one_epoch(model, [bad, good], optimizer, config, 0, processes)
    assert stats["skipped_steps"] == 1 and stats["steps"] == 1 and step == 1
    assert not torch.equal(before["volume_net.head.1.weight"],
                           model.state_dict()["volume_net.head.1.weight"])


# ---------------------------------------------------------------------------------- bad data

def corrupted_copy(root, tmp_path, split_file, record=2, truncate=True, zero=False):
    """A copy of the synthetic set whose `split_file` record `record` has a truncated frame
    (with `zero`: bytes zeroed mid-stream, conftest.zero_jpeg_middle; without `truncate`, no
    frame); returns (copy root, the frame's relative name)."""
    copy = str(tmp_path / "copy")
    shutil.copytree(root, copy)
    with open(os.path.join(copy, split_file), "rb") as f:
        name = pickle.load(f)[record]["image"]
    path = os.path.join(copy, "images", name)
    if zero:
        zero_jpeg_middle(path)
    elif truncate:
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[:len(data) // 2])
    else:
        os.remove(path)
    return copy, name


def evaluate_untrained(root, tmp_path, **extra):
    """train.py --eval of a freshly initialised model (saved as best_epoch.bin) on `root`."""
    from mvn.models import build_model
    model_path = str(tmp_path / "best_epoch.bin")
    torch.save({"epoch": 1, "lr": 0.0, "model": model_state_with_module_prefix(
        build_model(load_config(CONFIG, options(root)))), "optimizer": {}}, model_path)
    return run_train(["--config", CONFIG, "--logdir", str(tmp_path / "logs"), "--device", "cpu",
                      "--eval", "--checkpoint", model_path, "--opts"] + options(root, **extra))


def error_lines(stderr):
    assert "Traceback" not in stderr and "Caught" not in stderr, stderr[-2000:]
    lines = stderr.replace("\r", "\n").splitlines()  # progress bars redraw with \r
    return [line for line in lines if line.startswith("error:")]


def second_record_of_the_first_batch(root):
    """The label record the training run of one process reads second (epoch 0's shuffle)."""
    with open(os.path.join(root, "h36m_train.pkl"), "rb") as f:
        count = len(pickle.load(f))
    order = engine.ResumableSampler(range(count), num_replicas=1, rank=0, shuffle=True,
                                    seed=load_config(CONFIG).seed)
    return list(order)[1]


@pytest.mark.parametrize("workers, damage", [(0, "truncated JPEG"), (2, "corrupt JPEG (libjpeg")])
def test_a_truncated_training_frame_stops_with_one_line_naming_it(synthetic_h36m, tmp_path,
                                                                  workers, damage):
    # with 2 DataLoader workers the frame has bytes zeroed mid-stream: libjpeg's verdict is
    # caught in the (forked) worker that decodes it
    record = second_record_of_the_first_batch(synthetic_h36m)  # found at once, not mid-epoch
    root, name = corrupted_copy(synthetic_h36m, tmp_path, "h36m_train.pkl", record=record,
                                zero=workers > 0)
    result = run_train(["--config", CONFIG, "--logdir", str(tmp_path / "logs"), "--device",
                        "cpu", "--opts"] + options(root, **{
                            "dataset.num_workers": workers, "train.max_steps_per_epoch": 100,
                            "train.batch_size": 4}))
    assert result.returncode == 2
    (line,) = error_lines(result.stderr)
    assert name in line and damage in line
    assert "record %d of" % record in line and "h36m_train.pkl" in line


def test_a_damaged_validation_frame_stops_evaluation_with_one_line(synthetic_h36m, tmp_path):
    root, name = corrupted_copy(synthetic_h36m, tmp_path, "h36m_validation.pkl", record=9,
                                zero=True)  # bytes zeroed mid-stream
    result = evaluate_untrained(root, tmp_path, **{"dataset.val_frame_stride": 1})
    assert result.returncode == 2
    (line,) = error_lines(result.stderr)
    assert name in line and "corrupt JPEG (libjpeg" in line and "record 9 of" in line


def test_a_missing_frame_with_a_stride_and_workers_names_its_file_record(synthetic_h36m,
                                                                         tmp_path):
    # validation stride 9: sample 2 is record 18 of the label file, which is what is named
    root, name = corrupted_copy(synthetic_h36m, tmp_path, "h36m_validation.pkl", record=18,
                                truncate=False)
    result = evaluate_untrained(root, tmp_path, **{"dataset.num_workers": 2})
    assert result.returncode == 2
    (line,) = error_lines(result.stderr)
    assert name in line and "does not exist" in line and "(record 18 of" in line


@pytest.mark.parametrize("split_file", ["h36m_train.pkl", "h36m_validation.pkl"])
def test_a_non_finite_label_stops_before_training_naming_the_record(synthetic_h36m, tmp_path,
                                                                    split_file):
    copy = str(tmp_path / "copy")
    shutil.copytree(synthetic_h36m, copy)
    with open(os.path.join(copy, split_file), "rb") as f:
        records = pickle.load(f)
    records[7]["joints_2d_cpn"] = records[7]["joints_2d_cpn"].copy()
    records[7]["joints_2d_cpn"][0, 0] = float("inf")
    with open(os.path.join(copy, split_file), "wb") as f:
        pickle.dump(records, f)
    result = run_train(["--config", CONFIG, "--logdir", str(tmp_path / "logs"), "--device",
                        "cpu", "--opts"] + options(copy))
    assert result.returncode == 2
    (line,) = error_lines(result.stderr)
    assert split_file in line and "record 7 (" + records[7]["image"] in line
    assert "joints_2d_cpn is not finite" in line


def test_bad_options_and_logdirs_are_one_line(synthetic_h36m, tmp_path):
    a_file = tmp_path / "not_a_folder"
    a_file.write_text("x")
    cases = [(["--logdir", str(tmp_path / "logs"), "--opts"]
              + options(synthetic_h36m, **{"dataset.num_workers": -1}), "dataset.num_workers"),
             (["--logdir", str(a_file), "--opts"] + options(synthetic_h36m), "--logdir"),
             (["--logdir", str(a_file / "sub"), "--opts"] + options(synthetic_h36m), "--logdir")]
    for args, expected in cases:
        result = run_train(["--config", CONFIG, "--device", "cpu"] + args)
        assert result.returncode == 2, result.stderr[-2000:]
        (line,) = error_lines(result.stderr)
        assert expected in line
