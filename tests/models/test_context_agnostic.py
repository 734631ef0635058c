"""model.image_features false: the context-agnostic counterpart (the same transformer on the 2D
joints alone). No backbone is built, no frame is decoded, and train.py trains and evaluates it."""
import json
import os

import pytest
import torch

import train as train_cli
from conftest import REPO_ROOT
from mvn.config import load_config
from mvn.datasets.labelled_crops import LabelledCropDataset
from mvn.models import build_model

CONFIG = os.path.join(REPO_ROOT, "experiments", "synthetic", "tiny.yaml")
AGNOSTIC = ["model.image_features=false"]


def test_default_model_has_image_features():
    config = load_config(CONFIG)
    assert config.model.image_features is True
    model = build_model(config)
    assert model.backbone is not None and len(model.volume_net.feat_embed) == 4
    assert len(model.volume_net.context_blocks) == config.model.depth


def test_context_agnostic_model_has_no_backbone_and_reads_no_image():
    torch.manual_seed(0)
    model = build_model(load_config(CONFIG, AGNOSTIC)).eval()
    assert model.backbone is None
    assert not any(k.startswith("backbone.") for k in model.state_dict())
    net = model.volume_net
    # one token per joint: the coordinate embedding only, no feature levels, no context blocks
    assert len(net.feat_embed) == 0 and len(net.context_blocks) == 0
    assert tuple(net.Spatial_pos_embed.shape) == (1, 1, 17, 32)
    assert net.joint_blocks[0].norm1.normalized_shape == (32,)
    keypoints_2d = torch.randn(3, 17, 2)
    keypoints_2d_crop = torch.rand(3, 17, 2) * 150
    with torch.no_grad():
        output = model(None, keypoints_2d, keypoints_2d_crop)  # images are never touched
        # the crop coordinates only place the (absent) feature sampling: no effect either
        other = model(None, keypoints_2d, torch.zeros(3, 17, 2))
    assert output.shape == (3, 1, 17, 3)
    assert torch.equal(output, other)
    # and the output is the transformer's on the coordinate tokens, recomputed here
    with torch.no_grad():
        x = net.coord_embed(keypoints_2d)[:, None] + net.Spatial_pos_embed  # (3, 1, 17, D)
        x = x.permute(0, 2, 1, 3).reshape(3 * 17, 1, 32)
        for block in net.res_blocks:
            x = block(x)
        x = x.reshape(3, 17, 32)
        for block in net.joint_blocks:
            x = block(x)
        expected = net.head(x).view(3, 1, 17, 3)
    torch.testing.assert_close(output, expected, rtol=0, atol=0)


def test_dataset_without_images_decodes_no_frame():
    class Labels:
        keypoints_2d = torch.zeros(2, 17, 2).numpy()
        keypoints_2d_crop = torch.zeros(2, 17, 2).numpy()
        keypoints_3d = torch.zeros(2, 17, 3).numpy()

        def __len__(self):
            return 2

    class NoFrames(LabelledCropDataset):
        labels = Labels()

        def load_crop(self, index):
            raise AssertionError("a frame was decoded")

    dataset = NoFrames()
    dataset.with_images = False
    sample = dataset[1]
    assert sample["images"].shape == (0, 192, 3) and sample["images"].dtype == torch.uint8
    with pytest.raises(AssertionError):
        NoFrames()[0]  # the default decodes


def options(root):
    values = {
        "dataset.root": os.path.join(root, "images"),
        "dataset.train_labels_path": os.path.join(root, "h36m_train.pkl"),
        "dataset.val_labels_path": os.path.join(root, "h36m_validation.pkl"),
        "dataset.num_workers": 0,
        "dataset.val_frame_stride": 9,
        "train.batch_size": 8,
        "train.max_steps_per_epoch": 3,
        "train.n_epochs": 1,
        "train.vis_every_epoch": False,
        "val.batch_size": 4,
        "model.image_features": False,
    }
    return ["%s=%s" % item for item in values.items()]


@pytest.mark.slow  # train.py end to end, as tests/test_train.py
def test_train_py_trains_and_evaluates_without_image_features(synthetic_h36m, tmp_path,
                                                              monkeypatch):
    from mvn.human36m.dataset import Human36MDataset

    def no_frames(self, index):
        raise AssertionError("a frame was decoded while training without image features")

    with monkeypatch.context() as patch:
        patch.setattr(Human36MDataset, "load_crop", no_frames)
        code = train_cli.main(["--config", CONFIG, "--logdir", str(tmp_path / "train"),
                               "--device", "cpu", "--opts"] + options(synthetic_h36m))
    assert code == 0
    (folder,) = os.listdir(tmp_path / "train")
    folder = os.path.join(tmp_path / "train", folder)
    best = torch.load(os.path.join(folder, "checkpoints", "best_epoch.bin"), weights_only=True)
    assert not any(k.startswith("module.backbone.") for k in best["model"])
    with open(os.path.join(folder, "best_evaluation.json")) as f:
        trained = json.load(f)
    assert trained["average"]["frames"] == 11 and trained["average"]["p1"] > 0
    # --eval of that checkpoint gives the same table (its best/worst picture draws the crops)
    code = train_cli.main(["--config", CONFIG, "--logdir", str(tmp_path / "eval"), "--device",
                           "cpu", "--eval", "--checkpoint",
                           os.path.join(folder, "checkpoints", "best_epoch.bin"), "--opts"]
                          + options(synthetic_h36m))
    assert code == 0
    (evaluation,) = os.listdir(tmp_path / "eval")
    with open(os.path.join(tmp_path / "eval", evaluation, "evaluation.json")) as f:
        assert json.load(f) == trained
