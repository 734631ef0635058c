"""The 2D-noise model: zero-mean Gaussian noise on the input 2D joints, in full-frame pixels.

A detection is a point in the full frame; the model sees it twice: screen-normalised
(x / w * 2 - [1, h / w], w x h the frame) and in crop pixels (the full frame -> crop matrix A of
the sample). Noise n (pixels) moves a detection to p + n; both inputs are then exactly what the
dataset would hold for that detection:

    screen' = screen + n * 2 / w            (the normalisation is x / w * 2 minus a constant)
    crop'   = crop + A[:, :2] @ n           (A is affine; no rotation, a uniform zoom)

The noise of sample i is drawn from its own generator, seeded by (seed, stream, i): the same for
every model, batch size and number of processes, and for every sigma (sigma times one standard
normal draw), so a sweep's sigmas differ only in scale. Evaluation uses stream 0; training
(train.noise_2d_px) stream epoch + 1.
"""
import numpy as np
import torch

EVALUATION_STREAM = 0


def standard_noise(indices, seed, stream=EVALUATION_STREAM, joints=17):
    """(B, joints, 2) float64 standard normal draws of the samples `indices` (B,)."""
    return np.stack([np.random.default_rng((seed, stream, int(i))).standard_normal((joints, 2))
                     for i in np.asarray(indices).reshape(-1)]) \
        if len(indices) else np.zeros((0, joints, 2))


def move_2d_inputs(keypoints_2d, keypoints_2d_crop, noise_px, frame_size_px, crop_affine):
    """Both model inputs of detections moved by `noise_px` in the full frame.

    keypoints_2d (B, J, 2) screen-normalised, keypoints_2d_crop (B, J, 2) crop pixels (tensors);
    noise_px (B, J, 2), frame_size_px (B, 2) [width, height], crop_affine (B, 2, 3) (NumPy).
    Returns the two inputs, their dtype and device kept; a zero noise returns them unchanged."""
    noise = torch.as_tensor(noise_px, dtype=torch.float64, device=keypoints_2d.device)
    width = torch.as_tensor(frame_size_px, dtype=torch.float64,
                            device=keypoints_2d.device)[:, 0, None, None]   # (B, 1, 1)
    linear = torch.as_tensor(crop_affine, dtype=torch.float64,
                             device=keypoints_2d.device)[:, :, :2]          # (B, 2, 2)
    screen = keypoints_2d.double() + noise * 2 / width                      # (B, J, 2)
    crop = keypoints_2d_crop.double() + noise @ linear.transpose(1, 2)      # (B, J, 2)
    return screen.to(keypoints_2d.dtype), crop.to(keypoints_2d_crop.dtype)


def noisy_batch(batch, benchmark, dataset, sigma_px, seed, stream=EVALUATION_STREAM):
    """A copy of DataLoader `batch` (its 'index' the dataset's) whose 2D inputs carry the
    noise of sigma `sigma_px`; `batch` itself when sigma is 0 (bit-identical inputs)."""
    if sigma_px == 0:
        return batch
    indices = batch["index"].numpy()
    noise = sigma_px * standard_noise(indices, seed, stream, batch["keypoints_2d"].shape[-2])
    screen, crop = move_2d_inputs(batch["keypoints_2d"], batch["keypoints_2d_crop"], noise,
                                  benchmark.frame_size_px(dataset, indices),
                                  benchmark.crop_affine(dataset, indices))
    return dict(batch, keypoints_2d=screen, keypoints_2d_crop=crop)


def noise_function(benchmark, dataset, sigma_px, seed, stream=EVALUATION_STREAM):
    """batch -> noisy_batch(batch, ...): what mvn.engine.predict / train_step take as
    `perturb`."""
    def perturb(batch):
        return noisy_batch(batch, benchmark, dataset, sigma_px, seed, stream)
    return perturb
