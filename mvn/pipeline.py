"""From a frame to 3D poses, the Python API of demo.py:

    from mvn.pipeline import PosePipeline
    pipeline = PosePipeline.from_files("experiments/human36m/hrnet_32.yaml",
                                       "checkpoint/best_epoch.bin", person_detector="keypointrcnn")
    for person in pipeline(image_bgr):          # (H, W, 3) uint8, as cv2.imread gives it
        person.box_px, person.keypoints_2d_px, person.keypoints_3d_m   # (4,), (17, 2), (17, 3)

For each frame: the people (boxes given, boxes of given 2D joints, or found by a person detector,
mvn/person_detector.py) -> 256x192 crops (HRNet's box_to_center_scale) -> 2D joints (given, the
backbone's COCO heatmap head, or the person detector's own COCO keypoints; converted to
Human3.6M's 17 by mvn/keypoint_formats.py) -> CA-PF with flip test (mvn.batch.predict_pose's
arithmetic) -> 17 joints in 3D, camera frame, metres, relative to the pelvis as predicted.

With the COCO head on the model's own backbone, the backbone runs once per crop for both the 2D
head and CA-PF (and once more on the mirrored crop for the flip test).
"""
import contextlib
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from mvn import keypoint_formats
from mvn.batch import flip_batch, mirror_x, predict_pose, prepare_images
from mvn.coco import BOX_PADDING, box_from_keypoints, box_to_center_scale, decode_heatmaps, \
    heatmap_to_crop_px, load_coco_detector
from mvn.config import load_config
from mvn.errors import CAPFError
from mvn.geometry import CROP_SHAPE, affine_transform_points, crop_image, get_affine_transform, \
    normalize_screen_coordinates
from mvn.human36m.facts import SKELETON
from mvn.models import BACKBONES, build_backbone, build_model
from mvn.models.weights import load_backbone_weights, load_model_weights
from mvn.person_detector import load_person_detector

JOINT_SOURCES = ("head", "detector")  # where 2D joints come from when none are given
# What the heatmap head's channels are: the published COCO file's COCO keypoints, or the
# Human3.6M joints of a stage-1 detector (train.py with task: detector, its backbone.pth).
HEAD_KEYPOINTS = ("coco", "h36m")


def load_head(model, config, weights):
    """The heatmap head of `weights` (mvn.coco.load_coco_detector) over the model's backbone;
    a model without one (model.image_features false) gets the file's own backbone."""
    backbone = model.backbone
    if backbone is None:
        backbone = build_backbone(config.model.backbone.type)
        load_backbone_weights(backbone, weights,
                              BACKBONES[config.model.backbone.type].head_prefixes)
    return load_coco_detector(backbone, weights)


class PipelineError(CAPFError):
    """Inputs of the pipeline that do not fit together."""


@dataclass
class Person:
    box_px: np.ndarray              # (4,) x1, y1, x2, y2 of the crop's box
    box_score: float                # the person detector's score (nan: the box was given)
    keypoints_2d_px: np.ndarray     # (17, 2) Human3.6M joints, full-frame pixels
    keypoints_2d_score: np.ndarray  # (17,) the 2D source's confidence, or None (joints given)
    keypoints_3d_m: np.ndarray      # (17, 3) camera frame, metres, relative to the pelvis


def crop_persons(image, boxes_px, padding):
    """Crops (P, 256, 192, 3) uint8 and affines (P, 2, 3) of the persons in `boxes_px` (P, 4)."""
    centers, scales = box_to_center_scale(boxes_px, padding)
    crops = [crop_image(image, c, s) for c, s in zip(centers, scales)]
    affines = [get_affine_transform(c, s) for c, s in zip(centers, scales)]
    return (np.stack(crops) if crops else np.zeros((0,) + CROP_SHAPE + (3,), np.uint8),
            np.stack(affines) if affines else np.zeros((0, 2, 3)))


