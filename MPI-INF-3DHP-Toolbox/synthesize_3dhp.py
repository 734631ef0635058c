"""Synthesise an MPI-INF-3DHP raw release (training and test set) in the real layout and formats.

MPI-INF-3DHP cannot be downloaded here; this writes what the dataset's download scripts leave,
for a skeleton moving in a 14-camera studio, so the rest of the toolbox (and training) runs
unchanged on it:
  mpi_inf_3dhp/S<s>/Seq<q>/annot.mat              MATLAB v5: cameras (0..13), frames, and per
      camera (cells of 14) annot2 (rows, 56) px, annot3 and univ_annot3 (rows, 84), camera mm,
      y down; annot3 projects onto annot2 with the camera's entry of the intrinsics table;
      univ_annot3 is annot3 rescaled about the pelvis to the universal skeleton's size (it does
      not project onto annot2); a few more annotation rows than frames used (and one more
      video frame than frames used)
  mpi_inf_3dhp/S<s>/Seq<q>/camera.calibration     text (the pipeline never reads it)
  mpi_inf_3dhp/S<s>/Seq<q>/imageSequence/video_<c>.avi   2048x2048, cameras 0 1 2 4 5 6 7 8
  mpi_inf_3dhp_test_set/TS<k>/annot_data.mat      MATLAB v7.3: valid_frame, activity_annotation
      (1..7), annot2 (2, 17, 1, n), annot3, univ_annot3 (3, 17, 1, n), 17-joint order
  mpi_inf_3dhp_test_set/TS<k>/imageSequence/img_<NNNNNN>.jpg   TS1-4 2048x2048 (cam_8 entry),
      TS5-6 1920x1080 (TS56 entry, drawn WITH its lens distortion, as annot2 is)
  synthetic_release.json                          the options and each sequence's frames used
The real release's frames-used table does not fit a short synthetic sequence, so the label step
takes the counts from synthetic_release.json (mpi_toolbox.frames_used). Deterministic: the same
seed gives the same bytes. A sequence whose files are all there is skipped on a rerun.

  python synthesize_3dhp.py --root DIR [--frames 4] [--test-frames 6] [--subjects 1 2 ...]
                            [--seed 0] [--workers W]
"""
import os
from functools import lru_cache

import cv2
import numpy as np

import mpi_toolbox as tb
from mvn.mpi_inf_3dhp import matfile
from mvn.mpi_inf_3dhp import facts as mpi
from mvn.synthetic import motion, render
from mvn.synthetic.camera import Camera

DEFAULT_FRAMES = 4
DEFAULT_TEST_FRAMES = 6
EXTRA_ROWS = 3                  # annotation rows beyond the frames used
EXTRA_VIDEO_FRAMES = 1          # video frames beyond them (never read: QUIRK Q13)
TEST_FPS = 25                   # the motion's time step in the test sequences
INVALID_RATE = 0.25             # test frames marked valid_frame = 0
BACKGROUND_STEP = 4             # the room is traced every 4th pixel (2048x2048 frames)
STUDIO_TARGET_MM = (0.0, 0.0, 950.0)

