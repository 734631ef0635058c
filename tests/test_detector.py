"""Stage 1, the 2D heatmap detector (task: detector): its training step learns, its schedule, and
train.py end to end on a tiny synthetic Human3.6M: training, 1- and 2-process evaluation, and its
backbone file taken by CA-PF as the frozen backbone."""
import json
import os
import subprocess
import sys

import pytest
import torch

import train as train_cli
from conftest import REPO_ROOT, free_port
from test_train import only_folder, options as train_options
from mvn import detector
from mvn.config import load_config
from mvn.distributed import single_process

CONFIG = os.path.join(REPO_ROOT, "experiments", "synthetic", "detector_tiny.yaml")
CAPF_CONFIG = os.path.join(REPO_ROOT, "experiments", "synthetic", "tiny.yaml")


def test_the_training_step_fits_a_fixed_tiny_batch():
    """The real train_step (targets, loss, Adam) on two fixed 32x32 crops (the network is fully
    convolutional: 8x8 heatmaps): the loss falls steadily."""
    config = load_config(CONFIG, ["train.flip_augmentation=false", "detector.lr=0.003"])
    torch.manual_seed(0)
    model = detector.build_detector(config)
    optimizer = detector.make_optimizer(model, config)
    generator = torch.Generator().manual_seed(0)
    batch = {"images": torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8,
                                     generator=generator),
             "keypoints_2d_truth_crop": torch.rand(2, 17, 2, generator=generator)
             * torch.tensor([31.0, 31.0])}
    processes = single_process("cpu")
    model.train()
    losses = [detector.train_step(model, optimizer, batch, config, processes, generator).item()
              for _ in range(25)]
    assert losses[-1] < 0.5 * losses[0], losses
    assert min(losses[-5:]) < min(losses[:5])


def test_flip_augmentation_mirrors_image_and_joints_together():
    """With every sample flipped, the step sees the mirrored crop and mirrored, swapped joints:
    its loss equals the unflipped step's on the mirrored batch."""
    config = load_config(CONFIG)
    flipped_config = load_config(CONFIG, ["train.flip_augmentation=false"])
    torch.manual_seed(0)
    model = detector.build_detector(config).eval()  # eval: BatchNorm without batch statistics
    images = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    joints = torch.rand(2, 17, 2) * torch.tensor([63.0, 63.0])
    from mvn.batch import mirror_x
    from mvn.human36m.facts import SKELETON
    mirrored = {"images": images.flip(2),
                "keypoints_2d_truth_crop": mirror_x(joints, 63.0, skeleton=SKELETON)}
    sgd = torch.optim.SGD(model.parameters(), lr=0.0)
    seed = next(s for s in range(100)  # a seed whose two draws both flip
                if (torch.rand(2, generator=torch.Generator().manual_seed(s)) < 0.5).all())
    loss = detector.train_step(model, sgd, {"images": images, "keypoints_2d_truth_crop": joints},
                               config, single_process("cpu"), torch.Generator().manual_seed(seed))
    expected = detector.train_step(model, sgd, mirrored, flipped_config, single_process("cpu"),
                                   None)
    torch.testing.assert_close(loss, expected, rtol=0, atol=0)


def test_learning_rate_steps():
    config = load_config(CONFIG, ["detector.lr_steps=[2, 4]", "detector.lr=0.001"])
    assert [detector.learning_rate(config, e) for e in range(6)] == pytest.approx(
        [1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5], rel=1e-12)


def test_only_backbones_with_a_heatmap_head_train_as_detectors():
    from mvn.errors import CAPFError
    with pytest.raises(CAPFError, match="'cpn' has none"):
        detector.build_detector(load_config(CONFIG, ["model.backbone.type=cpn"]))


def options(root, **extra):
    """test_train's options with the detector's small sizes (96 val frames -> 9 at stride 11:
    uneven shards over 2 processes)."""
    values = {"dataset.val_frame_stride": 11, "train.batch_size": 2, "val.batch_size": 2}
    values.update(extra)
    return train_options(root, **values)


@pytest.fixture(scope="module")
def trained_detector(synthetic_h36m, tmp_path_factory):
    logdir = str(tmp_path_factory.mktemp("detector"))
    code = train_cli.main(["--config", CONFIG, "--logdir", logdir, "--device", "cpu", "--opts"]
                          + options(synthetic_h36m))
    assert code == 0
    return synthetic_h36m, only_folder(logdir)


@pytest.mark.slow
def test_train_py_trains_the_detector_and_writes_its_files(trained_detector):
    _, folder = trained_detector
    for name in ("config.yaml", "train.log", "best_evaluation.json", "best_evaluation.csv",
                 "checkpoints/best_epoch.bin", "checkpoints/last.bin", "checkpoints/backbone.pth"):
        assert os.path.isfile(os.path.join(folder, name)), name
    with open(os.path.join(folder, "best_evaluation.json")) as f:
        table = json.load(f)
    assert set(table["groups"]) == {"Directions", "Discussion"}
    assert table["average"]["frames"] == 9 and table["pck_threshold_px"] == 10.0
    frames = sum(row["frames"] for row in table["groups"].values())
    mean = sum(row["frames"] * row["mean_px"] for row in table["groups"].values()) / frames
    assert table["average"]["mean_px"] == pytest.approx(mean, rel=1e-12)
    last = torch.load(os.path.join(folder, "checkpoints", "last.bin"), weights_only=True)
    assert last["epoch"] == 1 and set(last["history"][0]) >= {"mean_px", "pck", "loss"}


