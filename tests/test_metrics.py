"""Metrics (VideoPose3D conventions) against the reference values, and the per-action table."""
import numpy as np
import pytest
import torch

from conftest import reference_path
from mvn.human36m.protocol import format_table, per_action_errors
from mvn.metrics import mpjpe, mpjve, n_mpjpe, p_mpjpe


@pytest.fixture(scope="module")
def vectors():
    return dict(np.load(reference_path("metric_vectors.npz")))


def test_metrics_match_reference_values_numpy(vectors):
    gt, pred = vectors["gt"], vectors["pred"]
    assert mpjpe(pred, gt) == pytest.approx(float(vectors["mpjpe"]), abs=1e-6)
    assert n_mpjpe(pred, gt) == pytest.approx(float(vectors["n_mpjpe"]), abs=1e-6)
    assert p_mpjpe(pred[:, 0], gt[:, 0]) == pytest.approx(float(vectors["p_mpjpe"]), abs=1e-6)
    assert mpjve(pred[:, 0], gt[:, 0]) == pytest.approx(float(vectors["mpjve"]), abs=1e-6)


def test_metrics_match_reference_values_torch(vectors):
    gt, pred = torch.from_numpy(vectors["gt"]), torch.from_numpy(vectors["pred"])
    for fn, key, args in [(mpjpe, "mpjpe", (pred, gt)), (n_mpjpe, "n_mpjpe", (pred, gt)),
                          (p_mpjpe, "p_mpjpe", (pred[:, 0], gt[:, 0])),
                          (mpjve, "mpjve", (pred[:, 0], gt[:, 0]))]:
        value = fn(*args)
        assert torch.is_tensor(value) and value.dtype == torch.float32
        assert float(value) == pytest.approx(float(vectors[key]), abs=1e-6), key


def test_p_mpjpe_per_frame_and_invariances(vectors):
    gt = vectors["gt"][:, 0].astype(np.float64)
    per_frame = p_mpjpe(vectors["pred"][:, 0], gt, reduce=False)
    assert per_frame.shape == (50,)
    assert per_frame.mean() == pytest.approx(float(vectors["p_mpjpe"]), abs=1e-6)
    # A rotated, scaled and shifted copy of the target aligns back to zero error.
    angle = 0.7
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0],
                         [0, 0, 1]])
    moved = 1.7 * gt @ rotation.T + np.array([0.3, -0.2, 4.0])
    assert p_mpjpe(moved, gt) == pytest.approx(0.0, abs=1e-9)
    # A mirror image is not a rotation: reflections are excluded, so the error stays.
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    assert p_mpjpe(mirrored, gt) > 0.01


def test_p_mpjpe_degenerate_frames_do_not_divide_by_zero():
    gt = np.random.RandomState(0).randn(3, 17, 3)
    pred = gt.copy()
    pred[1] = 0.0          # all joints at one point (e.g. padding)
    gt[2] = 0.0            # degenerate target
    errors = p_mpjpe(pred, gt, reduce=False)
    assert np.all(np.isfinite(errors))
    assert errors[0] == pytest.approx(0.0, abs=1e-9)
    # prediction collapsed to a point: aligned to the target centroid
    centroid_error = np.linalg.norm(gt[1] - gt[1].mean(0), axis=-1).mean()
    assert errors[1] == pytest.approx(centroid_error)


def test_mpjve_crosses_sequence_boundaries_like_reference():
    gt = np.zeros((4, 17, 3))
    pred = np.zeros((4, 17, 3))
    pred[2:] = 1.0  # a jump between frame 1 and 2 (e.g. a video boundary)
    assert mpjve(pred, gt) == pytest.approx(np.sqrt(3) / 3)


def test_per_action_table_averages_actions_and_reports_missing(caplog):
    rng = np.random.RandomState(1)
    gt = rng.randn(6, 17, 3) * 0.1
    pred = gt.copy()
    pred[:4] += np.array([0.01, 0, 0])  # Directions frames: 10 mm off
    pred[4:] += np.array([0, 0.03, 0])  # Eating frames: 30 mm off
    actions = np.array([2, 2, 2, 2, 4, 4])
    table = per_action_errors(pred, gt, actions, np.ones(6, int))
    assert table["actions"]["Directions"]["p1"] == pytest.approx(10.0)
    assert table["actions"]["Eating"]["p1"] == pytest.approx(30.0)
    assert table["actions"]["Directions"]["frames"] == 4
    # plain mean over actions, not frame-weighted: (10 + 30) / 2, not (4*10 + 2*30) / 6
    assert table["average"]["p1"] == pytest.approx(20.0)
    assert table["average"]["p2"] == pytest.approx(0.0, abs=1e-6)
    assert len(table["missing"]) == 13 and "Walking" in table["missing"]
    assert "left out" in caplog.text
    text = format_table(table)
    assert "Directions" in text and "average" in text and "20.00" in text