# The 28 joints of annot.mat from the 32 of the synthetic motion (mvn/synthetic/motion.py):
# (name, joint a, joint b, t) -> a + t * (b - a).
JOINTS_28_FROM_32 = (
    ("spine3", 12, 13, 0.5), ("spine4", 12, 13, 0.85), ("spine2", 12, 12, 0.0),
    ("spine", 0, 12, 0.5), ("pelvis", 0, 0, 0.0), ("neck", 13, 13, 0.0), ("head", 14, 15, 0.35),
    ("head_top", 15, 15, 0.0),
    ("left_clavicle", 13, 17, 0.45), ("left_shoulder", 17, 17, 0.0), ("left_elbow", 18, 18, 0.0),
    ("left_wrist", 19, 19, 0.0), ("left_hand", 22, 22, 0.0),
    ("right_clavicle", 13, 25, 0.45), ("right_shoulder", 25, 25, 0.0),
    ("right_elbow", 26, 26, 0.0), ("right_wrist", 27, 27, 0.0), ("right_hand", 30, 30, 0.0),
    ("left_hip", 6, 6, 0.0), ("left_knee", 7, 7, 0.0), ("left_ankle", 8, 8, 0.0),
    ("left_foot", 9, 9, 0.0), ("left_toe", 10, 10, 0.0),
    ("right_hip", 1, 1, 0.0), ("right_knee", 2, 2, 0.0), ("right_ankle", 3, 3, 0.0),
    ("right_foot", 4, 4, 0.0), ("right_toe", 5, 5, 0.0),
)
assert tuple(row[0] for row in JOINTS_28_FROM_32) == mpi.JOINT_NAMES_28


def _joint_weights():
    weights = np.zeros((mpi.NUM_JOINTS_RAW, motion.NUM_JOINTS_32))          # (28, 32)
    for i, (_, a, b, t) in enumerate(JOINTS_28_FROM_32):
        weights[i, a] += 1 - t
        weights[i, b] += t
    return weights


JOINT_WEIGHTS = _joint_weights()
PELVIS_28 = mpi.JOINT_NAMES_28.index("pelvis")

# The studio: camera id -> (azimuth deg, distance from the centre mm, height mm). Chest-high
# 0 2 4 7 8, knee-high 1, angled down 5 6 (the "vnect" set), other wall cameras 3 9 10, ceiling
# 11 12 13 (util/mpii_get_camera_set.m); all look at STUDIO_TARGET_MM.
STUDIO_RIG = {0: (0, 4200, 1300), 1: (25, 4000, 550), 2: (50, 4300, 1300), 3: (115, 4300, 1450),
              4: (-50, 4300, 1300), 5: (75, 4100, 2500), 6: (-75, 4100, 2500),
              7: (-25, 4400, 1300), 8: (90, 4200, 1300), 9: (180, 4300, 1450),
              10: (-115, 4300, 1450), 11: (0, 1300, 3500), 12: (120, 1300, 3500),
              13: (240, 1300, 3500)}
# Test sequences: (azimuth, distance, height) of the one camera; TS1-4 the studio's cam_8
# intrinsics, TS5-6 the outdoor GoPro's (table entry 14) with its distortion.
TEST_RIG = {"TS1": (90, 4200, 1300), "TS2": (70, 4200, 1300), "TS3": (110, 4300, 1300),
            "TS4": (90, 4000, 1300), "TS5": (30, 4800, 1500), "TS6": (-20, 4800, 1500)}
# H36M actions of the synthetic motion that stand in for the activities: training Seq1 (A1-A4)
# and Seq2 (A5-A8), and the test set's activity_annotation 1..7.
SEQUENCE_ACTIONS = {1: (14, 2, 7, 9, 8, 12), 2: (10, 5, 3, 4, 16, 13)}
ACTIVITY_ACTIONS = {1: (14, 2, 13), 2: (7,), 3: (9, 4), 4: (8, 12), 5: (10,), 6: (5, 15),
                    7: (3, 11, 16)}


def _rng(seed, *keys):
    """An independent generator per (seed, ...), whatever the order jobs run in."""
    return np.random.default_rng([seed, *keys])


def _rig_camera(azimuth_deg, distance_mm, height_mm, intrinsics_index):
    azimuth = np.radians(azimuth_deg)
    centre = [distance_mm * np.cos(azimuth), distance_mm * np.sin(azimuth), height_mm]
    return Camera.look_at(centre, STUDIO_TARGET_MM, mpi.INTRINSICS[intrinsics_index, :2],
                          mpi.INTRINSICS[intrinsics_index, 2:], mpi.DISTORTION[intrinsics_index])


