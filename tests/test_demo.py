"""demo.py: person crops, and the whole command end to end
on small synthetic frames with a randomly initialised tiny model."""
import importlib.util
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from conftest import REPO_ROOT
from mvn import coco, keypoint_formats
from mvn.config import load_config
from mvn.human36m.facts import SKELETON
from mvn.models import build_model

TINY_OVERRIDES = ["model.backbone.type=hrnet_tiny", "model.embed_dim_ratio=32"]


def load_demo():
    spec = importlib.util.spec_from_file_location("demo", os.path.join(REPO_ROOT, "demo.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------------- demo.py

@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    """A config, a randomly initialised tiny checkpoint (best_epoch.bin format) and a COCO head."""
    root = tmp_path_factory.mktemp("demo_model")
    torch.manual_seed(0)
    model = build_model(load_config(None, TINY_OVERRIDES))
    checkpoint = str(root / "best_epoch.bin")
    torch.save({"epoch": 0, "lr": 0.0, "optimizer": {},
                "model": {"module." + k: v for k, v in model.state_dict().items()}}, checkpoint)
    coco_weights = str(root / "coco_head.pth")
    torch.save({"final_layer.weight": torch.randn(17, 8, 1, 1),
                "final_layer.bias": torch.zeros(17)}, coco_weights)
    config = str(root / "tiny.yaml")
    with open(config, "w") as f:
        f.write("model:\n  backbone:\n    type: hrnet_tiny\n    pretrained: none\n"
                "  embed_dim_ratio: 32\n")
    return {"config": config, "checkpoint": checkpoint, "coco": coco_weights}


def draw_figure(width, height, x, y, scale):
    """A frame with a stick figure (head at (x, y), `scale` px per unit) on a plain background."""
    image = np.full((height, width, 3), (90, 110, 80), np.uint8)
    s = scale
    cv2.circle(image, (x, y), int(0.4 * s), (180, 200, 230), -1)
    for a, b in [((0, .4), (0, 2.5)), ((0, .9), (-1, 1.8)), ((0, .9), (1, 1.8)),
                 ((0, 2.5), (-.6, 4.3)), ((0, 2.5), (.6, 4.3))]:
        cv2.line(image, (int(x + a[0] * s), int(y + a[1] * s)),
                 (int(x + b[0] * s), int(y + b[1] * s)), (40, 60, 200), max(2, int(s / 5)))
    return image


def test_demo_cli_on_a_folder_of_frames(tiny_files, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "a.jpg"), draw_figure(1000, 1000, 500, 250, 100))
    cv2.imwrite(str(frames / "b.png"), draw_figure(1000, 1000, 300, 300, 80))
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"a.jpg": [400, 200, 600, 700],                  # one person
                                 "b": [[230, 260, 380, 670], [700, 100, 800, 400]]}))  # two
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "demo.py", "--config", tiny_files["config"],
         "--checkpoint", tiny_files["checkpoint"], "--coco-weights", tiny_files["coco"],
         "--images", str(frames), "--boxes", str(boxes), "--out", str(out), "--device", "cpu",
         "--batch-size", "2"],
        cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("a.png", "b.png"):
        picture = cv2.imread(str(out / name))
        assert picture.shape == (512, 512 + 512, 3)
    poses = np.load(out / "poses.npz")
    np.testing.assert_array_equal(poses["frame_names"], ["a.jpg", "b.png", "b.png"])
    np.testing.assert_array_equal(poses["person_index"], [0, 0, 1])
    assert poses["keypoints_2d_px"].shape == (3, 17, 2)
    assert poses["keypoints_2d_score"].shape == (3, 17)
    assert poses["keypoints_3d_m"].shape == (3, 17, 3)
    assert np.isfinite(poses["keypoints_3d_m"]).all()
    np.testing.assert_array_equal(poses["image_size"], [[1000, 1000]] * 3)
    # the joints lie in (the enlarged) box of their person
    box = poses["boxes_px"][0]
    assert ((poses["keypoints_2d_px"][0] > box[:2] - 200) & (
        poses["keypoints_2d_px"][0] < box[2:] + 200)).all()
    document = json.loads((out / "poses.json").read_text())
    assert document["frame_names"] == ["a.jpg", "b.png", "b.png"]
    np.testing.assert_allclose(document["keypoints_3d_m"], poses["keypoints_3d_m"])
    assert len(document["joint_names"]) == 17


