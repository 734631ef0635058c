"""3D human poses from your own images, folders of images or videos with a trained CA-PF.

    python demo.py --config experiments/human36m/hrnet_32.yaml \
        --checkpoint checkpoint/best_epoch.bin --images my_frames/ --boxes boxes.json --out results/

Per person: the box -> a 256x192 crop; 2D joints from the HRNet backbone's COCO heatmap head
(`--coco-weights`, the published pose_hrnet_w32_256x192.pth), converted to the Human3.6M
skeleton (mvn/coco.py), or read from `--keypoints`; then CA-PF (with flip test) -> 17 joints in
3D, root-relative, camera frame, metres. Writes a picture per image (an MP4 for a video) and
poses.npz / poses.json. See docs/demo.md for the file formats.
"""
import argparse
import json
import os
import sys

import cv2
import numpy as np
import torch
from tqdm import tqdm

from mvn import vis
from mvn.batch import predict_pose, prepare_images
from mvn.coco import box_from_keypoints, box_to_center_scale, coco_scores_to_h36m, \
    coco_to_h36m, load_coco_detector
from mvn.config import load_config
from mvn.errors import CAPFError, DeviceError, run_main
from mvn.human36m.facts import JOINT_NAMES, SKELETON
from mvn.geometry import CROP_SHAPE, affine_transform_points, crop_image, get_affine_transform, \
    normalize_screen_coordinates
from mvn.images import ImageError, read_frame_bgr
from mvn.models import BACKBONES, build_backbone, build_model, default_pretrained_path
from mvn.models.weights import load_backbone_weights, load_model_weights

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
DISPLAY_HEIGHT = 512  # output pictures: the frame scaled to this height, 3D views beside it
VIEWS_WIDTH = 512
MIN_VIEW_ROW_HEIGHT = 128  # below this, the rows are drawn at it and the column scaled down


