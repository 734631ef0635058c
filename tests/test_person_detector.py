"""mvn/person_detector.py without the network: which people are kept, the one-line messages when
torchvision or its weights cannot be had (this machine has no network, as CI)."""
import os
import sys
import urllib.error

import numpy as np
import pytest
import torch

from mvn import person_detector
from mvn.person_detector import PersonDetectorError, select_people, weights_file


def test_select_people_threshold_height_and_count():
    boxes = np.array([[0, 0, 50, 100], [0, 0, 50, 40], [0, 0, 50, 200], [0, 0, 50, 90],
                      [0, 0, 50, 300]])
    scores = np.array([0.9, 0.99, 0.85, 0.5, 0.95])
    # score >= 0.8 and height >= 48: 0 (0.9), 2 (0.85), 4 (0.95); highest score first
    assert select_people(boxes, scores, 0.8, 10, 48).tolist() == [4, 0, 2]
    assert select_people(boxes, scores, 0.8, 2, 48).tolist() == [4, 0]
    assert select_people(boxes, scores, 0.4, 10, 0).tolist() == [1, 4, 0, 2, 3]
    assert select_people(np.zeros((0, 4)), np.zeros(0), 0.5, 3, 10).tolist() == []


def test_offline_without_the_weights_names_the_file_and_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def no_network(url, path):
        raise urllib.error.URLError("Temporary failure in name resolution")

    with pytest.raises(PersonDetectorError) as error:
        weights_file("keypointrcnn", download=no_network)
    message = str(error.value)
    assert "\n" not in message
    assert "https://download.pytorch.org/models/keypointrcnn_resnet50_fpn_coco-fc266e95.pth" \
        in message
    assert os.path.join(str(tmp_path), "hub", "checkpoints") in message
    assert "--detector-weights" in message and "name resolution" in message
    # a file already in the cache, or given, is used without any download
    cached = tmp_path / "hub" / "checkpoints" / "keypointrcnn_resnet50_fpn_coco-fc266e95.pth"
    cached.write_bytes(b"x")
    assert weights_file("keypointrcnn", download=no_network) == str(cached)
    assert weights_file("fasterrcnn", str(cached), download=no_network) == str(cached)
    with pytest.raises(PersonDetectorError, match="--detector-weights .*missing.pth does not exist"):
        weights_file("fasterrcnn", str(tmp_path / "missing.pth"))


def test_without_torchvision_one_line_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import torchvision -> ImportError
    monkeypatch.setitem(sys.modules, "torchvision.models.detection", None)
    with pytest.raises(PersonDetectorError, match=r"needs torchvision, which is not installed: "
                       r"install the torchvision built for this torch .*--boxes / --keypoints"):
        person_detector.import_torchvision()
    with pytest.raises(PersonDetectorError, match="needs torchvision"):
        person_detector.load_person_detector("keypointrcnn", torch.device("cpu"))


def test_an_unknown_detector_is_refused():
    with pytest.raises(PersonDetectorError, match="unknown person detector 'yolo'"):
        person_detector.build_detector_network("yolo")
