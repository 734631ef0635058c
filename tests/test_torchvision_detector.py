"""The person detector with torchvision's own networks (random weights, weights=None): built,
saved and loaded back as a weights file, run on frames, and through PosePipeline and demo.py.

Needs torchvision built for the installed torch (`python install.py --person-detector`); the
project's lock leaves it out (only the demo's person detector uses it), so these tests are
skipped where it cannot be imported, as the CUDA tests are without a GPU. Run here in a venv
with torch 2.14.1 + torchvision 0.29.1 (the closing note of the session that added them)."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from conftest import REPO_ROOT
from mvn import person_detector
from mvn.config import load_config
from mvn.models import build_model
from mvn.person_detector import PersonDetector, PersonDetectorError, build_detector_network
from mvn.pipeline import PosePipeline

try:
    person_detector.import_torchvision()
    MISSING = None
except PersonDetectorError as error:
    MISSING = str(error)
pytestmark = [pytest.mark.torchvision,
              pytest.mark.skipif(MISSING is not None, reason="torchvision: %s" % MISSING)]
TINY = ["model.backbone.type=hrnet_tiny", "model.embed_dim_ratio=32"]


def frame(seed):
    return np.random.default_rng(seed).integers(0, 255, (240, 320, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", ["keypointrcnn", "fasterrcnn"])
def test_a_saved_weights_file_loads_back_and_the_detector_runs(name, tmp_path):
    torch.manual_seed(0)
    network = build_detector_network(name)
    path = str(tmp_path / "weights.pth")
    torch.save(network.state_dict(), path)
    loaded = build_detector_network(name, path)
    for key, value in network.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    detector = PersonDetector(loaded, torch.device("cpu"), score_threshold=0.0, max_people=3,
                              min_box_px=0)
    found = detector([frame(0), frame(1)])
    assert len(found) == 2
    for detections in found:
        assert detections.boxes_px.shape[1:] == (4,) and len(detections.boxes_px) <= 3
        assert np.all(np.diff(detections.scores) <= 0)  # highest score first
        if name == "keypointrcnn":
            assert detections.keypoints_px.shape == (len(detections.boxes_px), 17, 2)


def test_keypoint_rcnn_through_the_pipeline_and_demo(tmp_path):
    torch.manual_seed(0)
    network = build_detector_network("keypointrcnn")
    network.roi_heads.score_thresh = 0.0  # random weights: let every proposal through
    detector = PersonDetector(network, torch.device("cpu"), score_threshold=0.0, max_people=2,
                              min_box_px=0)
    config = load_config(None, TINY)
    model = build_model(config)
    people = PosePipeline(model, config, torch.device("cpu"), person_detector=detector,
                          joints_from="detector")(frame(2))
    assert len(people) == 2
    for person in people:
        assert person.keypoints_3d_m.shape == (17, 3) and np.isfinite(person.keypoints_3d_m).all()
    weights = str(tmp_path / "keypointrcnn.pth")
    torch.save(network.state_dict(), weights)
    checkpoint = str(tmp_path / "tiny.bin")
    torch.save({"model": model.state_dict()}, checkpoint)
    (tmp_path / "tiny.yaml").write_text("model:\n  backbone:\n    type: hrnet_tiny\n"
                                        "    pretrained: none\n  embed_dim_ratio: 32\n")
    cv2.imwrite(str(tmp_path / "f.png"), frame(3))
    result = subprocess.run(
        [sys.executable, "demo.py", "--config", str(tmp_path / "tiny.yaml"), "--checkpoint",
         checkpoint, "--image", str(tmp_path / "f.png"), "--detector-weights", weights,
         "--joints-from", "detector", "--score-threshold", "0", "--min-box-px", "0",
         "--max-people", "3", "--out", str(tmp_path / "out"), "--device", "cpu"],
        cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    poses = np.load(tmp_path / "out" / "poses.npz")
    assert 1 <= len(poses["boxes_px"]) <= 3 and np.isfinite(poses["box_score"]).all()
    assert os.path.isfile(tmp_path / "out" / "f.png")
