"""The evaluations beside the benchmark's table (mvn/evaluations/): the 2D-noise model against
an independent recomputation of both inputs, sigma 0 = the plain evaluation, the hard-frame
selection, per-joint errors against the per-action table, and the cost of the published model."""
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import REPO_ROOT
from mvn import engine, geometry
from mvn.config import ConfigError, load_config
from mvn.datasets.labelled_crops import LabelledCropDataset
from mvn.distributed import single_process
from mvn.evaluations import cost, hard_frames, noise, per_joint, report
from mvn.human36m import facts as h36m
from mvn.human36m.benchmark import BENCHMARK as H36M
from mvn.human36m.protocol import per_action_errors
from mvn.models import build_model
from mvn.mpi_inf_3dhp import facts as mpi
from mvn.mpi_inf_3dhp.benchmark import BENCHMARK as MPI

TINY = os.path.join(REPO_ROOT, "experiments", "synthetic", "tiny.yaml")
PUBLISHED = os.path.join(REPO_ROOT, "experiments", "human36m", "hrnet_32.yaml")


def h36m_labels(n=6, seed=0):
    """Human3.6M-like label columns made from known full-frame joints (N, 17, 2) px, the way the
    toolbox makes them: screen-normalised with the camera's size, cropped with the box's matrix."""
    rng = np.random.default_rng(seed)
    camera_id = np.arange(n) % 4
    size = np.array([h36m.resolution(c) for c in camera_id], np.float64)      # (N, 2)
    center = size / 2 + rng.uniform(-100, 100, (n, 2))
    scale = np.repeat(rng.uniform(4, 6, (n, 1)), 2, 1)
    joints_px = center[:, None] + rng.uniform(-300, 300, (n, 17, 2))
    affine = np.stack([geometry.get_affine_transform(c, s) for c, s in zip(center, scale)])
    screen = np.stack([geometry.normalize_screen_coordinates(p, w, h)
                       for p, (w, h) in zip(joints_px, size)])
    crop = np.stack([geometry.affine_transform_points(p, m) for p, m in zip(joints_px, affine)])
    keypoints_3d = rng.uniform(-0.8, 0.8, (n, 17, 3)) + np.array([0, 0, 5.0])
    labels = SimpleNamespace(
        camera_id=camera_id, center=center, scale=scale, subject=np.array([1, 9] * n)[:n],
        keypoints_2d=screen.astype(np.float32), keypoints_2d_crop=crop.astype(np.float32),
        keypoints_3d=keypoints_3d.astype(np.float32), action=np.array([2, 3] * n)[:n],
        subaction=np.ones(n, int), record=np.arange(n))
    return labels, joints_px, size, affine


def batch_of(labels, indices):
    return {"keypoints_2d": torch.from_numpy(labels.keypoints_2d[indices]),
            "keypoints_2d_crop": torch.from_numpy(labels.keypoints_2d_crop[indices]),
            "index": torch.as_tensor(indices)}


def expected_noisy_inputs(joints_px, size, affine, noise_px):
    """Both inputs of the detections joints_px + noise, made as the toolbox makes them."""
    moved = joints_px + noise_px
    screen = np.stack([geometry.normalize_screen_coordinates(p, w, h)
                       for p, (w, h) in zip(moved, size)])
    crop = np.stack([geometry.affine_transform_points(p, m) for p, m in zip(moved, affine)])
    return screen, crop


def test_noise_moves_both_inputs_as_a_detection_moved_in_the_full_frame():
    labels, joints_px, size, affine = h36m_labels()
    dataset = SimpleNamespace(labels=labels)
    indices = np.array([4, 1, 3])
    sigma, seed = 3.0, 11
    out = noise.noisy_batch(batch_of(labels, indices), H36M, dataset, sigma, seed)
    # the contract: sample i's noise is sigma x the standard normals of generator (seed, 0, i)
    noise_px = np.stack([sigma * np.random.default_rng((seed, 0, i)).standard_normal((17, 2))
                         for i in indices])
    screen, crop = expected_noisy_inputs(joints_px[indices], size[indices], affine[indices],
                                         noise_px)
    assert out["keypoints_2d"].dtype == torch.float32
    np.testing.assert_allclose(out["keypoints_2d"].numpy(), screen, atol=2e-6)
    np.testing.assert_allclose(out["keypoints_2d_crop"].numpy(), crop, atol=2e-3)
    # both moved: by about sigma pixels (crop: times the zoom), not a no-op
    moved_crop = np.abs(out["keypoints_2d_crop"].numpy() - labels.keypoints_2d_crop[indices])
    assert moved_crop.mean() > 0.3


