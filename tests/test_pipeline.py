"""mvn/pipeline.py (demo.py's Python API) with an injected person detector that returns known
boxes and COCO joints, on a synthetic frame and a randomly initialised tiny model: crops, 2D
inputs and 3D outputs against values computed independently here; the backbone shared by the
COCO head and CA-PF gives exactly the unshared prediction; demo.py end to end without boxes."""
import cv2
import numpy as np
import pytest
import torch

from mvn import coco, keypoint_formats
from mvn.batch import predict_pose, prepare_images
from mvn.config import load_config
from mvn.geometry import affine_transform_points, crop_image, get_affine_transform, \
    normalize_screen_coordinates
from mvn.human36m.facts import SKELETON
from mvn.models import build_model
from mvn.person_detector import Detections
from mvn.pipeline import PipelineError, PosePipeline

TINY_OVERRIDES = ["model.backbone.type=hrnet_tiny", "model.embed_dim_ratio=32"]
BOXES = np.array([[100.0, 40.0, 220.0, 330.0], [300.0, 80.0, 400.0, 300.0]])


class KnownPeople:
    """A person detector that 'finds' BOXES, with COCO joints spread inside them."""

    def __init__(self):
        rng = np.random.default_rng(0)
        self.keypoints = BOXES[:, None, :2] + rng.uniform(0, 1, (2, 17, 2)) * (
            BOXES[:, None, 2:] - BOXES[:, None, :2])                     # (2, 17, 2) frame px
        self.keypoint_scores = rng.uniform(0.3, 1, (2, 17))
        self.calls = 0

    def __call__(self, frames):
        self.calls += 1
        return [Detections(BOXES.copy(), np.array([0.99, 0.9]), self.keypoints,
                           self.keypoint_scores) for _ in frames]


@pytest.fixture(scope="module")
def model_and_config():
    torch.manual_seed(0)
    config = load_config(None, TINY_OVERRIDES)
    return build_model(config).eval(), config


def frame():
    image = np.full((400, 500, 3), (90, 110, 80), np.uint8)
    cv2.rectangle(image, (130, 60), (190, 320), (40, 60, 200), -1)
    cv2.circle(image, (350, 120), 30, (180, 200, 230), -1)
    return image


def expected_3d(model, image, boxes, joints_px):
    """CA-PF's predictions (P, 17, 3) for people of boxes (P, 4) and joints (P, 17, 2) in one
    batch, computed from the definitions (HRNet's box -> crop, the joints screen-normalised and
    in crop pixels, predict_pose with flip test)."""
    crops, joints_2d, joints_crop = [], [], []
    for box, joints in zip(boxes, joints_px):
        center, scale = coco.box_to_center_scale(box)
        crops.append(crop_image(image, center, scale))
        joints_2d.append(normalize_screen_coordinates(joints, 500, 400))
        joints_crop.append(affine_transform_points(joints, get_affine_transform(center, scale)))
    inputs = (prepare_images(torch.from_numpy(np.stack(crops)), "hrnet_tiny"),
              torch.tensor(np.stack(joints_2d), dtype=torch.float32),
              torch.tensor(np.stack(joints_crop), dtype=torch.float32))
    with torch.no_grad():
        return predict_pose(model, *inputs, skeleton=SKELETON).numpy()


def test_people_found_by_the_detector_with_its_own_joints(model_and_config):
    model, config = model_and_config
    detector = KnownPeople()
    pipeline = PosePipeline(model, config, torch.device("cpu"), person_detector=detector,
                            joints_from="detector")
    image = frame()
    people = pipeline(image)
    assert detector.calls == 1 and len(people) == 2
    joints = keypoint_formats.to_h36m(detector.keypoints, "coco")  # (2, 17, 2)
    expected = expected_3d(model, image, BOXES, joints)
    for p, person in enumerate(people):
        np.testing.assert_array_equal(person.box_px, BOXES[p])
        np.testing.assert_allclose(person.keypoints_2d_px, joints[p])
        np.testing.assert_allclose(person.keypoints_2d_score, keypoint_formats.scores_to_h36m(
            detector.keypoint_scores[p], "coco"))
        np.testing.assert_array_equal(person.keypoints_3d_m, expected[p])
    assert [person.box_score for person in people] == pytest.approx([0.99, 0.9])


