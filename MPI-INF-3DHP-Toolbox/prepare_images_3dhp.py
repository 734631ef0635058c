"""Make the 256x192 crops the label files point at (the released video_to_images.py,
convert_to_small.py and convert_to_small_test.py).

  training  mpi_inf_3dhp/images/s_SS_seq_QQ_ca_CC/s_SS_seq_QQ_ca_CC_NNNNNN.jpg: frame N
            (1-based) of S<s>/Seq<q>/imageSequence/video_<c>.avi, for the F frames of each
            camera in data_train_3dhp.npz
  test      mpi_inf_3dhp_test_set/images/TS<k>/TS<k>_NNNNNN.jpg from TS<k>/imageSequence/
            img_NNNNNN.jpg, every annotated frame of data_test_3dhp.npz; the originals are kept
Each crop: the box of the label file's data_3d pelvis with the intrinsics of the camera itself
(table entry c; cam_8 for TS1-4, TS56 for TS5-6), cv2.warpAffine INTER_LINEAR with a zero
border, cv2.imwrite's default JPEG quality 95. QUIRK Q10: the TS5/TS6 frames are not undistorted.
QUIRK Q2 lives in the labels (generate_labels_3dhp.py --crop-intrinsics), not here.

Two routes for the training crops:
  default            each video is decoded once (OpenCV) and only the crops of its first F frames
                     are written: no full-size frames on disk.
  --via-full-frames  the released route: every frame of the video as a full-size JPEG first
                     (ffmpeg -qscale:v 3 where ffmpeg is installed, else OpenCV at quality 90),
                     then the first F are cropped in place; the frames after F stay full size
                     (QUIRK Q13). Its crops went through one more JPEG round trip (the full frame),
                     so their pixels differ from the default route's by that JPEG error.
A folder is marked complete (.complete in it, recording the frames and boxes) after its last
crop; a rerun skips complete folders (unless the video or the boxes changed) and redoes others.

  python prepare_images_3dhp.py --root DIR [--sets train test] [--via-full-frames]
                                [--backend auto] [--workers W]
"""
import glob
import hashlib
import os
import shutil
import subprocess

import cv2
import numpy as np

import mpi_toolbox as tb
from mvn import geometry
from mvn.mpi_inf_3dhp import facts as mpi
from mvn.images import ImageError, read_frame_bgr

MARKER = ".complete"
OPENCV_JPEG_QUALITY = 90     # full-size frames without ffmpeg: about what -qscale:v 3 gives


def crop_frames(frames_bgr, root_mm, intrinsics_index):
    """Yield the 256x192 crop of each full frame, boxes from the pelvis rows (F, 3)."""
    center, scale = mpi.crop_center_scale(root_mm, intrinsics_index)
    for i, frame in enumerate(frames_bgr):
        yield geometry.crop_image(frame, center[i], scale[i])


def boxes_digest(root_mm, intrinsics_index):
    """A short fingerprint of the boxes a folder is cropped with (for the up-to-date check)."""
    center, scale = mpi.crop_center_scale(root_mm, intrinsics_index)
    return hashlib.sha256(np.concatenate([center, scale], 1).astype(np.float64).tobytes()
                          ).hexdigest()[:16]


def _marker_matches(folder, record, source=None):
    """The folder was completed with `record` (and after `source`, the video, changed)."""
    marker = os.path.join(folder, MARKER)
    if tb.read_json(marker) != record:
        return False
    return source is None or not os.path.exists(source) or \
        os.path.getmtime(source) <= os.path.getmtime(marker)


def _start_folder(folder, stale_pattern):
    """An empty start: the marker and (a crashed run's) files matching the pattern removed."""
    os.makedirs(folder, exist_ok=True)
    marker = os.path.join(folder, MARKER)
    if os.path.exists(marker):
        os.remove(marker)
    for stale in glob.glob(os.path.join(glob.escape(folder), stale_pattern)):
        os.remove(stale)


def _write_jpeg(path, image):
    if not cv2.imwrite(path, image):
        raise tb.ToolboxError("cannot write %s: check the disk space and permissions" % path)


# --- training crops ----------------------------------------------------------------------------

def read_video_frames(path, count, what):
    """Yield the first `count` frames of a video (BGR); fewer in the file is an error."""
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise tb.ToolboxError("%s: OpenCV cannot open the video %s: is it a complete file? "
                              "Unzip it again from vnect_cameras.zip" % (what, path))
    try:
        for index in range(count):
            ok, frame = capture.read()
            if not ok:
                raise tb.ToolboxError("%s: video %s has %d frames but the labels use %d; the "
                                      "video is incomplete: download it again"
                                      % (what, path, index, count))
            yield frame
    finally:
        capture.release()