def test_noise_of_a_sample_does_not_depend_on_its_batch_or_process():
    labels, *_ = h36m_labels()
    dataset = SimpleNamespace(labels=labels)
    whole = noise.noisy_batch(batch_of(labels, np.arange(6)), H36M, dataset, 2.0, 0)
    for part in (np.array([0, 1, 2]), np.array([5, 3])):  # other batches, other shards
        piece = noise.noisy_batch(batch_of(labels, part), H36M, dataset, 2.0, 0)
        assert torch.equal(piece["keypoints_2d"], whole["keypoints_2d"][part])
        assert torch.equal(piece["keypoints_2d_crop"], whole["keypoints_2d_crop"][part])


def test_zero_noise_leaves_the_inputs_bit_identical():
    labels, _, size, affine = h36m_labels()
    batch = batch_of(labels, np.arange(6))
    assert noise.noisy_batch(batch, H36M, SimpleNamespace(labels=labels), 0.0, 0) is batch
    screen, crop = noise.move_2d_inputs(batch["keypoints_2d"], batch["keypoints_2d_crop"],
                                        np.zeros((6, 17, 2)), size, affine)
    assert torch.equal(screen, batch["keypoints_2d"])
    assert torch.equal(crop, batch["keypoints_2d_crop"])


def mpi_labels(n=4, seed=1):
    """MPI-INF-3DHP-like test labels: TS1 (2048x2048) and TS5 (1920x1080) frames."""
    rng = np.random.default_rng(seed)
    sequence = np.array([1, 5] * n)[:n]
    size = np.array([mpi.sequence_resolution("TS%d" % s) for s in sequence], np.float64)
    center = size / 2 + rng.uniform(-50, 50, (n, 2))
    scale = np.repeat(rng.uniform(3, 8, (n, 1)), 2, 1)
    joints_px = center[:, None] + rng.uniform(-250, 250, (n, 17, 2))
    affine = np.stack([geometry.get_affine_transform(c, s) for c, s in zip(center, scale)])
    screen = np.stack([mpi.normalize_screen(p, w, h) for p, (w, h) in zip(joints_px, size)])
    crop = np.stack([geometry.affine_transform_points(p, m) for p, m in zip(joints_px, affine)])
    labels = SimpleNamespace(sequence=sequence, camera=-np.ones(n, int),
                             keypoints_2d=screen.astype(np.float32),
                             keypoints_2d_crop=crop.astype(np.float32))
    return labels, joints_px, size, affine


def test_mpi_crop_matrix_recovered_from_the_labels_and_noise_moves_both_inputs():
    labels, joints_px, size, affine = mpi_labels()
    dataset = SimpleNamespace(labels=labels)
    indices = np.arange(4)
    np.testing.assert_allclose(MPI.frame_size_px(dataset, indices), size)
    np.testing.assert_allclose(MPI.crop_affine(dataset, indices), affine, rtol=1e-5, atol=2e-3)
    out = noise.noisy_batch(batch_of(labels, indices), MPI, dataset, 4.0, 3)
    noise_px = np.stack([4.0 * np.random.default_rng((3, 0, i)).standard_normal((17, 2))
                         for i in indices])
    screen, crop = expected_noisy_inputs(joints_px, size, affine, noise_px)
    np.testing.assert_allclose(out["keypoints_2d"].numpy(), screen, atol=2e-6)
    np.testing.assert_allclose(out["keypoints_2d_crop"].numpy(), crop, atol=5e-3)
    # the inputs are the ground truth (annot2): no 2D input error
    assert np.allclose(MPI.ground_truth_2d_px(dataset, indices), joints_px, atol=1e-3)


class FakeDataset(LabelledCropDataset):
    """Label columns + a random crop per index (enough for mvn.engine.predict)."""

    def __init__(self, labels):
        self.labels = labels

    def __len__(self):
        return len(self.labels.record)

    def load_crop(self, index):
        return np.random.default_rng(index).integers(0, 256, (256, 192, 3), dtype=np.uint8)


def test_sigma_zero_reproduces_the_plain_evaluation_and_noise_reaches_the_model():
    labels, *_ = h36m_labels(n=3)
    dataset = FakeDataset(labels)
    config = load_config(TINY, ["dataset.num_workers=0", "val.batch_size=2",
                                "val.flip_test=false"])
    torch.manual_seed(0)
    model = build_model(config)
    processes = single_process(torch.device("cpu"))
    plain, _ = engine.predict(model, dataset, config, processes, progress=False)
    zero, _ = engine.predict(model, dataset, config, processes, progress=False,
                             perturb=noise.noise_function(H36M, dataset, 0.0, 0))
    noisy, _ = engine.predict(model, dataset, config, processes, progress=False,
                              perturb=noise.noise_function(H36M, dataset, 5.0, 0))
    assert torch.equal(plain, zero)
    assert not torch.allclose(plain, noisy)


