"""3D human poses from your own images, folders of images or videos with a trained CA-PF.

    python demo.py --config experiments/human36m/hrnet_32.yaml \
        --checkpoint checkpoint/best_epoch.bin --video my_video.mp4 --out results/

The people: found by a person detector (torchvision's Keypoint R-CNN by default,
mvn/person_detector.py), or given as boxes (`--boxes`) or 2D joints (`--keypoints`, any of the
formats of mvn/keypoint_formats.py). Per person: the box -> a 256x192 crop; 2D joints from the
HRNet backbone's COCO heatmap head (`--coco-weights`, the published pose_hrnet_w32_256x192.pth),
from the person detector (`--joints-from detector`) or the file, converted to Human3.6M's 17;
then CA-PF (with flip test) -> 17 joints in 3D, root-relative, camera frame, metres
(mvn/pipeline.py, the Python API). People keep a track id across frames (mvn/tracking.py).
Writes a picture per image (an MP4 for a video) and poses.npz / poses.json. See docs/demo.md.
"""
import argparse
import json
import os
import sys
import time
from queue import Queue
from threading import Thread

import cv2
import numpy as np
import torch
from tqdm import tqdm

from mvn import keypoint_formats, vis
from mvn.config import load_config
from mvn.errors import CAPFError, DeviceError, run_main
from mvn.human36m.facts import JOINT_NAMES, SKELETON
from mvn.images import ImageError, read_frame_bgr
from mvn.models import BACKBONES, build_model, default_pretrained_path
from mvn.models.weights import load_model_weights
from mvn.person_detector import DETECTORS, load_person_detector
from mvn.pipeline import HEAD_KEYPOINTS, JOINT_SOURCES, PipelineError, PosePipeline, load_head
from mvn.tracking import Tracker

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
    parser.add_argument("--boxes", help="person boxes per frame, x1 y1 x2 y2 pixels (.json/.npz); "
                        "without --boxes and --keypoints a person detector finds them")
    parser.add_argument("--keypoints",
                        help="2D joints per frame, pixels (.json/.npz), in --keypoint-format; "
                             "used instead of the COCO heatmap head")
    parser.add_argument("--keypoint-format", default="h36m", choices=keypoint_formats.FORMATS,
                        help="the --keypoints file's joints: h36m (17, Human3.6M order), coco "
                             "(17), halpe26, openpose25 (BODY_25), mediapipe33 (in pixels); "
                             "converted to Human3.6M's 17 (mvn/keypoint_formats.py)")
    parser.add_argument("--person-detector", choices=tuple(DETECTORS), default="keypointrcnn",
                        help="torchvision's detector that finds the people when no --boxes or "
                             "--keypoints are given (mvn/person_detector.py)")
    parser.add_argument("--detector-weights",
                        help="its weights file (offline machines; default: torchvision's file, "
                             "fetched once into the torch.hub cache)")
    parser.add_argument("--score-threshold", type=float, default=0.8,
                        help="a detected person's lowest score")
    parser.add_argument("--max-people", type=int, default=10, help="people per frame, at most")
    parser.add_argument("--min-box-px", type=float, default=48,
                        help="a detected person's smallest box height in pixels")
    parser.add_argument("--joints-from", choices=JOINT_SOURCES, default="head",
                        help="2D joints from the backbone's COCO heatmap head, or from the person "
                             "detector's own keypoints (keypointrcnn)")
    parser.add_argument("--head-keypoints", choices=HEAD_KEYPOINTS, default="coco",
                        help="what the heatmaps of --coco-weights are: COCO keypoints (the "
                             "published file, converted) or Human3.6M joints (a stage-1 "
                             "detector's checkpoints/backbone.pth, train.py with task: detector)")
    parser.add_argument("--coco-weights",
                        help="HRNet COCO file with the heatmap head final_layer.* (default: "
                             "data/pretrained/<the backbone's published file>)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--device", choices=("cpu", "cuda"),
                        default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--amp", action="store_true",
                        help="bfloat16 autocast for the networks (faster on recent GPUs and CPUs)")
    parser.add_argument("--batch-size", type=int, default=32, help="persons per forward pass")
    parser.add_argument("--box-padding", type=float, default=1.25,
                        help="box enlargement before cropping (HRNet's 1.25)")
    parser.add_argument("--no-flip-test", action="store_true", help="one forward pass, no mirror")
    parser.add_argument("--max-gap-frames", type=int, default=5,
                        help="a person missed for up to this many frames keeps their track id "
                             "(mvn/tracking.py); frames of --images are a sequence in name order")
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
    """Boxes (P, 4) or 2D joints per frame, read from a JSON or NPZ file; joints are given as K
    keypoints of `keypoint_format` (K = 17 for h36m and coco, 25 openpose25 ...) and returned
    converted to Human3.6M's (P, 17, 2).

    JSON: an object {frame key: entry} or a list with one entry per frame, in order; a key is the
    image file name (with or without its extension) or the 0-based frame index as text; an entry
    is one box / one pose, or a list of them ([] = nobody). NPZ: an array `boxes` (N, 4) or
    (N, P, 4) (resp. `keypoints` (N, K, 2) or (N, P, K, 2); rows of NaN = no person), one per
    frame in order, or matched by name through an optional `names` (N,) array."""

    def __init__(self, path, kind, keypoint_format="h36m"):
        self.path, self.kind, self.keypoint_format = path, kind, keypoint_format
        self.shape = ((4,) if kind == "boxes"
                      else (keypoint_formats.num_keypoints(keypoint_format), 2))
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
            return np.zeros((0,) + self.output_shape)
        if self.kind == "boxes" and array.shape[-1] == 5:     # x1, y1, x2, y2, score
            array = array[..., :4]
        if self.kind == "keypoints" and array.shape[-1] == 3:  # x, y, score
            array = array[..., :2]
        if array.shape == self.shape:
            array = array[None]
        if array.shape[1:] != self.shape:
            what = self.kind if self.kind == "boxes" else "%s keypoints" % self.keypoint_format
            raise DemoError("%s: the %s of frame '%s' have shape %s; expected %s or (persons, %s)"
                            % (self.path, what, name, array.shape, self.shape,
                               ", ".join(map(str, self.shape))))
        array = array[np.isfinite(array).reshape(len(array), -1).all(axis=1)]
        if self.kind == "keypoints":
            array = keypoint_formats.to_h36m(array, self.keypoint_format)  # (P, 17, 2)
        return array

    @property
    def output_shape(self):
        """What get() returns per person: a box (4,) or Human3.6M's joints (17, 2)."""
        return (4,) if self.kind == "boxes" else (17, 2)