def test_demo_video_with_given_keypoints(tiny_files, tmp_path):
    demo = load_demo()
    video = str(tmp_path / "clip.mp4")
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
    for i in range(3):
        writer.write(draw_figure(320, 240, 150 + 5 * i, 40, 30))
    writer.release()
    rng = np.random.default_rng(0)
    keypoints = [(rng.uniform([100, 30], [220, 220], (17, 2))).tolist() for _ in range(3)]
    keypoints_file = tmp_path / "keypoints.json"
    keypoints_file.write_text(json.dumps(keypoints))  # a list: one pose per frame, in order
    out = tmp_path / "out"
    assert demo.main(["--config", tiny_files["config"], "--checkpoint", tiny_files["checkpoint"],
                      "--video", video, "--keypoints", str(keypoints_file), "--out", str(out),
                      "--device", "cpu", "--no-flip-test"]) == 0
    capture = cv2.VideoCapture(str(out / "clip.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    ok, frame = capture.read()
    assert ok and frame.shape == (512, 2 * round(320 * 512 / 240 / 2) + 512, 3)
    poses = np.load(out / "poses.npz")
    np.testing.assert_array_equal(poses["frame_names"],
                                  ["clip_000000", "clip_000001", "clip_000002"])
    np.testing.assert_allclose(poses["keypoints_2d_px"], keypoints)  # used as given
    np.testing.assert_allclose(poses["boxes_px"], coco.box_from_keypoints(np.array(keypoints)))
    assert poses["keypoints_3d_m"].shape == (3, 17, 3) and "keypoints_2d_score" not in poses


def test_demo_keypoints_of_another_format_are_converted(tiny_files, tmp_path, capsys):
    """OpenPose BODY_25 joints with scores, two persons in one frame -> Human3.6M's 17 joints
    (mvn/keypoint_formats.py, tested against hand-made joints); a file of the wrong format is
    one line naming it and the expected shape."""
    demo = load_demo()
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), draw_figure(320, 240, 100, 40, 30))
    rng = np.random.default_rng(3)
    body25 = np.concatenate([rng.uniform([40, 20], [280, 220], (2, 25, 2)),
                             rng.uniform(0.2, 1.0, (2, 25, 1))], axis=-1)  # (persons, 25, x y s)
    (tmp_path / "body25.json").write_text(json.dumps({"frame": body25.tolist()}))
    common = ["--config", tiny_files["config"], "--checkpoint", tiny_files["checkpoint"],
              "--image", str(image), "--device", "cpu", "--no-flip-test"]
    assert demo.main(common + ["--keypoints", str(tmp_path / "body25.json"), "--keypoint-format",
                               "openpose25", "--out", str(tmp_path / "out")]) == 0
    poses = np.load(tmp_path / "out" / "poses.npz")
    pelvis = (body25[:, 9, :2] + body25[:, 12, :2]) / 2  # RHip 9, LHip 12
    np.testing.assert_allclose(poses["keypoints_2d_px"][:, 0], pelvis)
    np.testing.assert_allclose(poses["keypoints_2d_px"][:, 3], body25[:, 11, :2])  # RAnkle
    np.testing.assert_allclose(poses["keypoints_2d_px"],
                               keypoint_formats.to_h36m(body25[..., :2], "openpose25"))
    assert poses["track_id"].tolist() == [0, 1]
    capsys.readouterr()
    assert demo.main(common + ["--keypoints", str(tmp_path / "body25.json"), "--keypoint-format",
                               "coco", "--out", str(tmp_path / "out2")]) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines()
           if not line.startswith("frames:")]  # the progress bar, then the error
    assert len(err) == 1 and "body25.json" in err[0] and "coco keypoints" in err[0] \
        and "have shape (2, 25, 2); expected (17, 2)" in err[0], err


