"""Batch preparation: normalisation, root-relative targets, flips."""
import torch

from mvn.batch import flip_batch, mirror_x, prepare_batch, prepare_images, root_relative
from mvn.human36m.facts import SKELETON


def test_prepare_images_hrnet_and_cpn_normalisation():
    bgr = torch.tensor([[[[10, 20, 30]]]], dtype=torch.uint8)  # one pixel, B,H,W,3
    hrnet = prepare_images(bgr, "hrnet_32")[0, 0, 0]
    expected = (torch.tensor([30.0, 20.0, 10.0]) / 255 - torch.tensor([0.485, 0.456, 0.406])) \
        / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(hrnet, expected)
    cpn = prepare_images(bgr, "cpn")[0, 0, 0]
    expected = torch.tensor([30.0 - 122.7717, 20.0 - 115.9465, 10.0 - 102.9801]) / 255
    torch.testing.assert_close(cpn, expected)


def test_root_relative_sets_pelvis_to_zero():
    joints = torch.randn(2, 1, 17, 3)
    relative = root_relative(joints, SKELETON)
    assert torch.equal(relative[..., 0, :], torch.zeros(2, 1, 3))
    torch.testing.assert_close(relative[..., 5, :], joints[..., 5, :] - joints[..., 0, :])


def test_flip_batch_mirrors_and_swaps_left_right():
    images = torch.arange(2 * 4 * 3 * 3, dtype=torch.float32).view(2, 4, 3, 3)
    kp2d = torch.randn(2, 17, 2)
    crop = torch.rand(2, 17, 2) * 191
    kp3d = torch.randn(2, 1, 17, 3)
    f_images, f_kp2d, f_crop, f_kp3d = flip_batch(images, kp2d, crop, kp3d, crop_width=192,
                                                  skeleton=SKELETON)
    assert torch.equal(f_images[:, :, 0], images[:, :, -1])
    # joint 1 (r_hip) takes the mirrored joint 4 (l_hip); pelvis stays, mirrored
    torch.testing.assert_close(f_kp2d[:, 1], kp2d[:, 4] * torch.tensor([-1.0, 1.0]))
    torch.testing.assert_close(f_crop[:, 0, 0], 191 - crop[:, 0, 0])
    torch.testing.assert_close(f_crop[:, 14, 1], crop[:, 11, 1])
    torch.testing.assert_close(f_kp3d[..., 16, :], kp3d[..., 13, :] * torch.tensor([-1.0, 1, 1]))
    # flipping twice is the identity
    back = flip_batch(*flip_batch(images, kp2d, crop, kp3d, skeleton=SKELETON), crop_width=192,
                      skeleton=SKELETON)
    for a, b in zip(back, (images, kp2d, crop, kp3d)):
        torch.testing.assert_close(a, b)
    assert torch.equal(mirror_x(mirror_x(kp3d, skeleton=SKELETON), skeleton=SKELETON), kp3d)


def test_prepare_batch_flips_whole_batch():
    batch = {"images": torch.randint(0, 255, (3, 8, 6, 3), dtype=torch.uint8),
             "keypoints_2d": torch.randn(3, 17, 2),
             "keypoints_2d_crop": torch.rand(3, 17, 2) * 5,
             "keypoints_3d": torch.randn(3, 1, 17, 3)}
    plain = prepare_batch(batch, "hrnet_32", torch.device("cpu"), flip=False, skeleton=SKELETON)
    flipped = prepare_batch(batch, "hrnet_32", torch.device("cpu"), flip=True, skeleton=SKELETON)
    assert torch.equal(plain[3][..., 0, :], torch.zeros(3, 1, 3))
    torch.testing.assert_close(flipped[0], plain[0].flip(2))
    torch.testing.assert_close(flipped[2][..., 0], 5 - plain[2][..., mirror_index(), 0])
    torch.testing.assert_close(flipped[3], mirror_x(plain[3], skeleton=SKELETON))


def mirror_index():
    return list(SKELETON.flip_permutation)
