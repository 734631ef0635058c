"""A 2D heatmap detector run over every frame of a labelled dataset, resumable: the detection loop
both toolboxes' detections commands share (H36M-Toolbox/detect_2d.py,
MPI-INF-3DHP-Toolbox/detect_2d_3dhp.py); each writes the joints into its own label files.

The detector is a HeatmapDetector (mvn/detector.py) loaded from a stage-1 checkpoint or a
published HRNet COCO file. Each frame's crop goes through the flip test (unless
--no-flip-test) and the argmax + quarter-pixel decoding (mvn.detector.detect). A split's frames
are cut into chunks of --chunk-frames, each saved in <root>/.detect_2d_<NAME>/ once finished; a
run started again reads the finished chunks and computes only the others, with the same results
as an uninterrupted run. The folder records the run's settings: chunks of other settings are
refused, not mixed in.
"""
import json
import os

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from mvn.batch import prepare_images
from mvn.coco import HEAD_PREFIX
from mvn.detector import HeatmapDetector, detect, load_detector_weights
from mvn.stopping import worker_init
from mvn.errors import CAPFError
from mvn.models import BACKBONES, build_backbone
from mvn.models.weights import WeightsError


class DetectionsError(CAPFError):
    """A problem with the detections command's arguments or its unfinished run; says what to do."""


def add_arguments(parser):
    """The options every detections command takes (the toolbox's parser adds --root, --workers:
    the DataLoader's worker processes)."""
    parser.add_argument("--weights", required=True, help="a stage-1 checkpoint (train.py with "
                        "task: detector: checkpoints/backbone.pth or best_epoch.bin) or an HRNet "
                        "COCO file")
    parser.add_argument("--name", required=True, help="the detections' name (the label "
                        "columns' suffix; dataset.keypoints_2d selects them)")
    parser.add_argument("--backbone", default="hrnet_32", help="the detector's HRNet")
    parser.add_argument("--no-flip-test", dest="flip_test", action="store_false")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--chunk-frames", type=int, default=4096,
                        help="frames per resumable chunk (a multiple of --batch-size)")
    parser.add_argument("--device", default="cpu")
    return parser


def check_arguments(args):
    if not args.name.isidentifier() or args.name == "cpn":
        raise DetectionsError("--name %r: a word of letters, digits and '_' (not 'cpn', the "
                              "released labels' name)" % args.name)
    if args.batch_size < 1 or args.chunk_frames % args.batch_size:
        raise DetectionsError("--chunk-frames must be a multiple of --batch-size")


def partial_folder(root, name):
    """Where the finished chunks of an unfinished run of --name `name` are kept."""
    return os.path.join(root, ".detect_2d_%s" % name)


def run_settings(args, frames, **extra):
    """What a run's chunks depend on: the weights file, the options, the frames per split."""
    stat = os.stat(args.weights)
    settings = {"weights": os.path.abspath(args.weights), "bytes": stat.st_size,
                "backbone": args.backbone, "flip_test": args.flip_test,
                "chunk_frames": args.chunk_frames, "batch_size": args.batch_size,
                "frames": list(frames)}
    settings.update(extra)
    return settings


def check_resumable(folder, settings):
    """The settings of the run that made `folder` must be these (else its chunks are not)."""
    path = os.path.join(folder, "settings.json")
    if os.path.isfile(path):
        with open(path) as f:
            before = json.load(f)
        if before != settings:
            changed = sorted(k for k in settings if before.get(k) != settings[k])
            raise DetectionsError("%s holds the chunks of a run with other settings (%s): delete "
                                  "the folder, or use another --name"
                                  % (folder, ", ".join(changed)))
        return
    os.makedirs(folder, exist_ok=True)
    with open(path, "w") as f:
        json.dump(settings, f, indent=1)


def remove_partial(folder):
    """The finished run's chunks and settings, and their folder, deleted."""
    for name in sorted(os.listdir(folder)):
        os.remove(os.path.join(folder, name))
    os.rmdir(folder)


def save_atomic(path, array):
    temporary = path + ".tmp.npy"
    np.save(temporary, array)
    os.replace(temporary, path)


def build_model(backbone, weights, device, num_joints=17):
    """The HeatmapDetector of HRNet `backbone` with the weights of file `weights`, in eval mode."""
    row = BACKBONES.get(backbone)
    if row is None or HEAD_PREFIX not in row.head_prefixes:
        raise DetectionsError("--backbone %s: the detector is an HRNet with its heatmap head; use "
                              "one of %s" % (backbone, ", ".join(
                                  n for n, r in BACKBONES.items() if HEAD_PREFIX in r.head_prefixes)))
    if not os.path.isfile(weights):
        raise DetectionsError("--weights %s does not exist: pass a stage-1 run's "
                              "checkpoints/backbone.pth or a published HRNet file" % weights)
    model = HeatmapDetector(build_backbone(backbone), num_joints)
    try:
        load_detector_weights(model, weights)
    except WeightsError as error:
        raise DetectionsError("%s (is --backbone %s the network it was made for?)"
                              % (error, backbone)) from None
    return model.to(device).eval()


def detect_joints(model, images, flip_permutation, convert=None):
    """(B, J, 2) float32 joints in crop pixels; `convert` maps the heatmaps' keypoints to the
    dataset's joints (e.g. mvn.coco.coco_to_h36m), None: they are the dataset's."""
    keypoints = detect(model, images, flip_permutation).cpu().numpy()  # (B, K, 2)
    if convert is not None:
        keypoints = convert(keypoints)
    return keypoints.astype(np.float32)


def detect_split(model, dataset, folder, split, args, flip_permutation, device, convert=None):
    """(N, J, 2) float32 crop pixels of every frame of `dataset` (a LabelledCropDataset): chunk
    by chunk, each saved in `folder` as it is finished; chunks already there are read, not
    computed again."""
    chunk = args.chunk_frames
    chunks = range(0, len(dataset), chunk)
    paths = [os.path.join(folder, "%s_%07d.npy" % (split, start)) for start in chunks]
    todo = [i for i, path in enumerate(paths) if not os.path.isfile(path)]
    indices = [j for i in todo for j in range(chunks[i], min(chunks[i] + chunk, len(dataset)))]
    loader = DataLoader(Subset(dataset, indices), batch_size=args.batch_size,
                        num_workers=args.workers, worker_init_fn=worker_init if args.workers else None)
    pending = []
    with torch.no_grad(), tqdm(total=len(indices), desc="detecting (%s)" % split, unit="frame",
                               dynamic_ncols=True) as bar:
        for batch in loader:
            images = prepare_images(batch["images"].to(device), args.backbone)
            joints = detect_joints(model, images, flip_permutation, convert)
            pending.append(joints)
            bar.update(len(joints))
            stacked = np.concatenate(pending)
            while todo and len(stacked) >= min(chunk, len(dataset) - chunks[todo[0]]):
                size = min(chunk, len(dataset) - chunks[todo[0]])
                save_atomic(paths[todo.pop(0)], stacked[:size])
                stacked = stacked[size:]
            pending = [stacked] if len(stacked) else []
    return np.concatenate([np.load(path) for path in paths]) if paths else np.zeros((0, 17, 2))