def test_per_action_table_equals_the_released_evaluation():
    vectors = np.load(reference_path("eval_table_vectors.npz"))
    table = per_action_errors(vectors["pred"], vectors["gt"], vectors["action"],
                              vectors["subaction"])
    assert list(table["actions"]) == list(vectors["action_names"])
    got = np.array([[table["actions"][name][key] for key in ("p1", "p2", "mpjve")]
                    for name in vectors["action_names"]])
    np.testing.assert_allclose(got, vectors["table_mm"], rtol=0, atol=1e-4)
    average = [table["average"][key] for key in ("p1", "p2", "mpjve")]
    np.testing.assert_allclose(average, vectors["average_mm"], rtol=0, atol=1e-4)


def test_mpjve_is_per_trial_then_frame_weighted():
    # Directions: trial 1 (3 frames, interleaved with trial 2 in the list) moves at a constant
    # error velocity of 10 mm per frame; trial 2 (2 frames) has none. Trial by trial: (3 * 10 +
    # 2 * 0) / 5 = 6 mm. Merged in list order, the jumps between the trials would count.
    gt = np.zeros((5, 17, 3))
    pred = np.zeros((5, 17, 3))
    subaction = np.array([1, 2, 1, 2, 1])
    pred[subaction == 1, :, 0] = np.array([0.0, 0.01, 0.02])[:, None]  # metres
    table = per_action_errors(pred, gt, np.full(5, 2), subaction)
    assert table["actions"]["Directions"]["mpjve"] == pytest.approx(6.0)
    merged = mpjve(pred * 1000, gt * 1000)
    assert merged == pytest.approx((0 + 10 + 10 + 20) / 4)  # one merged pass: 10, not 6
    with pytest.raises(ValueError, match="subaction ids"):
        per_action_errors(pred, gt, np.full(5, 2), subaction[:4])


@pytest.mark.parametrize("metric", [mpjpe, n_mpjpe, p_mpjpe, mpjve])
def test_metrics_refuse_shapes_that_would_broadcast(metric):
    predicted, target = np.zeros((4, 1, 17, 3)), np.zeros((4, 17, 3))
    with pytest.raises(ValueError, match=r"\(4, 1, 17, 3\) and target \(4, 17, 3\)"):
        metric(predicted, target)
    with pytest.raises(ValueError, match="same shape"):
        metric(torch.zeros(4, 17, 2), torch.zeros(4, 17, 2))


def test_n_mpjpe_of_a_prediction_at_the_origin_is_finite():
    target = np.random.default_rng(0).normal(size=(3, 17, 3))
    predicted = target.copy()
    predicted[1] = 0.0  # nothing to scale: the error is the target's own size
    per_frame = n_mpjpe(predicted, target, reduce=False)
    assert np.isfinite(per_frame).all()
    assert per_frame[1] == pytest.approx(np.linalg.norm(target[1], axis=-1).mean())
    assert per_frame[0] == pytest.approx(0.0, abs=1e-12)


def test_non_finite_frames_are_reported_and_left_out_not_a_crash(caplog):
    rng = np.random.default_rng(4)
    gt = rng.normal(size=(6, 17, 3)) * 0.2
    pred = gt + np.array([0.01, 0.0, 0.0])               # 10 mm off everywhere
    pred[2, 3, 0] = np.nan                               # a diverged prediction
    pred[4] = np.inf
    per_frame = p_mpjpe(pred, gt, reduce=False)          # no LinAlgError
    assert np.isnan(per_frame[[2, 4]]).all() and np.isfinite(per_frame[[0, 1, 3, 5]]).all()
    table = per_action_errors(pred, gt, np.full(6, 2), np.array([1, 1, 1, 2, 2, 2]))
    assert table["non_finite_frames"] == [2, 4]
    assert "frames 2, 4" in caplog.text and "left out" in caplog.text
    assert table["actions"]["Directions"]["frames"] == 4
    assert table["actions"]["Directions"]["p1"] == pytest.approx(10.0)
    assert table["actions"]["Directions"]["mpjve"] == pytest.approx(0.0, abs=1e-9)