# ----------------------------------------------------------------------------------- model

def check_files(args, config):
    """One-line errors for what is missing, before anything heavy is built."""
    backbone = config.model.backbone.type
    if args.joints_from == "detector" and (args.keypoints or args.boxes
                                           or args.person_detector != "keypointrcnn"):
        raise DemoError("--joints-from detector takes the joints of the keypointrcnn person "
                        "detector: use it without --boxes and --keypoints")
    if not os.path.isfile(args.checkpoint):
        raise DemoError("checkpoint %s not found. Pass --checkpoint with the file of a trained "
                        "CA-PF: train.py writes <logdir>/<experiment>/checkpoints/best_epoch.bin; "
                        "the published model goes to checkpoint/best_epoch.bin (see README)"
                        % args.checkpoint)
    if args.keypoints or args.joints_from == "detector":
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
                               "person %d" % p["track_id"] if len(persons) > 1 else None,
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
        "track_id": np.array([r["track_id"] for r in records], dtype=np.int64),
        "boxes_px": np.array([r["box_px"] for r in records]).reshape(n, 4),
        "box_score": np.array([r["box_score"] for r in records], dtype=np.float64),
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


def prefetch(frames, depth=8):
    """The frames iterator read ahead in a background thread (decoding overlaps the networks);
    an exception while reading is raised here, in order."""
    queue = Queue(maxsize=depth)
    done = object()

    def read():
        try:
            for item in frames:
                queue.put(item)
        except BaseException as error:  # handed to the consumer, raised there
            queue.put(error)
        queue.put(done)
    Thread(target=read, daemon=True, name="demo-frames").start()
    while True:
        item = queue.get()
        if item is done:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