def test_the_shared_backbone_runs_once_and_gives_the_unshared_prediction(model_and_config,
                                                                         tmp_path):
    """COCO head on the model's own backbone: 2 backbone passes per batch (the crops and their
    mirror) instead of 3, and the 3D joints of predict_pose on the same 2D joints, exactly."""
    model, config = model_and_config
    torch.manual_seed(1)
    head_file = str(tmp_path / "head.pth")
    torch.save({"final_layer.weight": torch.randn(17, model.backbone.feature_channels[0], 1, 1),
                "final_layer.bias": torch.zeros(17)}, head_file)
    detector = coco.load_coco_detector(model.backbone, head_file)
    assert detector.backbone is model.backbone
    pipeline = PosePipeline(model, config, torch.device("cpu"), coco_detector=detector)
    calls = []
    hook = model.backbone.register_forward_hook(lambda *_: calls.append(1))
    try:
        image = frame()
        people = pipeline(image, boxes_px=BOXES)
    finally:
        hook.remove()
    assert len(calls) == 2
    expected = expected_3d(model, image, BOXES, [person.keypoints_2d_px for person in people])
    for p, person in enumerate(people):
        np.testing.assert_array_equal(person.keypoints_3d_m, expected[p])
    # the head's joints are the heatmaps' of those crops
    center, scale = coco.box_to_center_scale(BOXES[0])
    images = prepare_images(torch.from_numpy(crop_image(image, center, scale))[None],
                            "hrnet_tiny")
    with torch.no_grad():
        heatmaps = detector.head(model.backbone_features(images)[0])
    coords, _ = coco.decode_heatmaps(heatmaps)
    affine = get_affine_transform(center, scale)
    frame_px = affine_transform_points(coco.heatmap_to_crop_px(coords)[0].numpy(),
                                       cv2.invertAffineTransform(affine))
    np.testing.assert_allclose(people[0].keypoints_2d_px, coco.coco_to_h36m(frame_px),
                               atol=1e-4)


def test_given_joints_and_missing_sources_are_clear(model_and_config):
    model, config = model_and_config
    pipeline = PosePipeline(model, config, torch.device("cpu"))
    image = frame()
    joints = np.random.default_rng(2).uniform([120, 50], [200, 320], (1, 17, 2))
    person, = pipeline(image, keypoints_px=joints)
    np.testing.assert_array_equal(person.box_px, coco.box_from_keypoints(joints)[0])
    assert person.keypoints_2d_score is None and np.isnan(person.box_score)
    with pytest.raises(PipelineError, match="no person detector"):
        pipeline(image)
    with pytest.raises(PipelineError, match="no COCO heatmap head"):
        pipeline(image, boxes_px=BOXES)
    with pytest.raises(PipelineError, match="2 boxes but 1 poses"):
        pipeline(image, boxes_px=BOXES, keypoints_px=joints)


def test_demo_without_boxes_uses_the_person_detector(tmp_path, monkeypatch):
    """demo.py with no --boxes / --keypoints: the person detector's boxes, scores and joints go
    to poses.npz (the injected detector stands for torchvision's)."""
    from test_demo import load_demo
    demo = load_demo()
    monkeypatch.setattr(demo, "load_person_detector", lambda *args, **kwargs: KnownPeople())
    torch.manual_seed(0)
    model = build_model(load_config(None, TINY_OVERRIDES))
    checkpoint = str(tmp_path / "best_epoch.bin")
    torch.save({"model": model.state_dict()}, checkpoint)
    config = tmp_path / "tiny.yaml"
    config.write_text("model:\n  backbone:\n    type: hrnet_tiny\n    pretrained: none\n"
                      "  embed_dim_ratio: 32\n")
    cv2.imwrite(str(tmp_path / "frame.png"), frame())
    assert demo.main(["--config", str(config), "--checkpoint", checkpoint, "--image",
                      str(tmp_path / "frame.png"), "--joints-from", "detector", "--out",
                      str(tmp_path / "out"), "--device", "cpu"]) == 0
    poses = np.load(tmp_path / "out" / "poses.npz")
    np.testing.assert_array_equal(poses["boxes_px"], BOXES)
    np.testing.assert_allclose(poses["box_score"], [0.99, 0.9])
    np.testing.assert_allclose(poses["keypoints_2d_px"],
                               keypoint_formats.to_h36m(KnownPeople().keypoints, "coco"))
    assert poses["track_id"].tolist() == [0, 1]


def test_a_stage_1_head_gives_human36m_joints_also_to_a_model_without_image_features(tmp_path):
    """A stage-1 detector's backbone.pth (task: detector) with head_keypoints='h36m': its decoded
    joints are the 2D joints as they are (no COCO conversion); a model without image features
    (no backbone) takes the file's own backbone for the head."""
    from mvn.detector import HeatmapDetector, backbone_file_state, detect
    from mvn.models import build_backbone
    from mvn.pipeline import load_head
    torch.manual_seed(2)
    stage1 = HeatmapDetector(build_backbone("hrnet_tiny"), 17).eval()
    weights = str(tmp_path / "backbone.pth")
    torch.save(backbone_file_state(stage1), weights)
    config = load_config(None, TINY_OVERRIDES + ["model.image_features=false"])
    model = build_model(config).eval()
    assert model.backbone is None
    pipeline = PosePipeline(model, config, torch.device("cpu"),
                            coco_detector=load_head(model, config, weights),
                            head_keypoints="h36m", flip_test=False)
    image = frame()
    people = pipeline(image, boxes_px=BOXES[:1])
    center, scale = coco.box_to_center_scale(BOXES[0])
    images = prepare_images(torch.from_numpy(crop_image(image, center, scale))[None],
                            "hrnet_tiny")
    with torch.no_grad():
        crop_px = detect(stage1, images)[0].numpy()  # (17, 2) Human3.6M joints, crop pixels
    frame_px = affine_transform_points(crop_px, cv2.invertAffineTransform(
        get_affine_transform(center, scale)))
    np.testing.assert_allclose(people[0].keypoints_2d_px, frame_px, atol=1e-4)
    with pytest.raises(PipelineError, match="head_keypoints"):
        PosePipeline(model, config, torch.device("cpu"), head_keypoints="openpose")
