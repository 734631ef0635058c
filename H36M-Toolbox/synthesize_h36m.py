"""Synthesise a Human3.6M raw release (videos, pose CDFs, CPN detections) in the real layout.

Human3.6M cannot be downloaded here; this writes the files the real archives and VideoPose3D's
detection release contain, in their formats, for a skeleton moving per action in the real camera
rigs, so the rest of the toolbox (and training) runs unchanged on it. Deterministic for a seed:
the same bytes on every run (OpenCV's mp4v writer is deterministic, checked by the tests).

  python synthesize_h36m.py --root DIR [--subjects 1 5 9] [--actions 2 3] [--frames 50] [--seed 0]
"""
import os
from functools import lru_cache

import cv2
import numpy as np

import h36m_toolbox as tb
from mvn import geometry
from mvn.datasets.label_files import read_npz_array
from mvn.human36m import facts as h36m
from mvn.synthetic import motion as synthetic_motion
from mvn.synthetic import render as synthetic_render
from mvn.synthetic.camera import Camera

DEFAULT_FRAMES = 50
PIXEL_NOISE_PX = 2.0            # CPN-like detection noise: a few pixels ...
OUTLIER_RATE = 0.03             # ... and sometimes more
OUTLIER_NOISE_PX = 12.0
METADATA = {"layout_name": "h36m", "num_joints": 17,
            "keypoints_symmetry": [list(h36m.JOINTS_LEFT), list(h36m.JOINTS_RIGHT)]}


def _rng(seed, *keys):
    """An independent generator per (seed, subject, ...), whatever the order jobs run in."""
    return np.random.default_rng([seed, *keys])


def subject_model(seed, subject):
    """Bone offsets (32, 3) mm, girth factor and clothing colours of a synthetic subject."""
    offsets, girth = synthetic_motion.subject_body(_rng(seed, subject, 1))
    return offsets, girth, synthetic_render.subject_appearance(_rng(seed, subject, 2))


@lru_cache(maxsize=8)
def room_background(seed, subject, camera_index):
    """The empty room seen by a camera of a subject (cached: every frame starts from it)."""
    width, height = h36m.resolution(camera_index)
    return synthetic_render.render_background(Camera.from_h36m(h36m.camera(subject, camera_index)),
                                              width, height, _rng(seed, subject, 3, camera_index))


def write_video(path, frames_bgr, size, fps=h36m.FPS):
    """Write an iterable of (H, W, 3) uint8 frames, size (W, H), as MPEG-4 part 2 (OpenCV 'mp4v').

    Frames are streamed (not held in memory) into a temporary file that is renamed when complete.
    """
    width, height = size
    tmp = os.path.join(os.path.dirname(path), ".partial." + os.path.basename(path))
    writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise tb.ToolboxError("OpenCV cannot write %s with the mp4v codec: install "
                              "opencv-python-headless (with its bundled FFmpeg)" % path)
    for frame in frames_bgr:
        assert frame.shape == (height, width, 3), frame.shape
        writer.write(frame)
    writer.release()
    os.replace(tmp, path)


def detections_from(joints_2d_px, rng):
    """CPN-like detections (N, 17, 2) float32: the true 17 joints + noise, rare large misses."""
    true_17 = joints_2d_px[:, list(h36m.JOINTS_17_FROM_32)]                  # (N, 17, 2)
    noise = rng.normal(0.0, PIXEL_NOISE_PX, size=true_17.shape)
    outliers = rng.random(true_17.shape[:2]) < OUTLIER_RATE
    noise += outliers[..., None] * rng.normal(0.0, OUTLIER_NOISE_PX, size=true_17.shape)
    return (true_17 + noise).astype(np.float32)