def studio_camera(camera):
    """Camera `camera` (0..13) of the studio, with its entry of the intrinsics table."""
    return _rig_camera(*STUDIO_RIG[camera], camera)


def test_camera(name):
    return _rig_camera(*TEST_RIG[name], mpi.sequence_intrinsics_index(name))


@lru_cache(maxsize=8)
def background(seed, view):
    """The empty room seen by a studio camera id or a test sequence's camera (cached)."""
    if isinstance(view, str):
        camera, (width, height) = test_camera(view), mpi.sequence_resolution(view)
    else:
        camera, (width, height) = studio_camera(view), mpi.TRAIN_RESOLUTION
    return render.render_background(camera, width, height, _rng(seed, 3, hash_view(view)),
                                    step=BACKGROUND_STEP)


def hash_view(view):
    """A stable integer for a camera id or a test sequence name (seed material)."""
    return view if isinstance(view, int) else 100 + mpi.TEST_SEQUENCES.index(view)


# --- poses -------------------------------------------------------------------------------------

def universal_ratio(offsets_mm):
    """univ_annot3 / annot3 size: the universal skeleton's bone lengths over the subject's."""
    return (np.linalg.norm(motion.REST_OFFSETS_MM, axis=1).sum()
            / np.linalg.norm(offsets_mm, axis=1).sum())


def camera_annotations(world_32_mm, camera, ratio):
    """annot2 (N, 28, 2) px, annot3 and univ_annot3 (N, 28, 3) camera mm of one camera."""
    world_28 = np.einsum("kj,njc->nkc", JOINT_WEIGHTS, world_32_mm)              # (N, 28, 3)
    annot3 = camera.to_camera(world_28)
    annot2 = camera.project(annot3)
    pelvis = annot3[:, PELVIS_28:PELVIS_28 + 1]
    univ = pelvis + ratio * (annot3 - pelvis)
    return annot2, annot3, univ


def subject_model(seed, subject):
    """Bone offsets (32, 3) mm and girth of a subject (training 1..8, test 101..106)."""
    return motion.subject_body(_rng(seed, subject, 1))


# --- writing -----------------------------------------------------------------------------------

def write_video(path, frames_bgr, fps):
    """(H, W, 3) uint8 frames -> Motion-JPEG AVI (OpenCV's writer; deterministic), renamed into
    place when complete."""
    tmp = tb.partial_path(path)
    writer = None
    for frame in frames_bgr:
        if writer is None:
            height, width = frame.shape[:2]
            writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
            if not writer.isOpened():
                raise tb.ToolboxError("OpenCV cannot write %s as Motion-JPEG AVI: install "
                                      "opencv-python-headless (with its bundled FFmpeg)" % path)
        writer.write(frame)
    writer.release()
    os.replace(tmp, path)


def write_mat_v5(path, variables):
    """annot.mat (scipy.io.savemat) with the header's creation time fixed (same seed, same
    bytes), renamed into place when complete."""
    tmp = tb.partial_path(path)
    matfile.write_v5(tmp, variables)
    with open(tmp, "r+b") as f:
        header = f.read(116)
        stamp = header.find(b"Created on: ")
        if stamp >= 0:
            f.seek(stamp)
            f.write(b"Created on: Thu Jan  1 00:00:00 1970".ljust(116 - stamp, b" "))
    os.replace(tmp, path)


def _cells(arrays, width):
    """A MATLAB cell array of one (rows, width) matrix per camera: (14, 1) object array."""
    cells = np.empty((len(arrays), 1), dtype=object)
    for i, array in enumerate(arrays):
        cells[i, 0] = np.ascontiguousarray(array.reshape(len(array), width), dtype=np.float64)
    return cells