class DemoError(CAPFError):
    """A problem with the user's inputs: printed as one line, exit code 2."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="experiments/human36m/hrnet_32.yaml",
                        help="the model's YAML config (as used for training)")
    parser.add_argument("--checkpoint", default="checkpoint/best_epoch.bin",
                        help="trained CA-PF weights (best_epoch.bin)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", help="one image")
    source.add_argument("--images", help="a folder of images (sorted by name)")
    source.add_argument("--video", help="a video file (written back as MP4)")
    parser.add_argument("--boxes", help="person boxes per frame, x1 y1 x2 y2 pixels (.json/.npz)")
    parser.add_argument("--keypoints",
                        help="2D joints per frame, Human3.6M 17-joint order, pixels (.json/.npz); "
                             "used instead of the COCO heatmap head")
    parser.add_argument("--coco-weights",
                        help="HRNet COCO file with the heatmap head final_layer.* (default: "
                             "data/pretrained/<the backbone's published file>)")
    parser.add_argument("--detector-joints", choices=("coco", "h36m"), default="coco",
                        help="what the heatmaps of --coco-weights are: COCO keypoints (the "
                             "published file, converted) or Human3.6M joints (a stage-1 "
                             "detector's checkpoints/backbone.pth, train.py with task: detector)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--device", choices=("cpu", "cuda"),
                        default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=32, help="persons per forward pass")
    parser.add_argument("--box-padding", type=float, default=1.25,
                        help="box enlargement before cropping (HRNet's 1.25)")
    parser.add_argument("--no-flip-test", action="store_true", help="one forward pass, no mirror")
    parser.add_argument("--stop-on-bad-frame", action="store_true",
                        help="stop at a missing or damaged image (default: skip it, warn)")
    return parser.parse_args(argv)


# ------------------------------------------------------------------------------------ inputs

def list_frames(args):
    """(names or None for a video, frame count, fps, iterator of (name, (H, W, 3) BGR uint8))."""
    if args.video:
        return _video_frames(args.video)
    if args.image:
        if not os.path.isfile(args.image):
            raise DemoError("image %s does not exist" % args.image)
        paths = [args.image]
    else:
        if not os.path.isdir(args.images):
            raise DemoError("image folder %s does not exist" % args.images)
        paths = [os.path.join(args.images, name) for name in sorted(os.listdir(args.images))
                 if name.lower().endswith(IMAGE_EXTENSIONS)]
        if not paths:
            raise DemoError("no images (%s) in %s" % (", ".join(IMAGE_EXTENSIONS), args.images))

    def read():
        for path in paths:  # a damaged file comes as its ImageError (chunks() decides)
            try:
                yield os.path.basename(path), read_frame_bgr(path, cv2.IMREAD_COLOR)
            except ImageError as error:
                yield os.path.basename(path), error
    return [os.path.basename(p) for p in paths], len(paths), None, read()


def _video_frames(path):
    """Frames of a video, named '<video stem>_000000', ... (0-based)."""
    capture = cv2.VideoCapture(path)
    if not os.path.isfile(path) or not capture.isOpened():
        raise DemoError("cannot open video %s" % path)
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    stem = os.path.splitext(os.path.basename(path))[0]

    def read():
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            yield "%s_%06d" % (stem, index), frame
            index += 1
        capture.release()
    return None, count, fps, read()


class PictureWriter:
    """Output pictures: a PNG per image (named after it), or one MP4 (mp4v) for a video."""

    def __init__(self, out, video=None, fps=None):
        self.out, self.fps, self.writer = out, fps, None
        self.video_path = os.path.join(out, os.path.splitext(os.path.basename(video))[0] + ".mp4") \
            if video else None

    def write(self, name, picture_bgr):
        if self.video_path is None:
            cv2.imwrite(os.path.join(self.out, os.path.splitext(name)[0] + ".png"), picture_bgr)
            return
        if self.writer is None:
            height, width = picture_bgr.shape[:2]
            self.writer = cv2.VideoWriter(self.video_path, cv2.VideoWriter_fourcc(*"mp4v"),
                                          self.fps, (width, height))
            if not self.writer.isOpened():
                raise DemoError("OpenCV cannot write %s with the mp4v codec" % self.video_path)
        self.writer.write(picture_bgr)

    def close(self):
        if self.writer is not None:
            self.writer.release()


class PerFrame:
    """Boxes (P, 4) or 2D joints (P, 17, 2) per frame, read from a JSON or NPZ file.

    JSON: an object {frame key: entry} or a list with one entry per frame, in order; a key is the
    image file name (with or without its extension) or the 0-based frame index as text; an entry
    is one box / one pose, or a list of them ([] = nobody). NPZ: an array `boxes` (N, 4) or
    (N, P, 4) (resp. `keypoints` (N, 17, 2) or (N, P, 17, 2); rows of NaN = no person), one per
    frame in order, or matched by name through an optional `names` (N,) array."""

    def __init__(self, path, kind):
        self.path, self.kind = path, kind
        self.shape = (4,) if kind == "boxes" else (17, 2)
        if not os.path.isfile(path):
            raise DemoError("%s file %s does not exist" % (kind, path))
        if path.lower().endswith(".npz"):
            with np.load(path, allow_pickle=False) as data:
                if kind not in data:
                    raise DemoError("%s has no array '%s' (it has: %s)"
                                    % (path, kind, ", ".join(data.files)))
                entries = list(data[kind])
                names = [str(n) for n in data["names"]] if "names" in data else None
            self.entries = dict(zip(names, entries)) if names is not None else entries
        else:
            try:
                with open(path) as f:
                    self.entries = json.load(f)
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise DemoError("%s is not valid JSON: %s" % (path, error)) from None
            if not isinstance(self.entries, (dict, list)):
                raise DemoError("%s must hold an object {frame: %s} or a list" % (path, kind))

    def get(self, index, name):
        """(P, 4) or (P, 17, 2) float64 for frame `index` called `name`."""
        entry = None
        if isinstance(self.entries, dict):
            for key in (name, os.path.splitext(name)[0], str(index)):
                if key in self.entries:
                    entry = self.entries[key]
                    break
        elif index < len(self.entries):
            entry = self.entries[index]
        if entry is None:
            raise DemoError("no %s for frame %d ('%s') in %s: give every frame an entry "
                            "([] for nobody)" % (self.kind, index, name, self.path))
        try:
            array = np.asarray(entry, dtype=np.float64)
        except (TypeError, ValueError):
            raise DemoError("%s: the %s of frame '%s' are not numbers"
                            % (self.path, self.kind, name)) from None
        if array.size == 0:
            return np.zeros((0,) + self.shape)
        if self.kind == "boxes" and array.shape[-1] == 5:     # x1, y1, x2, y2, score
            array = array[..., :4]
        if self.kind == "keypoints" and array.shape[-1] == 3:  # x, y, score
            array = array[..., :2]
        if array.shape == self.shape:
            array = array[None]
        if array.shape[1:] != self.shape:
            raise DemoError("%s: the %s of frame '%s' have shape %s; expected %s or (persons, %s)"
                            % (self.path, self.kind, name, array.shape, self.shape,
                               ", ".join(map(str, self.shape))))
        return array[np.isfinite(array).reshape(len(array), -1).all(axis=1)]


# ----------------------------------------------------------------------------------- model

def check_files(args, config):
    """One-line errors for what is missing, before anything heavy is built."""
    backbone = config.model.backbone.type
    if not args.boxes and not args.keypoints:
        raise DemoError("give the persons: --boxes FILE (x1, y1, x2, y2 per person and frame, for "
                        "the COCO 2D detector) or --keypoints FILE (Human3.6M 2D joints)")
    if not os.path.isfile(args.checkpoint):
        raise DemoError("checkpoint %s not found. Pass --checkpoint with the file of a trained "
                        "CA-PF: train.py writes <logdir>/<experiment>/checkpoints/best_epoch.bin; "
                        "the published model goes to checkpoint/best_epoch.bin (see README)"
                        % args.checkpoint)
    if args.keypoints:
        return None
    if not backbone.startswith("hrnet"):
        raise DemoError("the 2D detector is HRNet's COCO heatmap head, and this model's backbone "
                        "is '%s': give the 2D joints with --keypoints FILE" % backbone)
    published = BACKBONES[backbone].published_file
    coco_weights = args.coco_weights or default_pretrained_path(backbone)
    if not coco_weights:
        raise DemoError("the '%s' backbone has no published COCO head: pass --coco-weights PATH "
                        "(a state dict with final_layer.weight/bias) or --keypoints FILE"
                        % backbone)
    if not os.path.isfile(coco_weights):
        raise DemoError("COCO weights %s not found: download the published %s into "
                        "data/pretrained/ or data/pretrained/coco/ (or pass --coco-weights PATH), "
                        "or give --keypoints FILE"
                        % (coco_weights, published or "HRNet COCO file"))
    return coco_weights


def load_models(config, args, coco_weights, device):
    model = build_model(config)
    load_model_weights(model, args.checkpoint)
    model.to(device).eval()
    detector = None
    if coco_weights:
        backbone = model.backbone
        if backbone is None:  # model.image_features false: the file's own backbone
            backbone = build_backbone(config.model.backbone.type)
            load_backbone_weights(backbone, coco_weights,
                                  BACKBONES[config.model.backbone.type].head_prefixes)
        detector = load_coco_detector(backbone, coco_weights).to(device).eval()
    return model, detector


# ----------------------------------------------------------------------------------- poses

def crop_persons(image, boxes_px, padding):
    """Crops (P, 256, 192, 3) uint8 and affines (P, 2, 3) of the persons in `boxes_px` (P, 4)."""
    centers, scales = box_to_center_scale(boxes_px, padding)
    crops = [crop_image(image, c, s) for c, s in zip(centers, scales)]
    affines = [get_affine_transform(c, s) for c, s in zip(centers, scales)]
    return (np.stack(crops) if crops else np.zeros((0,) + CROP_SHAPE + (3,), np.uint8),
            np.stack(affines) if affines else np.zeros((0, 2, 3)))


@torch.no_grad()
def estimate(model, detector, persons, config, device, use_flip_test, detector_joints="coco"):
    """Fill 2D (full frame) and 3D joints into `persons`, a list of dicts of one batch.
    `detector_joints`: the detector's heatmaps are 'coco' keypoints (converted to the Human3.6M
    joints) or already 'h36m' joints (a stage-1 detector)."""
    backbone = config.model.backbone.type
    crops = torch.from_numpy(np.stack([p["crop"] for p in persons])).to(device)
    images = prepare_images(crops, backbone)                       # (B, 256, 192, 3)
    affines = np.stack([p["affine"] for p in persons])             # (B, 2, 3)
    if detector is not None:
        coco_crop, scores = detector.detect(images)                # (B, 17, 2) crop px, (B, 17)
        coco_px = np.stack([affine_transform_points(k, cv2.invertAffineTransform(m))
                            for k, m in zip(coco_crop.cpu().numpy(), affines)])  # frame px
        if detector_joints == "h36m":
            joints_px, joints_score = coco_px, scores.cpu().numpy()
        else:
            joints_px = coco_to_h36m(coco_px)                      # (B, 17, 2)
            joints_score = coco_scores_to_h36m(scores.cpu().numpy())
    else:
        joints_px = np.stack([p["keypoints_px"] for p in persons])
        joints_score = None
    joints_crop = np.stack([affine_transform_points(j, m) for j, m in zip(joints_px, affines)])
    keypoints_2d = np.stack([normalize_screen_coordinates(j, *p["size"])   # (B, 17, 2)
                             for j, p in zip(joints_px, persons)])
    inputs = (images,
              torch.as_tensor(keypoints_2d, dtype=torch.float32, device=device),
              torch.as_tensor(joints_crop, dtype=torch.float32, device=device))
    joints_3d = predict_pose(model, *inputs, use_flip_test,
                             skeleton=SKELETON).cpu().numpy()  # (B, 17, 3)
    for slot, person in enumerate(persons):
        person["keypoints_2d_px"] = joints_px[slot]
        person["keypoints_3d_m"] = joints_3d[slot]
        if joints_score is not None:
            person["keypoints_2d_score"] = joints_score[slot]


def compose_frame(image, persons):
    """BGR picture: the frame with every person's 2D skeleton, their 3D views on the right."""
    for person in persons:
        image = vis.draw_skeleton_2d(image, person["keypoints_2d_px"], skeleton=SKELETON)
    height, width = image.shape[:2]
    display_width = 2 * int(round(width * DISPLAY_HEIGHT / height / 2))  # even, for video codecs
    frame = cv2.resize(image, (display_width, DISPLAY_HEIGHT), interpolation=cv2.INTER_AREA)
    column = np.full((DISPLAY_HEIGHT, VIEWS_WIDTH, 3), 255, np.uint8)
    if persons:
        # The column is shared by the persons: one row each (one person: the whole height).
        row_height = max(DISPLAY_HEIGHT // len(persons), MIN_VIEW_ROW_HEIGHT)
        views = np.concatenate([
            vis.render_pose_3d(p["keypoints_3d_m"], None,
                               "person %d" % p["person_index"] if len(persons) > 1 else None,
                               size_px=(VIEWS_WIDTH, row_height), skeleton=SKELETON)
            for p in persons])[:, :, ::-1]                           # (P * row, 512, 3) BGR
        views = np.ascontiguousarray(views)
        factor = min(1.0, DISPLAY_HEIGHT / views.shape[0])
        if factor < 1.0:
            views = cv2.resize(views, (int(VIEWS_WIDTH * factor), DISPLAY_HEIGHT),
                               interpolation=cv2.INTER_AREA)
        column[:views.shape[0], :views.shape[1]] = views
    return np.concatenate([frame, column], axis=1)


def write_poses(out, records, with_scores):
    """poses.npz and poses.json: one row per person found, in frame order."""
    n = len(records)
    arrays = {
        "frame_names": np.array([r["frame_name"] for r in records], dtype=str),
        "frame_index": np.array([r["frame_index"] for r in records], dtype=np.int64),
        "person_index": np.array([r["person_index"] for r in records], dtype=np.int64),
        "boxes_px": np.array([r["box_px"] for r in records]).reshape(n, 4),
        "image_size": np.array([r["size"] for r in records], dtype=np.int64).reshape(n, 2),
        "keypoints_2d_px": np.array([r["keypoints_2d_px"] for r in records]).reshape(n, 17, 2),
        "keypoints_3d_m": np.array([r["keypoints_3d_m"] for r in records]).reshape(n, 17, 3),
    }
    if with_scores:
        arrays["keypoints_2d_score"] = np.array(
            [r["keypoints_2d_score"] for r in records]).reshape(n, 17)
    np.savez(os.path.join(out, "poses.npz"), **arrays)
    document = {"joint_names": list(JOINT_NAMES),
                "keypoints_3d": "camera frame (x right, y down, z forward), metres, relative to "
                                "the pelvis as predicted (mvn.batch.predict_pose)"}
    document.update({k: v.tolist() for k, v in arrays.items()})
    with open(os.path.join(out, "poses.json"), "w") as f:
        json.dump(document, f)


def chunks(frames, boxes, keypoints, padding, batch_size, skipped, stop_on_bad_frame=False):
    """Frames with their persons (crops made), grouped so that each group holds at least
    `batch_size` persons (the last group: the rest). A frame that could not be read (an
    ImageError in place of the image) is skipped with a warning and its name appended to
    `skipped`, or, with `stop_on_bad_frame`, ends the run."""
    group, persons = [], 0
    for index, (name, image) in enumerate(frames):
        if isinstance(image, ImageError):
            if stop_on_bad_frame:
                raise image
            tqdm.write("demo.py: warning: skipping frame '%s': %s" % (name, image),
                       file=sys.stderr)
            skipped.append(name)
            continue
        height, width = image.shape[:2]
        if keypoints is not None:
            joints_px = keypoints.get(index, name)
            frame_boxes = boxes.get(index, name) if boxes is not None \
                else box_from_keypoints(joints_px)
            if len(frame_boxes) != len(joints_px):
                raise DemoError("frame '%s': %d boxes but %d poses" % (name, len(frame_boxes),
                                                                       len(joints_px)))
        else:
            frame_boxes, joints_px = boxes.get(index, name), None
        crops, affines = crop_persons(image, frame_boxes, padding)
        people = [{"frame_name": name, "frame_index": index, "person_index": p,
                   "size": (width, height), "box_px": frame_boxes[p], "crop": crops[p],
                   "affine": affines[p],
                   "keypoints_px": None if joints_px is None else joints_px[p]}
                  for p in range(len(frame_boxes))]
        group.append((name, image, people))
        persons += len(people)
        if persons >= batch_size:
            yield group
            group, persons = [], 0
    if group:
        yield group


def run(args):
    config = load_config(args.config)
    coco_weights = check_files(args, config)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda was asked for but no CUDA device is visible; use "
                          "--device cpu")
    names, count, fps, frames = list_frames(args)
    boxes = PerFrame(args.boxes, "boxes") if args.boxes else None
    keypoints = PerFrame(args.keypoints, "keypoints") if args.keypoints else None
    if names is not None:  # images: every frame's entry is checked before any work
        for index, name in enumerate(names):
            for per_frame in (boxes, keypoints):
                if per_frame is not None:
                    per_frame.get(index, name)
    device = torch.device(args.device)
    model, detector = load_models(config, args, coco_weights, device)
    os.makedirs(args.out, exist_ok=True)

    records, skipped = [], []
    pictures = PictureWriter(args.out, args.video, fps)
    bar = tqdm(total=count or None, desc="frames", unit="frame", dynamic_ncols=True)
    try:
        for group in chunks(frames, boxes, keypoints, args.box_padding, args.batch_size,
                            skipped, args.stop_on_bad_frame):
            persons = [p for _, _, people in group for p in people]
            if persons:
                estimate(model, detector, persons, config, device, not args.no_flip_test,
                         args.detector_joints)
            for name, image, people in group:
                pictures.write(name, compose_frame(image, people))
                for person in people:
                    del person["crop"], person["affine"], person["keypoints_px"]
                records.extend(people)
                bar.update(1)
    finally:  # whatever ends the run, the poses of every finished frame are written
        bar.close()
        pictures.close()
        write_poses(args.out, records, with_scores=detector is not None)
    print("%d person(s) in %d frame(s) -> %s%s" % (
        len(records), bar.n, args.out,
        "; %d unreadable frame(s) skipped: %s" % (len(skipped), ", ".join(skipped[:5])
                                                   + (", ..." if len(skipped) > 5 else ""))
        if skipped else ""))


def main(argv=None):
    args = parse_args(argv)
    return run_main(lambda: run(args), "demo.py")


if __name__ == "__main__":
    sys.exit(main())