def chunks(frames, boxes, keypoints, pipeline, batch_size, skipped, stop_on_bad_frame=False):
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
        frame_boxes = None if boxes is None else boxes.get(index, name)
        joints_px = None if keypoints is None else keypoints.get(index, name)
        try:
            people = pipeline.people(image, frame_boxes, joints_px)
        except PipelineError as error:
            raise DemoError("frame '%s': %s" % (name, error)) from None
        for p, person in enumerate(people):
            person.update(frame_name=name, frame_index=index, person_index=p)
        group.append((name, image, people))
        persons += len(people)
        if persons >= batch_size:
            yield group
            group, persons = [], 0
    if group:
        yield group


def build_pipeline(args, config, coco_weights, device):
    person_detector = None
    if not args.boxes and not args.keypoints:
        person_detector = load_person_detector(
            args.person_detector, device, args.detector_weights,
            score_threshold=args.score_threshold, max_people=args.max_people,
            min_box_px=args.min_box_px)
    model = build_model(config)
    load_model_weights(model, args.checkpoint)
    coco_detector = load_head(model, config, coco_weights) if coco_weights else None
    return PosePipeline(model, config, device, coco_detector, person_detector,
                        joints_from=args.joints_from, flip_test=not args.no_flip_test,
                        box_padding=args.box_padding, amp=args.amp,
                        head_keypoints=args.head_keypoints)


def run(args):
    config = load_config(args.config)
    coco_weights = check_files(args, config)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda was asked for but no CUDA device is visible; use "
                          "--device cpu")
    names, count, fps, frames = list_frames(args)
    boxes = PerFrame(args.boxes, "boxes") if args.boxes else None
    keypoints = (PerFrame(args.keypoints, "keypoints", args.keypoint_format) if args.keypoints
                 else None)
    if names is not None:  # images: every frame's entry is checked before any work
        for index, name in enumerate(names):
            for per_frame in (boxes, keypoints):
                if per_frame is not None:
                    per_frame.get(index, name)
    device = torch.device(args.device)
    pipeline = build_pipeline(args, config, coco_weights, device)
    os.makedirs(args.out, exist_ok=True)

    records, skipped = [], []
    tracker = Tracker(max_gap_frames=args.max_gap_frames)
    pictures = PictureWriter(args.out, args.video, fps)
    bar = tqdm(total=count or None, desc="frames", unit="frame", dynamic_ncols=True)
    started = time.perf_counter()
    try:
        for group in chunks(prefetch(frames), boxes, keypoints, pipeline, args.batch_size,
                            skipped, args.stop_on_bad_frame):
            pipeline.estimate([p for _, _, people in group for p in people])
            for name, image, people in group:
                if people:
                    ids = tracker.update(people[0]["frame_index"],
                                         np.stack([p["box_px"] for p in people]),
                                         np.stack([p["keypoints_2d_px"] for p in people]))
                    for person, track_id in zip(people, ids):
                        person["track_id"] = int(track_id)
                pictures.write(name, compose_frame(image, people))
                for person in people:
                    del person["crop"], person["affine"], person["keypoints_px"]
                records.extend(people)
                bar.update(1)
    finally:  # whatever ends the run, the poses of every finished frame are written
        bar.close()
        pictures.close()
        write_poses(args.out, records, with_scores=any(r["keypoints_2d_score"] is not None
                                                       for r in records))
    seconds = max(time.perf_counter() - started, 1e-9)
    print("%d person(s) in %d frame(s) -> %s%s" % (
        len(records), bar.n, args.out,
        "; %d unreadable frame(s) skipped: %s" % (len(skipped), ", ".join(skipped[:5])
                                                   + (", ..." if len(skipped) > 5 else ""))
        if skipped else ""))
    print("%.1f s: %.2f frames/s, %.2f people/s (%s%s, models built before the clock starts, "
          "pictures included)" % (seconds, bar.n / seconds, len(records) / seconds, device,
                                  ", bf16 autocast" if args.amp else ""))


def main(argv=None):
    args = parse_args(argv)
    return run_main(lambda: run(args), "demo.py")


if __name__ == "__main__":
    sys.exit(main())