def calibration_text(cameras, resolution):
    """A camera.calibration in the style of the test set's .calib files (never read)."""
    width, height = resolution
    lines = ["tc camera calibration v0.3"]
    for camera_id, camera in cameras:
        sensor = 10.0
        focal_mm = camera.f_px[0] * sensor / width
        offset_mm = (camera.c_px - [width / 2, height / 2]) * sensor / np.array([width, height])
        lines += ["camera\t%d\tcam_%d" % (camera_id, camera_id), "\tframe\t0",
                  "\t\tsensorSize\t%g\t%g\t# in mm" % (sensor, sensor * height / width),
                  "\t\tfocalLength\t%.6f\t# in mm" % focal_mm,
                  "\t\tpixelAspect\t%.6f" % (camera.f_px[1] / camera.f_px[0]),
                  "\t\tcenterOffset\t%.6f\t%.6f\t# in mm (positive values move right and down)"
                  % tuple(offset_mm),
                  "\t\tdistortionModel\tOpenCV",
                  "\t\tdistortion\t%s" % " ".join("%.9f" % v for v in camera.distortion),
                  "\t\t\torigin\t%.2f\t%.2f\t%.2f" % tuple(camera.T_mm),
                  "\t\t\tup\t%.6f\t%.6f\t%.6f" % tuple(-camera.R[1]),
                  "\t\t\tright\t%.6f\t%.6f\t%.6f" % tuple(camera.R[0])]
    return "\n".join(lines) + "\n"


# --- one training sequence ---------------------------------------------------------------------

def sequence_folder(root, subject, sequence):
    return os.path.dirname(os.path.join(root, mpi.annot_path(subject, sequence)))


def sequence_complete(root, subject, sequence):
    """annot.mat is written last: with it and every video there, the sequence is done."""
    paths = [os.path.join(root, mpi.annot_path(subject, sequence))]
    paths += [os.path.join(root, mpi.video_path(subject, sequence, c)) for c in mpi.TRAIN_CAMERAS]
    return all(os.path.isfile(p) for p in paths)


def synthesize_sequence(job):
    """Write one training sequence (videos, calibration, then annot.mat)."""
    root, subject, sequence, frames, seed = job
    fps = mpi.SEQUENCE_INFO[mpi.sequence_name(subject, sequence)][1]
    rows = frames + EXTRA_ROWS
    offsets, girth = subject_model(seed, subject)
    appearance = render.subject_appearance(_rng(seed, subject, sequence, 2))   # clothing set
    rng = _rng(seed, subject, sequence, 4)
    action = int(rng.choice(SEQUENCE_ACTIONS[sequence]))
    world_mm = motion.trial_world_poses(offsets, action, rows, fps, rng)         # (rows, 32, 3)
    ratio = universal_ratio(offsets)
    cameras = [(c, studio_camera(c)) for c in range(len(STUDIO_RIG))]
    annotations = [camera_annotations(world_mm, camera, ratio) for _, camera in cameras]

    folder = sequence_folder(root, subject, sequence)
    os.makedirs(os.path.join(folder, "imageSequence"), exist_ok=True)
    for camera_id in mpi.TRAIN_CAMERAS:
        camera = cameras[camera_id][1]
        write_video(os.path.join(root, mpi.video_path(subject, sequence, camera_id)),
                    (render.render_frame(background(seed, camera_id), world_mm[i], camera,
                                         appearance, girth)
                     for i in range(frames + EXTRA_VIDEO_FRAMES)), fps)
    with open(os.path.join(folder, "camera.calibration"), "w") as f:
        f.write(calibration_text(cameras, mpi.TRAIN_RESOLUTION))
    write_mat_v5(os.path.join(root, mpi.annot_path(subject, sequence)), {
        "cameras": np.arange(len(cameras), dtype=np.float64),                  # (1, 14)
        "frames": np.arange(rows, dtype=np.float64)[:, None],                   # (rows, 1)
        "annot2": _cells([a[0] for a in annotations], 2 * mpi.NUM_JOINTS_RAW),
        "annot3": _cells([a[1] for a in annotations], 3 * mpi.NUM_JOINTS_RAW),
        "univ_annot3": _cells([a[2] for a in annotations], 3 * mpi.NUM_JOINTS_RAW),
    })
    return subject, sequence