def test_input_2d_error_is_the_mean_joint_distance_in_pixels():
    truth = np.zeros((3, 17, 2))
    moved = truth.copy()
    moved[0] += [3.0, 4.0]                 # every joint 5 px away
    moved[1, :1] += [0.0, 17.0]            # one joint 17 px away: mean 1 px
    assert hard_frames.input_2d_error_px(moved, truth) == pytest.approx([5.0, 1.0, 0.0])


def test_hard_frames_select_frames_strictly_above_the_threshold():
    shift_px = np.arange(10.0)             # frame k: every joint k px from the truth
    truth = np.random.default_rng(0).uniform(0, 1000, (10, 17, 2))
    inputs = truth + shift_px[:, None, None] * np.array([0.6, 0.8])
    error = hard_frames.input_2d_error_px(inputs, truth)
    p1 = 40.0 + 10 * shift_px
    p2 = 30.0 + shift_px
    result = hard_frames.hard_frame_scores(error, p1, p2, threshold_px=5.0)
    assert result["selected"] == 4 and result["share"] == pytest.approx(0.4)   # 6, 7, 8, 9
    assert result["hard"]["p1_mm"] == pytest.approx(np.mean([100, 110, 120, 130]))
    assert result["hard"]["p2_mm"] == pytest.approx(np.mean([36, 37, 38, 39]))
    assert result["all"]["p1_mm"] == pytest.approx(p1.mean())
    assert "4 of 10 (40.00%)" in hard_frames.format_hard_frames(result)


def test_h36m_ground_truth_2d_is_each_sample_projected_with_its_own_camera():
    labels, *_ = h36m_labels()
    got = H36M.ground_truth_2d_px(SimpleNamespace(labels=labels), np.arange(6))
    for i in range(6):
        camera = h36m.camera(int(labels.subject[i]), int(labels.camera_id[i]))
        expected = geometry.project_to_2d(labels.keypoints_3d[i].astype(np.float64) * 1000,
                                          camera["f"], camera["c"], camera["k"], camera["p"])
        np.testing.assert_allclose(got[i], expected, rtol=1e-12)


def test_per_joint_errors_average_to_the_tables_p1_and_p2():
    rng = np.random.default_rng(5)
    n = 40
    target_m = rng.normal(0, 0.3, (n, 17, 3))
    predicted_m = target_m + rng.normal(0, 0.05, (n, 17, 3))
    action = np.array([2] * 25 + [3] * 10 + [7] * 5)   # unequal actions: the mean of means
    table = per_action_errors(predicted_m, target_m, action, np.ones(n, int))
    joints = per_joint.per_joint_errors(predicted_m * 1000, target_m * 1000,
                                        h36m.JOINT_NAMES, groups=action)
    assert joints["mean"]["mpjpe_mm"] == pytest.approx(table["average"]["p1"], rel=1e-12)
    assert joints["mean"]["p_mpjpe_mm"] == pytest.approx(table["average"]["p2"], rel=1e-12)
    # one joint, recomputed: the mean over actions of its mean distance
    knee = [np.linalg.norm(predicted_m[action == a, 2] - target_m[action == a, 2], axis=-1).mean()
            for a in (2, 3, 7)]
    assert joints["joints"][2]["mpjpe_mm"] == pytest.approx(1000 * np.mean(knee), rel=1e-12)


def conv_macs(module, inputs):
    """Multiply-accumulates of every Conv2d and Linear, by forward hooks: the formula of HRNet's
    authors' summary (weight elements x output positions), independent of PyTorch's counter."""
    total = []

    def hook(layer, _, output):
        positions = int(np.prod(output.shape[2:])) if isinstance(layer, torch.nn.Conv2d) \
            else int(np.prod(output.shape[:-1]))
        total.append(layer.weight.numel() * positions)

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        module(inputs)
    for handle in handles:
        handle.remove()
    return sum(total)


def test_cost_of_the_published_hrnet_32_model_matches_the_published_figures():
    config = load_config(PUBLISHED)
    with torch.device("meta"):
        model = build_model(config)
    counts = cost.parameter_counts(model)
    assert counts["trainable"] == 14_094_147          # the released training log
    head = 32 * 17 + 17  # HRNet's COCO heatmap layer (1x1 conv 32 -> 17), not used by CA-PF
    assert round((counts["frozen"] + head) / 1e6, 1) == 28.5   # HRNet's table: 28.5 M
    flops = cost.flop_counts(config)
    with torch.device("meta"):
        images = torch.zeros(1, 3, 256, 192)
    macs = conv_macs(model.backbone.eval(), images)
    assert flops["backbone"] == 2 * macs               # 2 FLOPs per multiply-accumulate
    head_macs = 32 * 17 * 64 * 48
    # HRNet's table: "7.1 GFLOPs" = its summary's multiply-adds / 2^30
    assert round((macs + head_macs) / 2 ** 30, 1) == 7.1
    assert 0.5e9 < flops["lifter"] < 0.7e9