@pytest.mark.slow
def test_the_backbone_file_is_capf_frozen_backbone(trained_detector):
    """checkpoints/backbone.pth has the published file's layout: train.py's CA-PF loads it as
    model.backbone.pretrained (its `final_layer.*` left out), weights equal to the detector's."""
    from mvn.recipe import build_training_model
    _, folder = trained_detector
    path = os.path.join(folder, "checkpoints", "backbone.pth")
    state = torch.load(path, weights_only=True)
    best = torch.load(os.path.join(folder, "checkpoints", "best_epoch.bin"), weights_only=True)
    assert set(state) == {k[len("module.backbone."):] for k in best["model"]
                          if k.startswith("module.backbone.")} | {"final_layer.weight",
                                                                  "final_layer.bias"}
    config = load_config(CAPF_CONFIG, ["model.backbone.pretrained=" + path])
    model = build_training_model(config)
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, best["model"]["module.backbone." + key]), key
    assert not any(p.requires_grad for p in model.backbone.parameters())  # frozen
    # and the detector's --eval reads either file to the same weights
    a, _ = detector.load_for_evaluation(load_config(CONFIG), path, torch.device("cpu"))
    b, _ = detector.load_for_evaluation(load_config(CONFIG),
                                        os.path.join(folder, "checkpoints", "best_epoch.bin"),
                                        torch.device("cpu"))
    for (key, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), key


def run_eval(root, checkpoint, logdir, nproc):
    if nproc > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=%d" % nproc,
                   "--master_addr=127.0.0.1", "--master_port=%d" % free_port(), "train.py"]
    else:
        command = [sys.executable, "train.py"]
    result = subprocess.run(command + ["--config", CONFIG, "--logdir", logdir, "--device", "cpu",
                                       "--eval", "--checkpoint", checkpoint, "--opts"]
                            + options(root), capture_output=True, text=True, cwd=REPO_ROOT,
                            env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    with open(os.path.join(only_folder(logdir), "evaluation.json")) as f:
        return json.load(f), result


@pytest.mark.slow
def test_two_process_evaluation_gives_the_one_process_table(trained_detector, tmp_path):
    root, folder = trained_detector
    checkpoint = os.path.join(folder, "checkpoints", "best_epoch.bin")
    one, result = run_eval(root, checkpoint, str(tmp_path / "one"), 1)
    two, _ = run_eval(root, checkpoint, str(tmp_path / "two"), 2)
    assert one == two
    with open(os.path.join(folder, "best_evaluation.json")) as f:
        assert json.load(f) == one  # --eval of the best epoch: the table training saved
    assert "PCK@10px" in result.stderr and "Directions" in result.stderr


@pytest.mark.slow
def test_a_resumed_detector_run_reproduces_the_uninterrupted_one(trained_detector, tmp_path):
    """The same resume as CA-PF's (the one loop): a copy of the 1-epoch run continued to 2
    epochs ends with the weights and history of a straight 2-epoch run."""
    import shutil
    root, folder = trained_detector
    resumed = str(tmp_path / "resumed" / os.path.basename(folder))
    shutil.copytree(folder, resumed)
    assert train_cli.main(["--config", CONFIG, "--logdir", str(tmp_path / "resumed"), "--device",
                           "cpu", "--resume", resumed, "--opts"]
                          + options(root, **{"train.n_epochs": 2})) == 0
    straight = str(tmp_path / "straight")
    assert train_cli.main(["--config", CONFIG, "--logdir", straight, "--device", "cpu", "--opts"]
                          + options(root, **{"train.n_epochs": 2})) == 0
    a = torch.load(os.path.join(only_folder(straight), "checkpoints", "last.bin"),
                   weights_only=True)
    b = torch.load(os.path.join(resumed, "checkpoints", "last.bin"), weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key

    def without_speed(history):
        return [{k: v for k, v in h.items() if k != "samples_per_s"} for h in history]
    assert without_speed(a["history"]) == without_speed(b["history"])


def test_a_missing_starting_file_and_a_benchmark_without_2d_truth_are_one_line_errors(tmp_path):
    from mvn.errors import CAPFError
    from mvn.mpi_inf_3dhp.benchmark import BENCHMARK as MPI
    config = load_config(CONFIG, ["model.backbone.pretrained=%s" % (tmp_path / "no.pth")])
    with pytest.raises(CAPFError, match="no.pth not found"):
        detector.build_model(config, torch.device("cpu"))
    import dataclasses
    without = dataclasses.replace(MPI, truth_2d=None)
    with pytest.raises(CAPFError, match="no ground-truth 2D joints"):
        detector.build_split(without, config, "train")