# --- one test sequence -------------------------------------------------------------------------

def test_complete(root, name, frames):
    paths = [os.path.join(root, mpi.test_annot_path(name))]
    paths += [os.path.join(root, mpi.test_frame_path(name, i)) for i in range(frames)]
    return all(os.path.isfile(p) for p in paths)


def test_motion(seed, name, frames, offsets):
    """World poses (frames, 32, 3) and activity labels (frames,): up to 3 activity segments."""
    rng = _rng(seed, hash_view(name), 4)
    segments = np.array_split(np.arange(frames), min(frames, 3))
    poses, activities = [], []
    for segment in segments:
        activity = int(rng.integers(1, 8))
        action = int(rng.choice(ACTIVITY_ACTIONS[activity]))
        poses.append(motion.trial_world_poses(offsets, action, len(segment), TEST_FPS, rng))
        activities.append(np.full(len(segment), activity))
    return np.concatenate(poses), np.concatenate(activities)


def valid_flags(rng, frames):
    """(frames,) 1/0: about INVALID_RATE invalid, at least one valid and (n > 1) one invalid."""
    valid = (rng.random(frames) >= INVALID_RATE).astype(np.float64)
    if frames > 1 and valid.all():
        valid[rng.integers(frames)] = 0
    if not valid.any():
        valid[0] = 1
    return valid


def _matlab_poses(poses):
    """(n, 17, c) -> MATLAB (c, 17, 1, n) float32, the layout of annot_data.mat."""
    return np.ascontiguousarray(poses.transpose(2, 1, 0)[:, :, None, :], dtype=np.float32)


def synthesize_test_sequence(job):
    """Write one test sequence (frames, then annot_data.mat); returns (name, valid frames)."""
    root, name, frames, seed = job
    subject = 100 + hash_view(name)
    offsets, girth = subject_model(seed, subject)
    appearance = render.subject_appearance(_rng(seed, subject, 2))
    world_mm, activities = test_motion(seed, name, frames, offsets)
    camera = test_camera(name)
    annot2, annot3, univ = camera_annotations(world_mm, camera, universal_ratio(offsets))
    joints = list(mpi.JOINTS_17_FROM_28)
    valid = valid_flags(_rng(seed, hash_view(name), 5), frames)

    folder = os.path.join(root, mpi.TEST_FOLDER, name, "imageSequence")
    os.makedirs(folder, exist_ok=True)
    for i in range(frames):
        image = render.render_frame(background(seed, name), world_mm[i], camera, appearance, girth)
        path = os.path.join(root, mpi.test_frame_path(name, i))
        tmp = tb.partial_path(path)
        if not cv2.imwrite(tmp, image):
            raise tb.ToolboxError("cannot write %s: check the disk space and permissions" % path)
        os.replace(tmp, path)
    path = os.path.join(root, mpi.test_annot_path(name))
    tmp = tb.partial_path(path)
    matfile.write_v73(tmp, {
        "valid_frame": valid,                                                   # (1, n)
        "activity_annotation": activities.astype(np.float64),                   # (1, n)
        "annot2": _matlab_poses(annot2[:, joints]),                              # (2, 17, 1, n)
        "annot3": _matlab_poses(annot3[:, joints]),                              # (3, 17, 1, n)
        "univ_annot3": _matlab_poses(univ[:, joints]),                           # (3, 17, 1, n)
    })
    os.replace(tmp, path)
    return name, int(valid.sum())


# --- the release -------------------------------------------------------------------------------

