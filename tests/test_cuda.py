"""On a CUDA GPU: the reference vectors, the flip test, THE training step and an evaluation give
the CPU's values. Marked `cuda` (run them alone with `pytest -m cuda`); they skip where no CUDA
device is visible, and they are the only tests that may skip."""
import pytest
import torch

from conftest import fill_state_dict, load_reference
from mvn import engine, recipe
from mvn.batch import prepare_images, predict_pose
from mvn.config import load_config
from mvn.distributed import single_process
from mvn.human36m.facts import SKELETON
from mvn.models import build_model
from mvn.models.weights import load_model_weights

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]
CUDA = torch.device("cuda")
TINY = ["model.backbone.type=hrnet_tiny", "model.embed_dim_ratio=32"]


@pytest.fixture(autouse=True)
def exact_fp32():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def tiny_model(reference):
    model = build_model(load_config(None, TINY)).eval()
    model.load_state_dict(reference["state_dict"])
    return model


def test_tiny_and_full_reference_vectors_on_the_gpu():
    reference = load_reference("tiny_vectors.pt")
    model = tiny_model(reference).to(CUDA)
    with torch.no_grad():
        output = model(*(reference[k].to(CUDA) for k in ("images", "keypoints_2d",
                                                           "keypoints_2d_crop")))
    scale = reference["output"].abs().max()
    torch.testing.assert_close(output.cpu(), reference["output"], rtol=1e-4, atol=1e-4 * scale)
    full = load_reference("hrnet32_fill_vectors.pt")
    model = build_model(load_config(None, ["model.backbone.type=hrnet_32"])).eval()
    with torch.no_grad():
        fill_state_dict(model.state_dict())
        output = model.to(CUDA)(*(full[k].to(CUDA) for k in ("images", "keypoints_2d",
                                                              "keypoints_2d_crop")))
    torch.testing.assert_close(output.cpu(), full["output"], rtol=1e-3, atol=1e-3)


def test_flip_test_on_the_gpu_equals_the_reference():
    reference = load_reference("tiny_vectors.pt")
    flip = reference["flip_test"]
    model = tiny_model(reference).to(CUDA)
    with torch.no_grad():
        images = prepare_images(flip["images_bgr_uint8"].to(CUDA), "hrnet_tiny")
        prediction = predict_pose(model, images, flip["keypoints_2d"].to(CUDA),
                                  flip["keypoints_2d_crop"].to(CUDA), skeleton=SKELETON)
    torch.testing.assert_close(prediction.cpu(), flip["prediction"][:, 0], rtol=1e-4,
                               atol=1e-4 * flip["prediction"].abs().max())


def test_one_training_step_on_the_gpu_matches_the_cpu():
    config = load_config(None, TINY + ["model.drop_path_rate=0.0", "train.flip_augmentation=false",
                                       "loss.grad_clip=1.0"])
    g = torch.Generator().manual_seed(0)
    batch = {"images": torch.randint(0, 256, (4, 256, 192, 3), dtype=torch.uint8, generator=g),
             "keypoints_2d": torch.rand(4, 17, 2, generator=g) * 2 - 1,
             "keypoints_2d_crop": torch.rand(4, 17, 2, generator=g) * 191,
             "keypoints_3d": torch.randn(4, 1, 17, 3, generator=g) * 0.3}
    models = {}
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        model = build_model(config).to(device)
        optimizer = recipe.make_optimizer(model, config)
        loss = engine.train_step(model, optimizer, batch, config, single_process(device),
                                 torch.Generator().manual_seed(1))
        models[device] = (model, loss.item())
    assert models["cuda"][1] == pytest.approx(models["cpu"][1], rel=1e-4)
    for (name, a), b in zip(models["cpu"][0].state_dict().items(),
                            models["cuda"][0].state_dict().values()):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-3, atol=1e-5, msg=name)


def test_evaluation_on_the_gpu_gives_the_cpu_table(synthetic_h36m, tmp_path):
    import os
    from mvn.checkpoint import model_state_with_module_prefix
    from mvn.human36m.dataset import Human36MDataset
    config = load_config(None, TINY + ["val.batch_size=16", "dataset.num_workers=0"])
    model = build_model(config)
    path = str(tmp_path / "model.bin")
    torch.save({"model": model_state_with_module_prefix(model)}, path)
    dataset = Human36MDataset(os.path.join(synthetic_h36m, "images"),
                              os.path.join(synthetic_h36m, "h36m_validation.pkl"))
    tables = {}
    for device in ("cpu", "cuda"):
        model = build_model(config)
        load_model_weights(model, path)
        tables[device] = engine.evaluate(model.to(device), dataset, config,
                                         single_process(device))[0].tables
    for key in ("p1", "p2", "mpjve"):
        assert tables["cuda"]["average"][key] == pytest.approx(tables["cpu"]["average"][key],
                                                               abs=1e-3)


def test_cached_backbone_maps_on_the_gpu_give_the_uncached_evaluation(synthetic_h36m, tmp_path):
    """train.feature_cache on CUDA: maps computed on the GPU, kept in host memory, moved back
    per batch; the evaluation equals the uncached one on the GPU exactly."""
    import os
    from mvn.feature_cache import attach_feature_cache
    from mvn.human36m.dataset import Human36MDataset
    config = load_config(None, TINY + ["val.batch_size=16", "dataset.num_workers=0",
                                       "train.feature_cache=memory"])
    torch.manual_seed(0)
    model = build_model(config).eval().to(CUDA)
    dataset = Human36MDataset(os.path.join(synthetic_h36m, "images"),
                              os.path.join(synthetic_h36m, "h36m_validation.pkl"))
    processes = single_process("cuda")
    plain, _ = engine.predict(model, dataset, config, processes, progress=False)
    assert attach_feature_cache(model, dataset, config, CUDA, SKELETON, str(tmp_path), "val")
    cached, _ = engine.predict(model, dataset, config, processes, progress=False)
    assert torch.equal(cached, plain)