def test_demo_video_with_two_people_keeps_their_track_ids(tiny_files, tmp_path):
    """Two figures walking towards each other; the keypoints file lists them in a different order
    in every other frame; each keeps one track id in poses.npz and poses.json."""
    demo = load_demo()
    video = str(tmp_path / "two.mp4")
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"mp4v"), 10, (480, 240))
    rng = np.random.default_rng(4)
    shape_a, shape_b = rng.uniform([-25, 0], [25, 150], (2, 17, 2))
    keypoints, who = [], []
    for i in range(6):
        xa, xb = 80 + 40 * i, 400 - 40 * i
        frame = draw_figure(480, 240, xa, 40, 30)
        frame = np.minimum(frame, draw_figure(480, 240, xb, 40, 30))
        writer.write(frame)
        people = [("a", shape_a + [xa, 40]), ("b", shape_b + [xb, 40])][::(-1) ** i]
        keypoints.append([joints.tolist() for _, joints in people])
        who.extend(name for name, _ in people)
    writer.release()
    (tmp_path / "kp.json").write_text(json.dumps(keypoints))
    out = tmp_path / "out"
    assert demo.main(["--config", tiny_files["config"], "--checkpoint", tiny_files["checkpoint"],
                      "--video", video, "--keypoints", str(tmp_path / "kp.json"),
                      "--out", str(out), "--device", "cpu", "--no-flip-test"]) == 0
    poses = np.load(out / "poses.npz")
    ids = {name: set() for name in "ab"}
    for name, track_id in zip(who, poses["track_id"]):
        ids[name].add(int(track_id))
    assert ids == {"a": {0}, "b": {1}}
    assert json.loads((out / "poses.json").read_text())["track_id"] == poses["track_id"].tolist()
    assert os.path.getsize(out / "two.mp4") > 0


