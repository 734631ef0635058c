"""train.feature_cache: the frozen backbone's maps computed once give the uncached path's numbers
(the evaluation exactly, training within float tolerance), never decode a frame again, and
refuse the configurations whose maps would change."""
import os

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from conftest import REPO_ROOT
from mvn import benchmarks, engine
from mvn.batch import prepare_batch
from mvn.config import load_config
from mvn.distributed import single_process
from mvn.feature_cache import FeatureCacheError, attach_feature_cache, check_config
from mvn.models import build_model
from mvn.tasks import task_of
from test_train import options

CONFIG = os.path.join(REPO_ROOT, "experiments", "synthetic", "tiny.yaml")
SKELETON = benchmarks.get("human36m").skeleton


def make_config(root, **extra):
    values = {"dataset.val_frame_stride": 4, "val.batch_size": 8}
    values.update(extra)
    return load_config(CONFIG, options(root, **values))


def val_set_and_model(config, seed=0):
    dataset = engine.build_split(benchmarks.get("human36m"), config, "val")
    torch.manual_seed(seed)
    return dataset, build_model(config).eval()


def refuse_decoding(dataset):
    def load_crop(index):
        raise AssertionError("frame %d decoded although its maps are cached" % index)
    dataset.load_crop = load_crop


def test_evaluation_with_cached_maps_equals_the_uncached_one(synthetic_h36m, tmp_path):
    processes = single_process("cpu")
    for mode in ("memory", "disk"):
        config = make_config(synthetic_h36m, **{"train.feature_cache": mode})
        dataset, model = val_set_and_model(config)
        plain, targets = engine.predict(model, dataset, config, processes, progress=False)
        assert attach_feature_cache(model, dataset, config, processes.device, SKELETON,
                                    str(tmp_path), "val")
        refuse_decoding(dataset)
        sample = dataset[3]
        assert sample["images"].numel() == 0
        assert [tuple(m.shape) for m in sample["features"]] == [
            (2, 8, 64, 48), (2, 16, 32, 24), (2, 32, 16, 12), (2, 64, 8, 6)]
        cached, cached_targets = engine.predict(model, dataset, config, processes,
                                                progress=False)
        assert torch.equal(cached, plain) and torch.equal(cached_targets, targets)
        # without the flip test too: the unmirrored maps alone
        no_flip = make_config(synthetic_h36m, **{"train.feature_cache": mode,
                                                 "val.flip_test": False})
        fresh, _ = val_set_and_model(no_flip)
        expected, _ = engine.predict(model, fresh, no_flip, processes, progress=False)
        got, _ = engine.predict(model, dataset, no_flip, processes, progress=False)
        assert torch.equal(got, expected)
        assert not torch.equal(got, plain)  # the flip test did change the numbers
    folders = os.listdir(os.path.join(str(tmp_path), "feature_cache"))
    assert len(folders) == 1 and folders[0].startswith("val_"), folders


def test_disk_cache_is_reused_for_the_same_backbone_and_made_anew_for_another(
        synthetic_h36m, tmp_path):
    processes = single_process("cpu")
    config = make_config(synthetic_h36m, **{"train.feature_cache": "disk"})
    cache_root = os.path.join(str(tmp_path), "feature_cache")
    dataset, model = val_set_and_model(config, seed=0)
    attach_feature_cache(model, dataset, config, processes.device, SKELETON, str(tmp_path), "val")
    first = dataset.feature_cache.frame(5)
    (folder,) = os.listdir(cache_root)
    # Read back, not recomputed: the same maps with every frame refused.
    again, model_again = val_set_and_model(config, seed=0)
    refuse_decoding(again)
    attach_feature_cache(model_again, again, config, processes.device, SKELETON, str(tmp_path),
                         "val")
    assert all(torch.equal(a, b) for a, b in zip(again.feature_cache.frame(5), first))
    assert os.listdir(cache_root) == [folder]
    # The maps of the first level recomputed here, independently of the cache: frame, mirror.
    batch = default_collate([make_split(config)[5]])
    image = prepare_batch(batch, "hrnet_tiny", processes.device, skeleton=SKELETON)[0]
    with torch.no_grad():
        level0 = model.backbone(image.permute(0, 3, 1, 2).contiguous())[0][0]
        mirror0 = model.backbone(image.flip(2).permute(0, 3, 1, 2).contiguous())[0][0]
    np.testing.assert_allclose(first[0][0].numpy(), level0.numpy(), atol=1e-6)
    np.testing.assert_allclose(first[0][1].numpy(), mirror0.numpy(), atol=1e-6)
    # Another backbone (another seed's random initialisation): another folder.
    other, other_model = val_set_and_model(config, seed=1)
    attach_feature_cache(other_model, other, config, processes.device, SKELETON, str(tmp_path),
                         "val")
    assert len(os.listdir(cache_root)) == 2
    assert not torch.equal(other.feature_cache.frame(5)[0], first[0])


def make_split(config):
    return engine.build_split(benchmarks.get("human36m"), config, "val")


