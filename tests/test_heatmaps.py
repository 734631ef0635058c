"""The 2D detector's heatmaps: Gaussian targets, the weighted loss, decoding and the flip test,
each against values computed independently here (loops over pixels, the recipe's steps)."""
import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from mvn import geometry
from mvn.coco import decode_heatmaps, heatmap_to_crop_px
from mvn.heatmaps import flip_heatmaps_back, flip_test_heatmaps, heatmap_loss, heatmap_targets
from mvn.human36m.facts import SKELETON


def recipe_target(joint_crop_px, sigma=2.0, size=(48, 64), stride=4):
    """One joint's target as the public recipe computes it, pixel by pixel."""
    width, height = size
    heatmap = np.zeros((height, width))
    radius = 3 * sigma
    mu_x = int(joint_crop_px[0] / stride + 0.5)
    mu_y = int(joint_crop_px[1] / stride + 0.5)
    ul = [int(mu_x - radius), int(mu_y - radius)]
    br = [int(mu_x + radius + 1), int(mu_y + radius + 1)]
    if ul[0] >= width or ul[1] >= height or br[0] < 0 or br[1] < 0:
        return heatmap, 0.0
    for y in range(height):
        for x in range(width):
            if ul[0] <= x < br[0] and ul[1] <= y < br[1]:
                heatmap[y, x] = math.exp(-((x - mu_x) ** 2 + (y - mu_y) ** 2) / (2 * sigma ** 2))
    return heatmap, 1.0


def test_targets_equal_the_recipe_pixel_by_pixel():
    joints = torch.tensor([[[10.0, 20.0], [101.3, 37.9], [190.0, 255.0], [-10.0, 50.0],
                            [-30.0, 50.0], [250.0, 300.0], [97.9, 131.0], [2.0, 1.0]]])
    heatmaps, weights = heatmap_targets(joints)
    assert heatmaps.shape == (1, 8, 64, 48) and heatmaps.dtype == torch.float32
    for j, joint in enumerate(joints[0].tolist()):
        expected, weight = recipe_target(joint)
        assert weights[0, j].item() == weight, joint
        np.testing.assert_allclose(heatmaps[0, j].numpy(), expected, rtol=1e-6, atol=1e-7)
    # the joints far outside have weight 0; -30 px is 7.5 heatmap pixels left: still 1 (its
    # window reaches column 0), like the recipe
    assert weights[0].tolist() == [1, 1, 1, 1, 1, 0, 1, 1]


def test_a_non_finite_joint_has_weight_zero_and_no_target():
    heatmaps, weights = heatmap_targets(torch.tensor([[[float("nan"), 3.0], [40.0, 40.0]]]))
    assert weights.tolist() == [[0.0, 1.0]]
    assert heatmaps[0, 0].abs().sum() == 0 and heatmaps[0, 1].max() == 1


def test_loss_equals_the_recipe_per_joint_mean():
    torch.manual_seed(0)
    predicted, target = torch.randn(2, 3, 8, 6), torch.rand(2, 3, 8, 6)
    weights = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    expected = 0.0
    for j in range(3):  # JointsMSELoss: per joint, 0.5 x MSE of the weighted maps, averaged
        p = predicted[:, j].reshape(2, -1) * weights[:, j:j + 1]
        t = target[:, j].reshape(2, -1) * weights[:, j:j + 1]
        expected += 0.5 * ((p - t) ** 2).mean().item()
    assert abs(heatmap_loss(predicted, target, weights).item() - expected / 3) < 1e-7


def test_decoding_continuous_gaussians_lands_within_a_quarter_pixel():
    rng = np.random.default_rng(0)
    centres = rng.uniform([3, 3], [44, 60], size=(40, 2))  # heatmap pixels (x, y)
    ys, xs = np.mgrid[0:64, 0:48]
    maps = np.exp(-((xs[None] - centres[:, :1, None]) ** 2
                    + (ys[None] - centres[:, 1:, None]) ** 2) / (2 * 2.0 ** 2))
    coords, scores = decode_heatmaps(torch.tensor(maps, dtype=torch.float32)[None])
    error = np.abs(coords[0].numpy() - centres)
    assert error.max() <= 0.25 + 1e-6
    # in crop pixels: x 4
    crop = heatmap_to_crop_px(coords)
    assert np.abs(crop[0].numpy() - centres * 4).max() <= 1.0 + 1e-5
    # a target made by heatmap_targets for a joint on the heatmap grid decodes exactly to it
    joints = torch.tensor([[[40.0, 80.0], [100.0, 12.0]]])
    heatmaps, _ = heatmap_targets(joints)
    torch.testing.assert_close(heatmap_to_crop_px(decode_heatmaps(heatmaps)[0]), joints)


def pooled(images):
    """A 'detector' whose heatmaps mirror exactly with its input: 4x4 means of the red channel,
    the same map for every joint. (B, 256, 192, 3) -> (B, 17, 64, 48)."""
    return F.avg_pool2d(images[..., 0][:, None], 4).expand(-1, 17, -1, -1)


def test_flip_test_is_the_mean_with_the_mirror_flipped_back_and_shifted():
    torch.manual_seed(0)
    weights = torch.randn(17, 3)

    def model(images):  # joint-dependent heatmaps: the flip must also exchange left and right
        return torch.einsum("jc,bchw->bjhw", weights,
                            F.avg_pool2d(images.permute(0, 3, 1, 2), 4))

    images = torch.rand(2, 256, 192, 3)
    result = flip_test_heatmaps(model, images, SKELETON.flip_permutation)
    plain = model(images).numpy()
    mirrored = model(images.flip(2)).numpy()
    expected = np.empty_like(plain)
    permutation = SKELETON.flip_permutation
    for j in range(17):
        back = mirrored[:, permutation[j], :, ::-1]       # joint j's map, mirrored back
        shifted = back.copy()
        shifted[..., 1:] = back[..., :-1]                 # SHIFT_HEATMAP: one pixel right
        expected[:, j] = (plain[:, j] + shifted) / 2
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-6, atol=1e-6)


def test_flip_back_undoes_the_mirror_of_an_equivariant_detector():
    images = torch.randint(0, 256, (2, 256, 192, 3)).float()  # exact sums in any order
    straight = pooled(images)
    back = flip_heatmaps_back(pooled(images.flip(2)), SKELETON.flip_permutation, shift=False)
    torch.testing.assert_close(back, straight, rtol=0, atol=0)
    # with the recipe's shift: the same maps one column to the right (column 0 repeated)
    shifted = flip_heatmaps_back(pooled(images.flip(2)), SKELETON.flip_permutation)
    torch.testing.assert_close(shifted[..., 1:], straight[..., :-1], rtol=0, atol=0)
    torch.testing.assert_close(shifted[..., 0], straight[..., 0], rtol=0, atol=0)


def test_crop_to_frame_inverts_the_crop_affine():
    centers = np.array([[512.3, 498.1], [300.0, 700.25]])
    scales = np.array([[4.37, 4.37], [2.5, 2.5]])
    affines = geometry.crop_to_frame_affines(centers, scales)
    points_crop = np.array([[[0.0, 0.0], [191.0, 255.0], [95.5, 127.5]]] * 2)
    frames = geometry.apply_affines(points_crop, affines)
    for i in range(2):
        inverse = cv2.invertAffineTransform(geometry.get_affine_transform(centers[i], scales[i]))
        expected = geometry.affine_transform_points(points_crop[i], inverse)
        np.testing.assert_allclose(frames[i], expected, atol=1e-3)
        # and the crop centre is the box centre
        np.testing.assert_allclose(frames[i, 2], centers[i], atol=1e-9)
