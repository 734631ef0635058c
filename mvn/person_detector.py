"""Finding the people in a frame, for the demo: torchvision's Keypoint R-CNN (boxes and COCO-17
joints; the default) or Faster R-CNN v2 (boxes only), with torchvision's COCO weights.

The weights are torchvision's own files: fetched once by torch.hub into its cache
(`torch.hub.get_dir()/checkpoints/`) on a machine with internet, or given as a file
(`--detector-weights`) on one without; without either, one line names the file to download and
where to put it. torchvision is needed only here (the rest of the project does not import it);
it must be the release built for the installed torch (torch 2.13 -> torchvision 0.28).

A person is kept when its score is at least `score_threshold`, its box at least `min_box_px`
high, and it is among the `max_people` highest scores of its frame.
"""
import os
import urllib.error
from dataclasses import dataclass

import numpy as np
import torch

from mvn.errors import CAPFError
from mvn.models.weights import read_weights_file
from mvn.versions import torchvision_for

# name -> (torchvision builder, weights enum, the standard weights' file)
DETECTORS = {
    "keypointrcnn": ("keypointrcnn_resnet50_fpn", "KeypointRCNN_ResNet50_FPN_Weights",
                     "https://download.pytorch.org/models/keypointrcnn_resnet50_fpn_coco-"
                     "fc266e95.pth"),
    "fasterrcnn": ("fasterrcnn_resnet50_fpn_v2", "FasterRCNN_ResNet50_FPN_V2_Weights",
                   "https://download.pytorch.org/models/fasterrcnn_resnet50_fpn_v2_coco-"
                   "dd69338a.pth"),
}
PERSON_LABEL = 1  # COCO's "person" in torchvision's detection labels (both models)


class PersonDetectorError(CAPFError):
    """The person detector cannot be built (torchvision, its weights)."""


@dataclass
class Detections:
    """The people found in one frame, highest score first."""
    boxes_px: np.ndarray                # (P, 4) x1, y1, x2, y2
    scores: np.ndarray                  # (P,)
    keypoints_px: np.ndarray = None     # (P, 17, 2) COCO-17 (Keypoint R-CNN), else None
    keypoint_scores: np.ndarray = None  # (P, 17)


def select_people(boxes_px, scores, score_threshold, max_people, min_box_px):
    """Indices (highest score first) of the boxes (P, 4) kept: score >= threshold, height >=
    min_box_px, at most max_people."""
    boxes_px, scores = np.asarray(boxes_px, dtype=np.float64), np.asarray(scores)
    heights = boxes_px[:, 3] - boxes_px[:, 1] if len(boxes_px) else np.zeros(0)
    keep = np.flatnonzero((scores >= score_threshold) & (heights >= min_box_px))
    keep = keep[np.argsort(-scores[keep], kind="stable")]
    return keep[:max_people]


def import_torchvision():
    """torchvision's detection models, or one line saying what to install."""
    wanted = torchvision_for(torch.__version__) or "<the release for your torch>"
    advice = ("install the torchvision built for this torch (%s): `python install.py "
              "--person-detector`, or `pip install torchvision==%s.*` (with `--index-url "
              "https://download.pytorch.org/whl/cpu` for the CPU build of torch); or give the "
              "people with --boxes / --keypoints" % (torch.__version__, wanted))
    try:
        import torchvision.models.detection as detection
        from torchvision.ops import nms
        nms(torch.zeros(1, 4), torch.ones(1), 0.5)  # a build for another torch fails here
    except ImportError:
        raise PersonDetectorError("finding people needs torchvision, which is not installed: "
                                  + advice) from None
    except RuntimeError as error:
        raise PersonDetectorError("the installed torchvision does not match torch %s (%s): %s"
                                  % (torch.__version__, str(error).splitlines()[0], advice)) \
            from None
    return detection


def weights_file(name, given=None, download=None):
    """Path of the detector's weights: `given`, else torchvision's file in the torch.hub cache,
    fetched there once by `download(url, path)` (torch.hub's, by default). Offline without the
    file: one line naming the file to download and where to put it."""
    if given:
        if not os.path.isfile(given):
            raise PersonDetectorError("--detector-weights %s does not exist" % given)
        return given
    url = DETECTORS[name][2]
    path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))
    if os.path.isfile(path):
        return path
    download = download or (lambda u, p: torch.hub.download_url_to_file(u, p, progress=True))
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        download(url, path)
    except (urllib.error.URLError, OSError) as error:
        raise PersonDetectorError(
            "the %s person detector's weights could not be downloaded (%s): on a machine with "
            "internet download %s and put it in %s, or pass it with --detector-weights FILE; or "
            "give the people with --boxes / --keypoints"
            % (name, getattr(error, "reason", error), url, os.path.dirname(path))) from None
    return path


def build_detector_network(name, weights_path=None):
    """torchvision's network `name` (DETECTORS), eval mode; its weights from `weights_path`
    (None: random weights, for tests)."""
    if name not in DETECTORS:
        raise PersonDetectorError("unknown person detector %r; one of: %s"
                                  % (name, ", ".join(DETECTORS)))
    detection = import_torchvision()
    network = getattr(detection, DETECTORS[name][0])(weights=None, weights_backbone=None)
    if weights_path is not None:
        state = read_weights_file(weights_path)
        # torchvision's files are saved from FrozenBatchNorm2d layers: no num_batches_tracked
        result = network.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
        if missing or result.unexpected_keys:
            raise PersonDetectorError(
                "%s is not torchvision's %s weights file (%d keys missing, e.g. %s; %d "
                "unexpected)" % (weights_path, DETECTORS[name][0], len(missing),
                                 (missing or ["-"])[0], len(result.unexpected_keys)))
    return network.eval()


class PersonDetector:
    """BGR frames -> Detections per frame (people only), batched through one network call."""

    def __init__(self, network, device, score_threshold=0.8, max_people=10, min_box_px=48):
        self.network = network.to(device).eval()
        self.device = device
        self.score_threshold, self.max_people = score_threshold, max_people
        self.min_box_px = min_box_px

    @torch.no_grad()
    def __call__(self, frames_bgr):
        """[(H, W, 3) uint8 BGR] -> [Detections]."""
        images = [torch.from_numpy(np.ascontiguousarray(frame[..., ::-1])).to(self.device)
                  .permute(2, 0, 1).float().div_(255) for frame in frames_bgr]  # (3, H, W) RGB
        results = []
        for output in self.network(images):
            people = (output["labels"] == PERSON_LABEL).cpu().numpy()
            boxes = output["boxes"].float().cpu().numpy()[people]
            scores = output["scores"].float().cpu().numpy()[people]
            keep = select_people(boxes, scores, self.score_threshold, self.max_people,
                                 self.min_box_px)
            keypoints = keypoint_scores = None
            if "keypoints" in output:
                keypoints = output["keypoints"].float().cpu().numpy()[people][keep, :, :2]
                keypoint_scores = output["keypoints_scores"].float().cpu().numpy()[people][keep]
            results.append(Detections(boxes[keep], scores[keep], keypoints, keypoint_scores))
        return results


def load_person_detector(name, device, weights=None, **selection):
    """A PersonDetector with torchvision's weights (see weights_file)."""
    import_torchvision()  # before any download: say first what is missing
    return PersonDetector(build_detector_network(name, weights_file(name, weights)), device,
                          **selection)