class PosePipeline:
    """A trained CA-PF with its 2D source; `people` + `estimate` for batches across frames (the
    demo), `__call__` for one image."""

    def __init__(self, model, config, device, coco_detector=None, person_detector=None,
                 joints_from="head", flip_test=True, box_padding=BOX_PADDING, amp=False,
                 head_keypoints="coco"):
        if joints_from not in JOINT_SOURCES:
            raise PipelineError("joints_from must be one of %s, not %r"
                                % (", ".join(JOINT_SOURCES), joints_from))
        if head_keypoints not in HEAD_KEYPOINTS:
            raise PipelineError("head_keypoints must be one of %s, not %r"
                                % (", ".join(HEAD_KEYPOINTS), head_keypoints))
        self.head_keypoints = head_keypoints
        self.model, self.config, self.device = model.to(device).eval(), config, device
        self.coco_detector = None if coco_detector is None else coco_detector.to(device).eval()
        self.person_detector = person_detector
        self.joints_from, self.flip_test, self.box_padding = joints_from, flip_test, box_padding
        self.amp = amp

    @classmethod
    def from_files(cls, config_path, checkpoint_path, device="cpu", coco_weights=None,
                   person_detector=None, detector_weights=None, **options):
        """From a YAML config and a trained checkpoint; `coco_weights`: the HRNet COCO file of
        the 2D head; `person_detector`: 'keypointrcnn' / 'fasterrcnn' (mvn/person_detector.py)
        or a callable [frames] -> [Detections]."""
        config = load_config(config_path)
        model = build_model(config)
        load_model_weights(model, checkpoint_path)
        coco_detector = load_head(model, config, coco_weights) if coco_weights else None
        if isinstance(person_detector, str):
            person_detector = load_person_detector(person_detector, torch.device(device),
                                                   detector_weights)
        return cls(model, config, torch.device(device), coco_detector, person_detector,
                   **options)

    # ------------------------------------------------------------------------- people, crops

    def people(self, image_bgr, boxes_px=None, keypoints_px=None):
        """The people of one frame as dicts (box, crop, affine, 2D joints where already known):
        boxes given, else the boxes of the given joints, else the person detector's."""
        height, width = image_bgr.shape[:2]
        box_scores = joint_scores = None
        if boxes_px is None and keypoints_px is not None:
            boxes_px = box_from_keypoints(keypoints_px)
        if boxes_px is None:
            if self.person_detector is None:
                raise PipelineError("no person boxes, no 2D joints and no person detector: give "
                                    "boxes or joints, or a person detector")
            found = self.person_detector([image_bgr])[0]
            boxes_px, box_scores = found.boxes_px, found.scores
            if self.joints_from == "detector":
                if found.keypoints_px is None:
                    raise PipelineError("joints from the person detector need one that finds "
                                        "keypoints (keypointrcnn)")
                keypoints_px = keypoint_formats.to_h36m(found.keypoints_px, "coco")
                joint_scores = keypoint_formats.scores_to_h36m(found.keypoint_scores, "coco")
        boxes_px = np.asarray(boxes_px, dtype=np.float64).reshape(-1, 4)
        if keypoints_px is not None and len(keypoints_px) != len(boxes_px):
            raise PipelineError("%d boxes but %d poses" % (len(boxes_px), len(keypoints_px)))
        crops, affines = crop_persons(image_bgr, boxes_px, self.box_padding)
        return [{"size": (width, height), "box_px": boxes_px[p], "crop": crops[p],
                 "affine": affines[p],
                 "box_score": np.nan if box_scores is None else float(box_scores[p]),
                 "keypoints_px": None if keypoints_px is None else keypoints_px[p],
                 "keypoints_2d_score": None if joint_scores is None else joint_scores[p]}
                for p in range(len(boxes_px))]

    # ---------------------------------------------------------------------------- estimate

    def _autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    @torch.no_grad()
    def estimate(self, persons):
        """Fill 'keypoints_2d_px', 'keypoints_2d_score' and 'keypoints_3d_m' into `persons`
        (dicts of `people`, from any frames), in one batch."""
        if not persons:
            return
        backbone = self.config.model.backbone.type
        crops = torch.from_numpy(np.stack([p["crop"] for p in persons])).to(self.device)
        images = prepare_images(crops, backbone)                       # (B, 256, 192, 3)
        affines = np.stack([p["affine"] for p in persons])             # (B, 2, 3)
        features = None
        with self._autocast():
            if all(p["keypoints_px"] is not None for p in persons):
                joints_px = np.stack([p["keypoints_px"] for p in persons])   # (B, 17, 2)
                scores = [p["keypoints_2d_score"] for p in persons]
                joints_score = None if scores[0] is None else np.stack(scores)
            else:
                coco_crop, coco_scores, features = self._coco_head(images)
                coco_px = np.stack([affine_transform_points(k, cv2.invertAffineTransform(m))
                                    for k, m in zip(coco_crop, affines)])  # (B, 17, 2) frame px
                joints_px = keypoint_formats.to_h36m(coco_px, self.head_keypoints)
                joints_score = keypoint_formats.scores_to_h36m(coco_scores, self.head_keypoints)
            joints_crop = np.stack([affine_transform_points(j, m)
                                    for j, m in zip(joints_px, affines)])     # (B, 17, 2)
            keypoints_2d = np.stack([normalize_screen_coordinates(j, *p["size"])
                                     for j, p in zip(joints_px, persons)])    # (B, 17, 2)
            inputs = (images,
                      torch.as_tensor(keypoints_2d, dtype=torch.float32, device=self.device),
                      torch.as_tensor(joints_crop, dtype=torch.float32, device=self.device))
            joints_3d = self._lift(inputs, features).cpu().numpy()            # (B, 17, 3)
        for slot, person in enumerate(persons):
            person["keypoints_2d_px"] = joints_px[slot]
            person["keypoints_2d_score"] = None if joints_score is None else joints_score[slot]
            person["keypoints_3d_m"] = joints_3d[slot]

    def _coco_head(self, images):
        """COCO keypoints (B, 17, 2) crop px and scores (B, 17) from the heatmap head, and the
        model's feature maps when the head sits on the model's own backbone (else None)."""
        if self.coco_detector is None:
            raise PipelineError("2D joints are needed and there is no COCO heatmap head: give "
                                "coco_weights, 2D joints, or joints from the person detector")
        backbone = getattr(self.coco_detector, "backbone", None)
        if backbone is not None and backbone is getattr(self.model, "backbone", None):
            features = self.model.backbone_features(images)   # shared with CA-PF
            heatmaps = self.coco_detector.head(features[0])  # (B, 17, 64, 48)
            coords, scores = decode_heatmaps(heatmaps.float())
            coco_crop = heatmap_to_crop_px(coords, tuple(heatmaps.shape[-2:]),
                                           tuple(images.shape[1:3]))
        else:
            (coco_crop, scores), features = self.coco_detector.detect(images), None
        return coco_crop.cpu().numpy(), scores.float().cpu().numpy(), features

    def _lift(self, inputs, features):
        """(B, 17, 3) float32: predict_pose's prediction, reusing `features` of the unmirrored
        crops when given (the same arithmetic: model(x) is model.lift(..., features(x)))."""
        if features is None:
            return predict_pose(self.model, *inputs, self.flip_test, skeleton=SKELETON)
        images, keypoints_2d, keypoints_2d_crop = inputs
        prediction = self.model.lift(keypoints_2d, keypoints_2d_crop, features)  # (B, 1, 17, 3)
        if self.flip_test:
            flipped = self.model(*flip_batch(images, keypoints_2d, keypoints_2d_crop,
                                             crop_width=images.shape[2], skeleton=SKELETON))
            prediction = (prediction + mirror_x(flipped, skeleton=SKELETON)) / 2
        return prediction.float()[:, 0]

    # ---------------------------------------------------------------------------- one image

    def __call__(self, image_bgr, boxes_px=None, keypoints_px=None):
        """[Person] of one (H, W, 3) uint8 BGR image."""
        persons = self.people(image_bgr, boxes_px, keypoints_px)
        self.estimate(persons)
        return [Person(p["box_px"], p["box_score"], p["keypoints_2d_px"],
                       p["keypoints_2d_score"], p["keypoints_3d_m"]) for p in persons]
