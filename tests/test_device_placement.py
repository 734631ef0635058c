"""Every tensor of a training step follows the model's device (no GPU needed).

CI has no GPU, so a constant created on the CPU inside the model, the batch preparation or
the optimiser would only show up on a user's GPU ("Expected all tensors to be on the same
device"). PyTorch's "meta" device computes shapes only and refuses the same mixtures a CUDA
device does, so THE training step (`mvn.engine.train_step`: batch preparation with and without
the flip, forward, MPJPE loss, backward, gradient clipping, AdamW step) and then the flip test
on it check the device placement of every op at the cost of building the model.
"""
import pytest
import torch

from mvn import engine, recipe
from mvn.batch import flip_test, prepare_batch
from mvn.config import load_config
from mvn.distributed import single_process
from mvn.human36m.facts import SKELETON
from mvn.models import build_model

META = torch.device("meta")
BACKBONE_CONFIGS = {
    "hrnet_tiny": ["model.backbone.type=hrnet_tiny", "model.embed_dim_ratio=32"],
    "hrnet_32": ["model.backbone.type=hrnet_32"],
    "cpn": ["model.backbone.type=cpn"],
}


def test_meta_device_refuses_a_cpu_tensor_like_cuda_does():
    with pytest.raises(RuntimeError, match="device"):
        torch.zeros(2, 3, device=META) + torch.ones(2, 3)


def dataloader_batch(batch_size=2):
    """A batch as the DataLoader gives it: CPU tensors, images BGR uint8, 3D joints float64."""
    return {"images": torch.zeros(batch_size, 256, 192, 3, dtype=torch.uint8),
            "keypoints_2d": torch.zeros(batch_size, 17, 2),
            "keypoints_2d_crop": torch.zeros(batch_size, 17, 2),
            "keypoints_3d": torch.zeros(batch_size, 1, 17, 3, dtype=torch.float64)}


# channels_last (one code path for every backbone: recipe.apply_channels_last) with the
# published backbone; each backbone in the default layout.
@pytest.mark.parametrize("backbone, channels_last", [("hrnet_32", True)] + [
    (name, False) for name in sorted(BACKBONE_CONFIGS)])
def test_training_step_and_flip_test_keep_every_tensor_on_the_model_device(backbone,
                                                                           channels_last):
    config = load_config(None, BACKBONE_CONFIGS[backbone] + [
        "model.backbone.pretrained=none", "loss.grad_clip=1.0",
        "train.channels_last=%s" % str(channels_last).lower()])
    model = recipe.apply_channels_last(build_model(config).to(META), config)
    optimizer = recipe.make_optimizer(model, config)
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    model.train()
    flips = torch.Generator().manual_seed(0)  # draws: flip, then no flip (both paths run)
    assert [torch.rand(1, generator=flips).item() < 0.5 for _ in range(2)] == [True, False]
    flips.manual_seed(0)
    for _ in range(2):
        loss = engine.train_step(model, optimizer, dataloader_batch(), config,
                                 single_process(META), flips)
        assert loss.shape == () and loss.device == META
    assert all(p.device == META for p in model.parameters())
    assert all(p.grad is None or p.grad.device == META for p in parameters)
    model.eval()
    images, keypoints_2d, keypoints_2d_crop, _ = prepare_batch(dataloader_batch(), backbone, META,
                                                               skeleton=SKELETON)
    with torch.no_grad():
        output = flip_test(model, images, keypoints_2d, keypoints_2d_crop, skeleton=SKELETON)
    assert output.shape == (2, 1, 17, 3) and output.device == META