def _extract_full_frames(video, pattern, backend, what):
    """Every frame of the video as a full-size JPEG, 1-based, as the released ffmpeg call."""
    if backend == "ffmpeg":
        command = ["ffmpeg", "-nostdin", "-nostats", "-loglevel", "error", "-y", "-i", video,
                   "-qscale:v", "3", pattern]
        result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if result.returncode != 0:
            raise tb.ToolboxError("%s: ffmpeg failed on %s: %s (try --backend opencv)"
                                  % (what, video, result.stderr.strip()[-500:]))
        return
    capture = cv2.VideoCapture(video)
    if not capture.isOpened():
        raise tb.ToolboxError("%s: OpenCV cannot open the video %s: is it a complete file? "
                              "Unzip it again from vnect_cameras.zip" % (what, video))
    try:
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            index += 1
            if not cv2.imwrite(pattern % index, frame, [cv2.IMWRITE_JPEG_QUALITY,
                                                        OPENCV_JPEG_QUALITY]):
                raise tb.ToolboxError("cannot write %s: check the disk space and permissions"
                                      % (pattern % index))
    finally:
        capture.release()


def crop_train_video(job):
    """Crop the first F frames of one camera's video into its folder; returns F."""
    root, subject, sequence, camera, root_mm, route, backend = job
    what = tb.sequence_label(subject, sequence, camera)
    video = os.path.join(root, mpi.video_path(subject, sequence, camera))
    folder_name = mpi.train_image_folder(subject, sequence, camera)
    folder = os.path.join(root, mpi.TRAIN_FOLDER, "images", folder_name)
    paths = [os.path.join(root, mpi.train_image_path(subject, sequence, camera, i))
             for i in range(len(root_mm))]
    _start_folder(folder, folder_name + "_*.jpg")
    if route == "video":
        frames = read_video_frames(video, len(root_mm), what)
        for path, crop in zip(paths, crop_frames(frames, root_mm, camera)):
            _write_jpeg(path, crop)
    else:
        _extract_full_frames(video, os.path.join(folder, folder_name + "_%06d.jpg"), backend, what)
        center, scale = mpi.crop_center_scale(root_mm, camera)
        for i, path in enumerate(paths):
            if not os.path.exists(path):
                raise tb.ToolboxError("%s: video %s gave %d frames but the labels use %d; the "
                                      "video is incomplete: download it again"
                                      % (what, video, i, len(paths)))
            image = _read(path, what)
            if image.shape[0] == geometry.CROP_SHAPE[0]:   # already cropped (the released skip)
                continue
            _write_jpeg(path, geometry.crop_image(image, center[i], scale[i]))
    tb.write_json(os.path.join(folder, MARKER), _train_record(root_mm, camera, route))
    return len(paths)


def _train_record(root_mm, camera, route):
    return {"frames": len(root_mm), "route": route, "boxes": boxes_digest(root_mm, camera)}


def _read(path, what):
    try:
        return read_frame_bgr(path)
    except ImageError as error:
        raise tb.ToolboxError("%s: %s" % (what, error)) from None


def train_jobs(root, labels, route, backend):
    """One job per (sequence, camera) of the label file not complete yet (checking its video),
    and the number of complete ones."""
    jobs, complete = [], 0
    for name, (cameras, _fps) in labels.items():
        subject, sequence = tb.parse_sequence_name(name)
        for camera_key, entry in cameras.items():
            camera = int(camera_key)
            root_mm = np.asarray(entry["data_3d"])[:, mpi.ROOT_JOINT]           # (F, 3)
            folder = os.path.join(root, mpi.TRAIN_FOLDER, "images",
                                  mpi.train_image_folder(subject, sequence, camera))
            video = os.path.join(root, mpi.video_path(subject, sequence, camera))
            if _marker_matches(folder, _train_record(root_mm, camera, route), video):
                complete += 1
                continue
            if not os.path.isfile(video):
                raise tb.ToolboxError("%s: video %s not found: unzip vnect_cameras.zip of "
                                      "S%d/Seq%d into its imageSequence/ (see "
                                      "MPI-INF-3DHP-Toolbox/README.md)"
                                      % (tb.sequence_label(subject, sequence, camera), video,
                                         subject, sequence))
            jobs.append((root, subject, sequence, camera, root_mm, route, backend))
    return jobs, complete


# --- test crops --------------------------------------------------------------------------------