def test_demo_missing_checkpoint_is_one_clear_line(tiny_files, tmp_path):
    image = tmp_path / "frame.jpg"
    cv2.imwrite(str(image), draw_figure(200, 200, 100, 40, 30))
    missing = str(tmp_path / "nowhere" / "best_epoch.bin")
    result = subprocess.run(
        [sys.executable, "demo.py", "--config", tiny_files["config"], "--checkpoint", missing,
         "--image", str(image), "--boxes", str(tmp_path / "boxes.json"),
         "--out", str(tmp_path / "out")],
        cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and missing in lines[0] and "train.py" in lines[0]


def test_demo_refuses_a_damaged_checkpoint_with_one_line(tiny_files, tmp_path, capsys):
    demo = load_demo()
    image = tmp_path / "frame.jpg"
    cv2.imwrite(str(image), draw_figure(200, 200, 100, 40, 30))
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"frame.jpg": [50, 20, 100, 160]}))
    with open(tiny_files["checkpoint"], "rb") as f:
        data = f.read()
    for name, damaged in (("empty.bin", b""), ("cut.bin", data[:len(data) // 2])):
        path = tmp_path / name
        path.write_bytes(damaged)
        assert demo.main(["--config", tiny_files["config"], "--checkpoint", str(path),
                          "--image", str(image), "--boxes", str(boxes), "--coco-weights",
                          tiny_files["coco"], "--out", str(tmp_path / "out"),
                          "--device", "cpu"]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert "%s is damaged: it is " % path in line
    assert not os.path.exists(tmp_path / "out")


def test_demo_input_errors_are_clear(tiny_files, tmp_path, capsys):
    demo = load_demo()
    image = tmp_path / "frame.jpg"
    cv2.imwrite(str(image), draw_figure(200, 200, 100, 40, 30))
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"other.jpg": [0, 0, 10, 10]}))
    common = ["--config", tiny_files["config"], "--checkpoint", tiny_files["checkpoint"],
              "--image", str(image), "--out", str(tmp_path / "out"), "--device", "cpu"]
    cases = [
        ([], "--coco-weights"),                                            # tiny: no default
        (["--boxes", str(boxes)], "--coco-weights"),
        (["--boxes", str(boxes), "--joints-from", "detector"], "--joints-from detector takes"),
        (["--boxes", str(boxes), "--coco-weights", str(tmp_path / "x.pth")],
         "x.pth not found"),
        (["--boxes", str(boxes), "--coco-weights", tiny_files["coco"]],
         "no boxes for frame 0 ('frame.jpg')"),
    ]
    for extra, message in cases:
        assert demo.main(common + extra) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (extra, err)
    assert not os.path.exists(tmp_path / "out")


def test_demo_estimate_maps_crop_detections_to_the_frame_and_back():
    """Crop-pixel COCO detections -> frame pixels (inverse crop affine) -> Human3.6M; the model
    gets those joints screen-normalised and, through the crop affine, in crop pixels."""
    from mvn.geometry import get_affine_transform, normalize_screen_coordinates
    from mvn.pipeline import PosePipeline
    rng = np.random.default_rng(1)
    coco_crop = torch.tensor(rng.uniform([0, 0], [191, 255], (2, 17, 2)), dtype=torch.float32)

    class Detector(torch.nn.Module):
        def detect(self, images):
            return coco_crop, torch.ones(len(images), 17)

    class Model(torch.nn.Module):
        def forward(self, images, keypoints_2d, keypoints_2d_crop):
            self.inputs = (keypoints_2d, keypoints_2d_crop)
            return torch.ones(len(images), 1, 17, 3)

    image = draw_figure(640, 480, 300, 100, 50)
    boxes = np.array([[250, 60, 350, 330], [50, 40, 200, 400]])
    model = Model()
    pipeline = PosePipeline(model, load_config(None, TINY_OVERRIDES), torch.device("cpu"),
                            coco_detector=Detector(), flip_test=False, box_padding=1.25)
    persons = pipeline.people(image, boxes)
    assert [p["crop"].shape for p in persons] == [(256, 192, 3)] * 2
    pipeline.estimate(persons)
    for p, person in enumerate(persons):
        center, scale = coco.box_to_center_scale(boxes[p])
        M = get_affine_transform(center, scale)
        np.testing.assert_allclose(person["affine"], M)
        joints_px = person["keypoints_2d_px"]
        # back into the crop: the converted detections
        back = joints_px @ M[:, :2].T + M[:, 2]
        np.testing.assert_allclose(back, coco.coco_to_h36m(coco_crop[p].double().numpy()),
                                   atol=1e-3)
        np.testing.assert_allclose(model.inputs[1][p].numpy(), back, atol=1e-3)
        np.testing.assert_allclose(model.inputs[0][p].numpy(),
                                   normalize_screen_coordinates(joints_px, 640, 480), atol=1e-5)
        np.testing.assert_array_equal(person["keypoints_3d_m"], 1)  # the stub's output, as is


def test_demo_with_a_label_box_reproduces_the_evaluation_inputs(tiny_files, tmp_path):
    """With a Human3.6M label box (square) and --box-padding 1, the demo's crop and 2D inputs are
    those of the label files (center_scale_from_box, crop_image, normalize_screen_coordinates),
    so its 3D output is the prediction evaluation scores on that sample (predict_pose)."""
    from mvn.batch import predict_pose, prepare_images
    from mvn.geometry import affine_transform_points, center_scale_from_box, crop_image, \
        get_affine_transform, normalize_screen_coordinates
    from mvn.models.weights import load_model_weights
    demo = load_demo()
    frame = draw_figure(500, 400, 260, 80, 50)
    cv2.imwrite(str(tmp_path / "frame.png"), frame)
    box = np.array([150.0, 60.0, 370.0, 280.0])
    keypoints = np.random.default_rng(2).uniform([180, 70], [340, 300], (17, 2))
    (tmp_path / "boxes.json").write_text(json.dumps({"frame.png": box.tolist()}))
    (tmp_path / "kp.json").write_text(json.dumps({"frame.png": keypoints.tolist()}))
    assert demo.main(["--config", tiny_files["config"], "--checkpoint", tiny_files["checkpoint"],
                      "--image", str(tmp_path / "frame.png"),
                      "--boxes", str(tmp_path / "boxes.json"),
                      "--keypoints", str(tmp_path / "kp.json"), "--box-padding", "1.0",
                      "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    center, scale = center_scale_from_box(box)
    M = get_affine_transform(center, scale)
    model = build_model(load_config(None, TINY_OVERRIDES)).eval()
    load_model_weights(model, tiny_files["checkpoint"])
    images = prepare_images(torch.from_numpy(crop_image(frame, center, scale))[None], "hrnet_tiny")
    keypoints_2d = torch.tensor(normalize_screen_coordinates(keypoints, 500, 400)[None],
                                dtype=torch.float32)
    keypoints_crop = torch.tensor(affine_transform_points(keypoints, M)[None], dtype=torch.float32)
    with torch.no_grad():
        expected = predict_pose(model, images, keypoints_2d, keypoints_crop,
                                skeleton=SKELETON)[0]
    poses = np.load(tmp_path / "out" / "poses.npz")
    assert expected.abs().max() > 0.05  # a prediction, not zeros
    np.testing.assert_allclose(poses["keypoints_3d_m"][0], expected.numpy(), rtol=0, atol=1e-5)


def test_a_damaged_frame_is_skipped_with_a_warning_or_stops_the_run_keeping_the_poses(
        tiny_files, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for name, x in (("a.jpg", 500), ("b.jpg", 450), ("c.jpg", 400)):
        cv2.imwrite(str(frames / name), draw_figure(1000, 1000, x, 250, 100))
    data = (frames / "b.jpg").read_bytes()
    (frames / "b.jpg").write_bytes(data[:len(data) // 2])        # truncated
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({n: [300, 200, 600, 700] for n in ("a.jpg", "b.jpg", "c.jpg")}))
    command = [sys.executable, "demo.py", "--config", tiny_files["config"], "--checkpoint",
               tiny_files["checkpoint"], "--coco-weights", tiny_files["coco"], "--images",
               str(frames), "--boxes", str(boxes), "--device", "cpu", "--batch-size", "1"]
    result = subprocess.run(command + ["--out", str(tmp_path / "skip")], cwd=REPO_ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "skipping frame 'b.jpg'" in result.stderr and "truncated JPEG" in result.stderr
    assert "1 unreadable frame(s) skipped: b.jpg" in result.stdout
    poses = np.load(tmp_path / "skip" / "poses.npz")
    np.testing.assert_array_equal(poses["frame_names"], ["a.jpg", "c.jpg"])
    # stopping at it: one line, exit 2, and the frame finished before it keeps its poses
    result = subprocess.run(command + ["--out", str(tmp_path / "stop"), "--stop-on-bad-frame"],
                            cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    last = result.stderr.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("demo.py: error: image ") and "b.jpg is damaged" in last
    poses = np.load(tmp_path / "stop" / "poses.npz")
    np.testing.assert_array_equal(poses["frame_names"], ["a.jpg"])


def test_the_quick_start_model_runs_on_frames_and_joints_taken_from_a_label_file(
        synthetic_h36m, tiny_files, tmp_path):
    """docs/demo_inputs_from_labels.py (docs/demo.md's example for the quick start's model):
    frames and their label joints in pixels, which the demo takes as they are."""
    spec = importlib.util.spec_from_file_location(
        "demo_inputs", os.path.join(REPO_ROOT, "docs", "demo_inputs_from_labels.py"))
    demo_inputs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo_inputs)
    from mvn.geometry import normalize_screen_coordinates
    from mvn.human36m.labels import load_label_columns
    labels = os.path.join(synthetic_h36m, "h36m_validation.pkl")
    names = demo_inputs.write_inputs(labels, os.path.join(synthetic_h36m, "images"), 3,
                                     str(tmp_path / "inputs"))
    assert names == ["000.jpg", "001.jpg", "002.jpg"]
    joints = json.loads((tmp_path / "inputs" / "keypoints.json").read_text())
    columns = load_label_columns(labels)
    last = len(columns) - 1  # the three records: first, middle, last
    frame = cv2.imread(str(tmp_path / "inputs" / "frames" / "002.jpg"))
    height, width = frame.shape[:2]
    np.testing.assert_allclose(normalize_screen_coordinates(np.array(joints["002.jpg"]), width,
                                                            height),
                               columns.keypoints_2d[last], atol=1e-4)
    demo = load_demo()
    assert demo.main(["--config", tiny_files["config"], "--checkpoint", tiny_files["checkpoint"],
                      "--images", str(tmp_path / "inputs" / "frames"), "--keypoints",
                      str(tmp_path / "inputs" / "keypoints.json"), "--out", str(tmp_path / "out"),
                      "--device", "cpu", "--no-flip-test"]) == 0
    poses = np.load(tmp_path / "out" / "poses.npz")
    np.testing.assert_allclose(poses["keypoints_2d_px"], [joints[n] for n in names])
