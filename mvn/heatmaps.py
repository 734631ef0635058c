"""Heatmaps of the 2D detector stage: Gaussian targets, the weighted mean-squared loss and the flip
test, as the public HRNet pose recipe makes them (its COCO W32 256x192 experiment).

Heatmaps are a quarter of the crop (mvn.geometry.HEATMAP_SHAPE: (64, 48)); heatmap pixel i is
crop pixel 4 i. Decoding (argmax + a quarter-pixel shift) is mvn.coco.decode_heatmaps.
"""
import torch

from mvn.geometry import CROP_SHAPE, HEATMAP_SHAPE

SIGMA_PX = 2.0  # the Gaussian's standard deviation, in heatmap pixels (the recipe's SIGMA)


def heatmap_stride(heatmap_shape=HEATMAP_SHAPE, crop_shape=CROP_SHAPE):
    """(x, y) crop pixels per heatmap pixel: (4, 4)."""
    return crop_shape[1] / heatmap_shape[1], crop_shape[0] / heatmap_shape[0]


def heatmap_targets(joints_crop_px, sigma_px=SIGMA_PX, heatmap_shape=HEATMAP_SHAPE,
                    crop_shape=CROP_SHAPE):
    """(B, J, 2) joints in crop pixels -> heatmaps (B, J, H, W) float32 and weights (B, J).

    As the recipe: the centre is the joint in heatmap pixels rounded by int(x + 0.5) (truncating
    towards zero); the target is exp(-d^2 / (2 sigma^2)) within 3 sigma of it along x and along y
    (a (6 sigma + 1)-pixel window), 0 elsewhere; a joint whose window lies wholly outside the
    heatmap (or that is not finite) has weight 0 and an all-zero heatmap."""
    height, width = heatmap_shape
    stride_x, stride_y = heatmap_stride(heatmap_shape, crop_shape)
    joints = joints_crop_px.float()
    finite = torch.isfinite(joints).all(-1)                              # (B, J)
    joints = torch.where(finite[..., None], joints, torch.zeros_like(joints))
    centre_x = torch.trunc(joints[..., 0] / stride_x + 0.5)             # (B, J)
    centre_y = torch.trunc(joints[..., 1] / stride_y + 0.5)
    radius = int(3 * sigma_px)                                          # tmp_size
    # the recipe's test: ul = centre - radius, br = centre + radius + 1; outside if
    # ul >= size or br < 0 (along x or along y)
    outside = ((centre_x - radius >= width) | (centre_y - radius >= height)
               | (centre_x + radius + 1 < 0) | (centre_y + radius + 1 < 0))
    weights = (finite & ~outside).float()                              # (B, J)
    xs = torch.arange(width, dtype=torch.float32, device=joints.device)
    ys = torch.arange(height, dtype=torch.float32, device=joints.device)
    dx = xs - centre_x[..., None]                                       # (B, J, W)
    dy = ys - centre_y[..., None]                                       # (B, J, H)
    gx = torch.exp(-dx ** 2 / (2 * sigma_px ** 2)) * (dx.abs() <= radius)
    gy = torch.exp(-dy ** 2 / (2 * sigma_px ** 2)) * (dy.abs() <= radius)
    heatmaps = gy[..., :, None] * gx[..., None, :] * weights[..., None, None]  # (B, J, H, W)
    return heatmaps, weights


def heatmap_loss(predicted, target, weights):
    """The recipe's JointsMSELoss with target weights: 0.5 x the mean over (B, J, H, W) of
    ((predicted - target) x weight)^2 (its per-joint means averaged over joints)."""
    w = weights[..., None, None]
    return 0.5 * ((predicted * w - target * w) ** 2).mean()


def flip_heatmaps_back(heatmaps, flip_permutation, shift=True):
    """Heatmaps (B, J, H, W) of mirrored crops -> those of the crops: mirrored along W, left
    and right joints exchanged and, with `shift` (the recipe's SHIFT_HEATMAP), moved one pixel
    to the right (column 0 keeps its value)."""
    back = heatmaps.flip(-1)[:, list(flip_permutation)]
    if shift:
        back = torch.cat([back[..., :1], back[..., :-1]], -1)
    return back


def flip_test_heatmaps(model, images, flip_permutation):
    """The mean of the heatmaps of the crops (B, 256, 192, 3) and of their mirrors, flipped
    back (`flip_heatmaps_back`)."""
    heatmaps = model(images)
    mirrored = model(images.flip(2))  # (B, H, W, 3): W is dim 2
    return (heatmaps + flip_heatmaps_back(mirrored, flip_permutation)) / 2