def crop_test_sequence(job):
    """Crop every annotated frame of one test sequence; returns the number of frames."""
    root, name, root_mm = job
    index = mpi.sequence_intrinsics_index(name)
    folder = os.path.join(root, mpi.TEST_FOLDER, "images", name)
    _start_folder(folder, name + "_*.jpg")
    center, scale = mpi.crop_center_scale(root_mm, index)
    for i in range(len(root_mm)):
        image = _read(os.path.join(root, mpi.test_frame_path(name, i)), name)
        _write_jpeg(os.path.join(root, mpi.test_image_path(name, i)),
                    geometry.crop_image(image, center[i], scale[i]))   # QUIRK Q10: distorted
    tb.write_json(os.path.join(folder, MARKER), _test_record(root_mm, index))
    return len(root_mm)


def _test_record(root_mm, index):
    return {"frames": len(root_mm), "boxes": boxes_digest(root_mm, index)}


def test_jobs(root, labels):
    """One job per test sequence not complete yet (checking its frames), and the number of
    complete ones."""
    jobs, complete = [], 0
    for name, entry in labels.items():
        root_mm = np.asarray(entry["data_3d"])[:, mpi.ROOT_JOINT]
        folder = os.path.join(root, mpi.TEST_FOLDER, "images", name)
        if _marker_matches(folder, _test_record(root_mm, mpi.sequence_intrinsics_index(name))):
            complete += 1
            continue
        for i in range(len(root_mm)):
            path = os.path.join(root, mpi.test_frame_path(name, i))
            if not os.path.isfile(path):
                raise tb.ToolboxError("%s: frame %s not found (the labels have %d frames): unzip "
                                      "mpi_inf_3dhp_test_set.zip again (see "
                                      "MPI-INF-3DHP-Toolbox/README.md)" % (name, path,
                                                                           len(root_mm)))
        jobs.append((root, name, root_mm))
    return jobs, complete


# --- the command -------------------------------------------------------------------------------

def load_labels(root, split):
    """The dict of a label file (read with the project's loader: only arrays, lists, dicts)."""
    from mvn.datasets.label_files import LabelError
    from mvn.mpi_inf_3dhp.dataset import read_label_npz
    path = os.path.join(root, mpi.LABEL_FILES[split])
    if not os.path.isfile(path):
        raise tb.ToolboxError("%s not found: run generate_labels_3dhp.py --root %s first"
                              % (path, root))
    try:
        return read_label_npz(path)
    except LabelError as error:
        raise tb.ToolboxError("%s; run generate_labels_3dhp.py --root %s again" % (error, root))


def resolve_backend(backend):
    ffmpeg = shutil.which("ffmpeg") is not None
    if backend == "auto":
        return "ffmpeg" if ffmpeg else "opencv"
    if backend == "ffmpeg" and not ffmpeg:
        raise tb.ToolboxError("--backend ffmpeg: ffmpeg is not installed (apt-get install "
                              "ffmpeg), or use --backend opencv")
    return backend


def prepare_images(root, sets=tb.SETS, via_full_frames=False, backend="auto", workers=1):
    """Crop the frames of the label files of `sets`; returns {split: frames cropped now}."""
    route = "full-frames" if via_full_frames else "video"
    backend = resolve_backend(backend) if via_full_frames else None
    planned = {}           # everything is checked before the long part
    if "train" in sets:
        planned["train"] = train_jobs(root, load_labels(root, "train"), route, backend)
    if "test" in sets:
        planned["test"] = test_jobs(root, load_labels(root, "test"))
    done, report = {}, []
    functions = {"train": crop_train_video, "test": crop_test_sequence}
    descriptions = {"train": "cropping training videos" + (" (via full frames, %s)" % backend
                                                           if via_full_frames else ""),
                    "test": "cropping test sequences"}
    for split, (jobs, complete) in planned.items():
        done[split] = sum(tb.parallel_map(functions[split], jobs, workers, descriptions[split],
                                          unit="folder"))
        report.append("%s: %d frames cropped in %d folder(s), %d folder(s) already complete"
                      % (split, done[split], len(jobs), complete))
    print("; ".join(report))
    return done


def main(argv=None):
    parser = tb.argument_parser(__doc__.split("\n")[0])
    tb.add_sets_argument(parser)
    parser.add_argument("--via-full-frames", action="store_true",
                        help="the released route: every video frame as a full-size JPEG, then "
                        "the used ones cropped in place (more disk; see the docstring)")
    parser.add_argument("--backend", choices=("auto", "ffmpeg", "opencv"), default="auto",
                        help="full-frame extraction with --via-full-frames: ffmpeg -qscale:v 3 "
                        "(as released) if installed, else OpenCV")
    args = parser.parse_args(argv)
    prepare_images(args.root, args.sets, args.via_full_frames, args.backend, args.workers)


if __name__ == "__main__":
    tb.run_cli(main)