def test_training_with_the_cache_follows_the_uncached_run(synthetic_h36m, tmp_path):
    histories, weights = {}, {}
    for mode in ("none", "memory"):
        config = make_config(synthetic_h36m, **{"train.feature_cache": mode,
                                                "train.max_steps_per_epoch": 3,
                                                "train.n_epochs": 2})
        folder = engine.fit(config, single_process("cpu"), str(tmp_path / mode),
                            task_of(config), name="run")
        last = torch.load(os.path.join(folder, "checkpoints", "last.bin"), weights_only=True)
        histories[mode], weights[mode] = last["history"], last["model"]
    assert [h["epoch"] for h in histories["memory"]] == [0, 1]
    for plain, cached in zip(histories["none"], histories["memory"]):
        assert cached["loss"] == pytest.approx(plain["loss"], rel=1e-5)
        assert cached["p1"] == pytest.approx(plain["p1"], abs=1e-3)
    for name, tensor in weights["none"].items():
        if tensor.is_floating_point():
            np.testing.assert_allclose(weights["memory"][name].numpy(), tensor.numpy(),
                                       atol=1e-5, err_msg=name)


@pytest.mark.parametrize("override, reason", [
    ({"model.backbone.bn_mode": "train"}, "bn_mode is 'train'"),
    ({"model.image_features": False}, "image_features is false"),
    ({"model.backbone.frozen": False}, "frozen is false"),
    ({"task": "detector"}, "task 'detector' trains its backbone"),
])
def test_a_cache_that_would_change_the_numbers_is_refused(synthetic_h36m, override, reason):
    config = make_config(synthetic_h36m, **dict(override, **{"train.feature_cache": "memory"}))
    with pytest.raises(FeatureCacheError, match=reason):
        check_config(config)
    check_config(make_config(synthetic_h36m, **override))  # without the cache: accepted


def test_a_stop_while_the_maps_are_computed_leaves_no_partial_cache(synthetic_h36m, tmp_path):
    config = make_config(synthetic_h36m, **{"train.feature_cache": "disk"})
    dataset, model = val_set_and_model(config)
    asked = []

    def stop():
        asked.append(1)
        return len(asked) == 2  # after the second batch

    assert not attach_feature_cache(model, dataset, config, torch.device("cpu"), SKELETON,
                                    str(tmp_path), "val", stop)
    assert len(asked) == 2
    assert dataset.feature_cache is None and dataset.with_images
    assert os.listdir(os.path.join(str(tmp_path), "feature_cache")) == []


def test_train_py_stopped_by_sigterm_while_the_maps_are_computed(synthetic_h36m, tmp_path):
    """A scheduler's SIGTERM to the whole process group (DataLoader workers included) during the
    cache's computation: one line saying so and how to resume, exit status 75, no traceback."""
    import signal
    import subprocess
    import sys
    import threading
    import time
    command = [sys.executable, "train.py", "--config", CONFIG, "--logdir", str(tmp_path),
               "--device", "cpu", "--opts"] + options(synthetic_h36m, **{
                   "train.feature_cache": "memory", "dataset.num_workers": 2,
                   "dataset.train_frame_stride": 1, "val.batch_size": 2})
    process = subprocess.Popen(command, cwd=REPO_ROOT, stderr=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, start_new_session=True,
                               env=dict(os.environ, OMP_NUM_THREADS="1"))
    chunks = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(
        lambda: process.stderr.read1(4096), b"")))
    reader.start()
    deadline = time.time() + 120
    while b"backbone maps (train" not in b"".join(chunks) and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGTERM)
    assert process.wait(timeout=60) == 75
    reader.join(timeout=10)
    err = b"".join(chunks).decode()
    assert "while the backbone's maps of the train split were computed" in err, err[-2000:]
    assert "SIGTERM" in err and "resume with:" in err and "Traceback" not in err


def test_a_damaged_disk_cache_or_a_file_as_its_folder_is_one_clear_error(synthetic_h36m,
                                                                          tmp_path):
    config = make_config(synthetic_h36m, **{"train.feature_cache": "disk"})
    dataset, model = val_set_and_model(config)
    device = torch.device("cpu")
    attach_feature_cache(model, dataset, config, device, SKELETON, str(tmp_path), "val")
    cache_root = os.path.join(str(tmp_path), "feature_cache")
    (folder,) = os.listdir(cache_root)
    level = os.path.join(cache_root, folder, "level2.npy")
    with open(level, "r+b") as f:
        f.truncate(100)  # a cut file: its header promises more
    again, _ = val_set_and_model(config)
    with pytest.raises(FeatureCacheError, match="is damaged .*delete that folder"):
        attach_feature_cache(model, again, config, device, SKELETON, str(tmp_path), "val")
    not_a_folder = make_config(synthetic_h36m, **{
        "train.feature_cache": "disk", "train.feature_cache_dir": level})
    with pytest.raises(FeatureCacheError, match="cannot be made .*feature_cache_dir"):
        attach_feature_cache(model, again, not_a_folder, device, SKELETON, str(tmp_path), "val")
