"""mvn.coco: COCO -> Human3.6M joints, heatmap decoding, HRNet's person boxes, the COCO head."""
import numpy as np
import pytest
import torch

from mvn import coco
from mvn.models.hrnet import HRNET_TINY_STAGES, HRNet
from mvn.models.weights import WeightsError


def hand_made_coco():
    """COCO keypoints of an upright person facing the camera (pixels, y down)."""
    points = np.zeros((17, 2))
    points[0] = [100, 40]                       # nose
    points[1], points[2] = [108, 34], [92, 34]  # eyes (left eye on the image right)
    points[3], points[4] = [116, 38], [84, 38]  # ears
    points[5], points[6] = [130, 80], [70, 80]  # shoulders
    points[7], points[8] = [140, 130], [60, 130]
    points[9], points[10] = [145, 175], [55, 175]
    points[11], points[12] = [120, 180], [80, 180]  # hips
    points[13], points[14] = [122, 250], [78, 250]
    points[15], points[16] = [124, 320], [76, 320]
    return points


def test_coco_to_h36m_on_hand_made_points():
    c = hand_made_coco()
    h = coco.coco_to_h36m(c)
    pelvis, thorax = (c[11] + c[12]) / 2, (c[5] + c[6]) / 2
    face = c[1:5].mean(axis=0)
    expected = np.array([
        pelvis, c[12], c[14], c[16], c[11], c[13], c[15],
        (pelvis + thorax) / 2, thorax, c[0], face + 0.5 * (face - thorax),
        c[5], c[7], c[9], c[6], c[8], c[10]])
    np.testing.assert_allclose(h, expected, atol=1e-12)
    np.testing.assert_allclose(h[10], [100, 36 - 0.5 * (80 - 36)])  # above the eyes
    np.testing.assert_allclose(coco.COCO_TO_H36M.sum(axis=1), 1.0)


def test_coco_to_h36m_commutes_with_affine_maps_and_batches():
    c = hand_made_coco()
    A, b = np.array([[0.5, 0.1], [-0.2, 2.0]]), np.array([3.0, -7.0])
    np.testing.assert_allclose(coco.coco_to_h36m(c @ A.T + b), coco.coco_to_h36m(c) @ A.T + b,
                               atol=1e-9)
    batch = np.stack([c, c + 1])[None]  # (1, 2, 17, 2)
    assert coco.coco_to_h36m(batch).shape == (1, 2, 17, 2)
    np.testing.assert_allclose(coco.coco_to_h36m(batch)[0, 1], coco.coco_to_h36m(c) + 1)


def test_coco_scores_to_h36m_takes_the_weakest_source():
    scores = np.linspace(0.1, 0.9, 17)
    h = coco.coco_scores_to_h36m(scores)
    assert h[0] == scores[11]                  # pelvis: min(l_hip, r_hip)
    assert h[7] == scores[5]                   # spine: shoulders and hips
    assert h[10] == scores[1]                  # head: eyes, ears, shoulders
    assert h[16] == scores[10]                 # r_wrist


def test_decode_heatmaps_argmax_and_quarter_pixel_shift():
    heatmaps = torch.zeros(1, 4, 64, 48)
    heatmaps[0, 0, 20, 10] = 1.0               # peak at x=10, y=20
    heatmaps[0, 0, 20, 11] = 0.5               # right higher than left -> +0.25 in x
    heatmaps[0, 0, 19, 10] = 0.3               # above higher than below -> -0.25 in y
    heatmaps[0, 1, 30, 1] = 1.0                # x = 1: HRNet does not shift (1 < x fails)
    heatmaps[0, 1, 30, 2] = 0.5
    heatmaps[0, 2, 5, 5] = 2.0                 # equal neighbours: no shift
    heatmaps[0, 3] = -1.0                      # all negative: the first maximum, score -1
    heatmaps[0, 3, 63, 47] = -0.5
    coords, scores = coco.decode_heatmaps(heatmaps)
    np.testing.assert_allclose(coords[0].numpy(), [[10.25, 19.75], [1, 30], [5, 5], [47, 63]])
    np.testing.assert_allclose(scores[0].numpy(), [1.0, 1.0, 2.0, -0.5])
    np.testing.assert_allclose(coco.heatmap_to_crop_px(coords)[0, 0].numpy(), [41.0, 79.0])


def test_box_to_center_scale_is_hrnets():
    center, scale = coco.box_to_center_scale(np.array([[100, 50, 200, 450],    # tall: widen
                                                       [0, 0, 400, 100]]))     # wide: heighten
    np.testing.assert_allclose(center, [[150, 250], [200, 50]])
    np.testing.assert_allclose(scale, [[300 / 200 * 1.25, 400 / 200 * 1.25],
                                       [400 / 200 * 1.25, 400 / 0.75 / 200 * 1.25]])
    np.testing.assert_allclose(coco.box_from_keypoints(hand_made_coco()), [55, 34, 145, 320])


def test_coco_detector_loads_the_head_and_refuses_other_widths(tmp_path):
    backbone = HRNet(HRNET_TINY_STAGES).eval()
    good = str(tmp_path / "head.pth")
    torch.save({"final_layer.weight": torch.randn(17, 8, 1, 1),
                "final_layer.bias": torch.randn(17)}, good)
    detector = coco.load_coco_detector(backbone, good)
    assert detector.backbone is backbone
    images = torch.randn(2, 256, 192, 3)
    heatmaps = detector(images)
    assert heatmaps.shape == (2, 17, 64, 48)
    coords, scores = detector.detect(images)
    assert coords.shape == (2, 17, 2) and scores.shape == (2, 17)
    assert (coords >= 0).all() and (coords[..., 0] <= 188).all() and (coords[..., 1] <= 252).all()
    wrong = str(tmp_path / "w32.pth")
    torch.save({"final_layer.weight": torch.randn(17, 32, 1, 1),
                "final_layer.bias": torch.randn(17)}, wrong)
    with pytest.raises(WeightsError, match="another HRNet width"):
        coco.load_coco_detector(backbone, wrong)
    headless = str(tmp_path / "headless.pth")
    torch.save(backbone.state_dict(), headless)
    with pytest.raises(WeightsError, match="final_layer"):
        coco.load_coco_detector(backbone, headless)


