"""The linear probe of ablation.py (mvn/evaluations/feature_probe.py): sampling at the joints
against positions computed by hand, and a ridge fit that finds a linear relation when it is
there and not when it is not."""
import numpy as np

from mvn.evaluations import feature_probe


def test_maps_are_read_at_the_joints_as_the_model_samples_them():
    # Level 0 (64 x 48) holds its column index in channel 0 and its row index in channel 1;
    # a joint at crop pixel (x, y) lies at map column x * 48 / 192 - 0.5, row y * 64 / 256 - 0.5.
    columns = np.broadcast_to(np.arange(48.0), (64, 48))
    rows = np.broadcast_to(np.arange(64.0)[:, None], (64, 48))
    level0 = np.stack([columns, rows])[None].astype(np.float32)            # (1, 2, 64, 48)
    level1 = np.full((1, 3, 32, 24), 7.0, np.float32)                      # (1, 3, 32, 24)
    joints = np.array([[[100.0, 60.0], [10.0, 250.0]]])                    # (1, 2, 2) crop px
    sampled = feature_probe.sample_at_joints([level0, level1], joints)     # (1, 2, 5)
    assert sampled.shape == (1, 2, 5)
    np.testing.assert_allclose(sampled[0, 0], [24.5, 14.5, 7, 7, 7], atol=1e-5)
    np.testing.assert_allclose(sampled[0, 1], [2.0, 62.0, 7, 7, 7], atol=1e-5)


def test_the_probe_finds_a_linear_relation_and_no_more():
    rng = np.random.default_rng(0)
    n_train, n_val, joints = 300, 100, 4
    hidden = rng.normal(size=(n_train + n_val, 6))
    mixing = rng.normal(size=(6, joints * 3))
    poses = (hidden @ mixing * 100).reshape(-1, joints, 3)                 # mm
    noise = rng.normal(size=(n_train + n_val, 6))
    train, val = slice(0, n_train), slice(n_train, None)
    informative = feature_probe.probe(hidden[train], poses[train], hidden[val], poses[val])
    blind = feature_probe.probe(noise[train], poses[train], noise[val], poses[val])
    spread = np.linalg.norm(poses[val] - poses[train].mean(0), axis=-1).mean()  # ~300 mm
    assert informative["mean_joint_error_mm"] < 0.02 * spread
    assert blind["mean_joint_error_mm"] > 0.9 * spread
    assert informative["inputs"] == 6
    assert informative["train_mean_joint_error_mm"] < 0.02 * spread
    assert blind["train_mean_joint_error_mm"] < blind["mean_joint_error_mm"]  # fits noise a bit


def test_probe_inputs_put_the_2d_joints_first():
    keypoints_2d = np.arange(2 * 17 * 2, dtype=float).reshape(2, 17, 2)
    sampled = np.ones((2, 17, 3))
    inputs = feature_probe.probe_inputs(keypoints_2d, sampled)
    assert inputs.shape == (2, 17 * 2 + 17 * 3)
    np.testing.assert_array_equal(inputs[:, :34], keypoints_2d.reshape(2, 34))


def test_distribution_shift_counts_values_far_from_the_training_frames():
    rng = np.random.default_rng(1)
    train = rng.normal(size=(2000, 2, 3))
    same = rng.normal(size=(1000, 2, 3))
    shifted = same.copy()
    shifted[:, 0, 0] += 10.0                     # one of the 6 values moved by 10 SD
    near = feature_probe.distribution_shift(train, same)
    far = feature_probe.distribution_shift(train, shifted)
    assert near["val_share_beyond_5_sd"] == 0 and near["train_share_beyond_5_sd"] < 1e-3
    assert abs(far["val_share_beyond_5_sd"] - 1 / 6) < 0.01