def test_cost_table_measures_speed_on_the_device():
    config = load_config(TINY, ["val.batch_size=2", "val.flip_test=false"])
    model = build_model(config)
    result = cost.model_cost(model, config, torch.device("cpu"), h36m.SKELETON, min_seconds=0,
                             min_runs=1)
    assert set(result["samples_per_s"]) == {"batch_1", "batch_2"}
    assert all(v > 0 for v in result["samples_per_s"].values())
    assert result["gmacs_per_sample"]["forward"] == pytest.approx(
        result["gflops_per_sample"]["forward"] / 2)
    assert result["device"].startswith("cpu")
    assert "frozen" in cost.format_cost(result)


def test_training_noise_is_off_by_default_and_draws_per_epoch_when_on():
    labels, *_ = h36m_labels()
    dataset = SimpleNamespace(labels=labels)
    assert engine.training_noise(dataset, load_config(TINY), 0) is None  # the released inputs
    config = load_config(TINY, ["train.noise_2d_px=2.0", "seed=7"])
    batch = batch_of(labels, np.arange(6))
    epoch_0 = engine.training_noise(dataset, config, 0)(batch)
    expected = noise.noisy_batch(batch, H36M, dataset, 2.0, 7, stream=1)
    assert torch.equal(epoch_0["keypoints_2d_crop"], expected["keypoints_2d_crop"])
    epoch_1 = engine.training_noise(dataset, config, 1)(batch)
    assert not torch.equal(epoch_0["keypoints_2d"], epoch_1["keypoints_2d"])


def test_evaluation_options_are_off_by_default_and_validated():
    config = load_config(TINY)
    assert report.enabled(config) == []
    assert config.train.noise_2d_px == 0
    config = load_config(TINY, ["evaluation.noise_sweep=true", "evaluation.noise_sigmas_px=[0, 8]"])
    assert config.evaluation.noise_sigmas_px == [0.0, 8.0]
    assert report.enabled(config) == ["noise_sweep"]
    with pytest.raises(ConfigError, match="noise_sigmas_px"):
        load_config(TINY, ["evaluation.noise_sigmas_px=[1, -2]"])
    with pytest.raises(ConfigError, match="noise_sigmas_px"):
        load_config(TINY, ["evaluation.noise_sigmas_px=fast"])


class Scalars:
    """A TensorBoard writer that keeps what it is given."""

    def __init__(self):
        self.values = {}

    def add_scalar(self, tag, value, step):
        self.values[tag] = (value, step)


def test_training_logs_per_joint_and_hard_frames_to_tensorboard():
    labels, *_ = h36m_labels()
    dataset = SimpleNamespace(labels=labels)
    rng = np.random.default_rng(2)
    targets = torch.from_numpy(rng.normal(0, 0.3, (6, 17, 3)))
    predictions = targets + 0.01 * torch.from_numpy(rng.normal(size=(6, 17, 3)))
    config = load_config(TINY, ["evaluation.per_joint=true", "evaluation.hard_frames=true"])
    evaluation = H36M.evaluate(predictions, targets, dataset, config)
    writer = Scalars()
    report.log_epoch(writer, config, evaluation, targets, H36M, dataset, epoch=3)
    knee_mm = 1000 * np.linalg.norm((predictions - targets)[:, 2].numpy(), axis=-1)  # (6,)
    expected = np.mean([knee_mm[labels.action == a].mean() for a in (2, 3)])  # mean of actions
    assert writer.values["val_per_joint_mpjpe_mm/r_knee"] == (pytest.approx(expected), 3)
    hard = report.hard_frames(evaluation, targets, H36M, dataset, config)
    assert writer.values["val_hard_frames/share"] == (hard["share"], 3)
    assert writer.values["val_hard_frames/p1_mm"] == (hard["hard"]["p1_mm"], 3)
    report.log_epoch(writer := Scalars(), load_config(TINY), evaluation, targets, H36M, dataset, 0)
    assert writer.values == {}  # nothing enabled, nothing logged


def test_a_benchmark_without_the_geometry_refuses_the_noise_options_up_front():
    from dataclasses import replace
    from mvn.errors import CAPFError
    bare = replace(H36M, crop_affine=None)
    report.check_benchmark(bare, load_config(TINY, ["evaluation.per_joint=true"]))  # needs none
    for option in ("evaluation.noise_sweep=true", "train.noise_2d_px=1"):
        with pytest.raises(CAPFError, match="crop_affine"):
            report.check_benchmark(bare, load_config(TINY, [option]))