def synthesize_trial(job):
    """Write one trial (world CDF; per camera: video, mono and D2 CDFs); return its detections."""
    root, subject, action, subaction, frames, seed = job
    offsets, girth, appearance = subject_model(seed, subject)
    world_mm = synthetic_motion.trial_world_poses(offsets, action, frames, h36m.FPS,
                                                  _rng(seed, subject, action, subaction))  # (N, 32, 3)
    trial = tb.Sequence(subject, action, subaction, 0)
    for folder in ("Videos", "Poses_D3_Positions_mono", "Poses_D2_Positions", "Poses_D3_Positions"):
        os.makedirs(os.path.join(trial.subject_dir(root), folder), exist_ok=True)
    tb.write_pose_cdf(trial.pose3d_world_path(root), world_mm.reshape(frames, 96))
    detections = []
    for camera_index in range(len(h36m.CAMERA_IDS)):
        sequence = tb.Sequence(subject, action, subaction, camera_index)
        camera = h36m.camera(subject, camera_index)
        camera_mm = geometry.world_to_camera(world_mm, camera["R"], camera["T"])    # (N, 32, 3)
        pixels = geometry.project_to_2d(camera_mm, camera["f"], camera["c"], camera["k"],
                                        camera["p"])                               # (N, 32, 2)
        tb.write_pose_cdf(sequence.pose3d_mono_path(root), camera_mm.reshape(frames, 96))
        tb.write_pose_cdf(sequence.pose2d_path(root), pixels.reshape(frames, 64))
        background = room_background(seed, subject, camera_index)
        render_camera = Camera.from_h36m(camera)
        write_video(sequence.video_path(root),
                    (synthetic_render.render_frame(background, world_mm[i], render_camera,
                                                   appearance, girth)
                     for i in range(frames)), h36m.resolution(camera_index))
        detections.append(detections_from(pixels, _rng(seed, subject, action, subaction, 10 + camera_index)))
    return subject, action, subaction, detections


def write_detections(path, new_entries):
    """Write (or update) the CPN file: positions_2d[subject][name] = [4 x (N, 17, 2) float32].

    Entries of other sequences already in the file are kept; subjects and sequences are ordered
    as in the release, so the bytes do not depend on the order things were synthesised in.
    """
    positions = {}
    if os.path.exists(path):
        positions = read_npz_array(path, "positions_2d").item()  # arrays, lists, dicts only
    for (subject, action, subaction), arrays in new_entries.items():
        name = h36m.detection_names(subject, action, subaction)[-1]  # QUIRK: renamed actions
        positions.setdefault("S%d" % subject, {})[name] = arrays
    ordered = {}
    for key in sorted(positions, key=lambda k: (int(k[1:]) if k[1:].isdigit() else 1 << 30, k)):
        subject = int(key[1:]) if key[1:].isdigit() else None
        known = []
        if subject in h36m.ALL_SUBJECTS:
            known = [h36m.detection_names(subject, a, sa)[-1] for a in h36m.ACTIONS for sa in (1, 2)]
        names = [n for n in known if n in positions[key]] + \
                sorted(n for n in positions[key] if n not in known)
        # astype: fresh arrays with numpy's own dtype instances, whatever process made them, so
        # the pickle inside the npz does not depend on it
        ordered[key] = {name: [np.asarray(a).astype(np.float32) for a in positions[key][name]]
                        for name in names}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = os.path.join(os.path.dirname(path), ".partial." + os.path.basename(path))
    with open(tmp, "wb") as f:
        np.savez_compressed(f, positions_2d=ordered, metadata=METADATA)
    os.replace(tmp, path)


def synthesize(root, subjects=h36m.ALL_SUBJECTS, actions=h36m.ACTIONS, frames=DEFAULT_FRAMES,
               seed=0, workers=1):
    """Synthesise the raw release under `root`; returns the detection file's path."""
    tb.check_subjects_actions(subjects, actions)
    if frames < 1:
        raise tb.ToolboxError("--frames must be at least 1 (got %d)" % frames)
    jobs = [(root, s, a, sa, frames, seed) for s in subjects for a in actions for sa in (1, 2)]
    detections = {}
    for subject, action, subaction, arrays in tb.parallel_map(synthesize_trial, jobs, workers,
                                                              "synthesising trials"):
        detections[(subject, action, subaction)] = arrays
    path = os.path.join(root, tb.DETECTIONS_FILE)
    write_detections(path, detections)
    return path


def main(argv=None):
    parser = tb.argument_parser(__doc__.split("\n")[0])
    tb.add_selection_arguments(parser)
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES,
                        help="frames per sequence (50 fps)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    args = parser.parse_args(argv)
    synthesize(args.root, args.subjects, args.actions, args.frames, args.seed, args.workers)


if __name__ == "__main__":
    tb.run_cli(main)