def _release_description(root, frames, test_frames, seed):
    """The existing synthetic_release.json of `root` (checked against the options) or a new one."""
    release = tb.read_synthetic_release(root)
    if release is None:
        for folder in (mpi.TRAIN_FOLDER, mpi.TEST_FOLDER):
            if os.path.isdir(os.path.join(root, folder)) and os.listdir(os.path.join(root, folder)):
                raise tb.ToolboxError("%s already holds %s/ without %s: it is not a synthetic "
                                      "release; synthesise into another --root"
                                      % (root, folder, tb.SYNTHETIC_RELEASE_FILE))
        return {"generator": "MPI-INF-3DHP-Toolbox/synthesize_3dhp.py", "seed": seed,
                "frames": frames, "test_frames": test_frames, "sequences": {},
                "test_sequences": {}}
    made = (release.get("seed"), release.get("frames"), release.get("test_frames"))
    if made != (seed, frames, test_frames):
        raise tb.ToolboxError("%s holds a synthetic release made with --seed %s --frames %s "
                              "--test-frames %s: rerun with those options to complete it or add "
                              "subjects, or synthesise into another --root" % ((root,) + made))
    return release


def synthesize(root, subjects=mpi.SUBJECTS, frames=DEFAULT_FRAMES,
               test_frames=DEFAULT_TEST_FRAMES, seed=0, workers=1):
    """Synthesise the selected training subjects and (test_frames > 0) the test set under
    `root`; sequences already complete are skipped. Returns the release description."""
    for s in subjects:
        if s not in mpi.SUBJECTS:
            raise tb.ToolboxError("unknown subject %r: MPI-INF-3DHP subjects are 1..8" % s)
    if frames < 1 or test_frames < 0:
        raise tb.ToolboxError("--frames must be at least 1 and --test-frames at least 0 (got %d, "
                              "%d)" % (frames, test_frames))
    os.makedirs(root, exist_ok=True)
    release = _release_description(root, frames, test_frames, seed)
    description_path = os.path.join(root, tb.SYNTHETIC_RELEASE_FILE)
    for s in subjects:
        for q in mpi.SEQUENCES:
            name = mpi.sequence_name(s, q)
            release["sequences"][name] = {"frames": frames, "fps": mpi.SEQUENCE_INFO[name][1],
                                          "annotation_rows": frames + EXTRA_ROWS,
                                          "video_frames": frames + EXTRA_VIDEO_FRAMES}
    tb.write_json(description_path, release, only_if_changed=True)

    jobs = [(root, s, q, frames, seed) for s in sorted(set(subjects)) for q in mpi.SEQUENCES
            if not sequence_complete(root, s, q)]
    for _ in tb.parallel_map(synthesize_sequence, jobs, workers, "synthesising sequences"):
        pass
    test_jobs = [(root, name, test_frames, seed) for name in mpi.TEST_SEQUENCES
                 if test_frames and not test_complete(root, name, test_frames)]
    for name, valid in tb.parallel_map(synthesize_test_sequence, test_jobs, workers,
                                       "synthesising test sequences"):
        release["test_sequences"][name] = {"frames": test_frames, "valid_frames": valid}
    tb.write_json(description_path, release, only_if_changed=True)
    print("synthetic MPI-INF-3DHP in %s: %d training and %d test sequence(s) written, %d and %d "
          "already complete" % (root, len(jobs), len(test_jobs), 2 * len(set(subjects)) - len(jobs),
                                (len(mpi.TEST_SEQUENCES) if test_frames else 0) - len(test_jobs)))
    return release


def main(argv=None):
    parser = tb.argument_parser(__doc__.split("\n")[0])
    parser.add_argument("--subjects", type=int, nargs="+", default=list(mpi.SUBJECTS),
                        help="training subjects to synthesise (1..8)")
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES,
                        help="frames used per training video (annot.mat has %d rows more)"
                        % EXTRA_ROWS)
    parser.add_argument("--test-frames", type=int, default=DEFAULT_TEST_FRAMES,
                        help="frames per test sequence TS1..TS6 (0: no test set)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    args = parser.parse_args(argv)
    synthesize(args.root, args.subjects, args.frames, args.test_frames, args.seed, args.workers)


if __name__ == "__main__":
    tb.run_cli(main)
