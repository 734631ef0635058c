"""Extract every video frame to images/<seq>/<seq>_NNNNNN.jpg (1-based), like the reference.

The reference runs `ffmpeg -i <video> -qscale:v 3 <seq>_%06d.jpg` per video. This does the same
when ffmpeg is installed and otherwise decodes with OpenCV and writes JPEG quality 90 (about what
qscale 3 gives). A sequence is marked complete (file `.complete` in its folder) only after its last
frame is written; a rerun skips complete sequences (unless the video is newer than the mark) and
redoes any other from scratch.

  python video_to_images.py --root DIR [--subjects 1 5 ...] [--actions 2 3 ...] [--backend auto]
"""
import glob
import os
import shutil
import subprocess

import cv2

import h36m_toolbox as tb
from mvn.human36m import facts as h36m

MARKER = ".complete"
OPENCV_JPEG_QUALITY = 90


def ffmpeg_available():
    return shutil.which("ffmpeg") is not None


def _extract_ffmpeg(video_path, pattern):
    command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", video_path,
               "-qscale:v", "3", "-start_number", "1", pattern]
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise tb.ToolboxError("ffmpeg failed on %s: %s (try --backend opencv)"
                              % (video_path, result.stderr.strip()[-500:]))


def _extract_opencv(video_path, pattern):
    capture = cv2.VideoCapture(video_path)
    if not capture.isOpened():
        raise tb.ToolboxError("OpenCV cannot open the video %s: is it a complete mp4 file? "
                              "Re-extract it from the archive" % video_path)
    index = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            index += 1
            if not cv2.imwrite(pattern % index, frame, [cv2.IMWRITE_JPEG_QUALITY, OPENCV_JPEG_QUALITY]):
                raise tb.ToolboxError("cannot write %s: check the disk space and permissions"
                                      % (pattern % index))
    finally:
        capture.release()


def is_complete(root, sequence):
    """Frames extracted completely, from the video as it is now (or the video was removed)."""
    marker = os.path.join(sequence.image_dir(root), MARKER)
    if not os.path.exists(marker):
        return False
    video = sequence.video_path(root)
    return not os.path.exists(video) or os.path.getmtime(video) <= os.path.getmtime(marker)


def extract_sequence(job):
    """Extract one video into its folder, from scratch; returns the number of frames."""
    root, sequence, backend = job
    folder = sequence.image_dir(root)
    marker = os.path.join(folder, MARKER)
    if os.path.exists(marker):
        os.remove(marker)
    os.makedirs(folder, exist_ok=True)
    for stale in glob.glob(os.path.join(glob.escape(folder), "*.jpg")):  # a crashed earlier run
        os.remove(stale)
    pattern = os.path.join(folder, h36m.frame_file_pattern(sequence.image_dir_name))
    if backend == "ffmpeg":
        _extract_ffmpeg(sequence.video_path(root), pattern)
    else:
        _extract_opencv(sequence.video_path(root), pattern)
    count = len(glob.glob(os.path.join(glob.escape(folder), "*.jpg")))
    with open(marker + ".tmp", "w") as f:
        f.write("%d\n" % count)
    os.replace(marker + ".tmp", marker)
    return count


def video_to_images(root, subjects=h36m.ALL_SUBJECTS, actions=h36m.ACTIONS, backend="auto",
                    workers=1):
    """Extract the frames of all selected sequences; returns {sequence: frames written or None}."""
    tb.check_subjects_actions(subjects, actions)
    if backend == "auto":
        backend = "ffmpeg" if ffmpeg_available() else "opencv"
    if backend == "ffmpeg" and not ffmpeg_available():
        raise tb.ToolboxError("--backend ffmpeg: ffmpeg is not installed (apt-get install ffmpeg), "
                              "or use --backend opencv")
    todo = []
    for sequence in tb.sequences(subjects, actions):
        if is_complete(root, sequence):
            continue
        tb.require_raw_file(sequence.video_path(root), sequence, root, "video")
        todo.append((root, sequence, backend))
    results = tb.parallel_map(extract_sequence, todo, workers, "extracting frames (%s)" % backend)
    return {job[1]: count for job, count in zip(todo, results)}


def main(argv=None):
    parser = tb.argument_parser(__doc__.split("\n")[0])
    tb.add_selection_arguments(parser)
    parser.add_argument("--backend", choices=("auto", "ffmpeg", "opencv"), default="auto",
                        help="ffmpeg (as the reference) if installed, else OpenCV")
    args = parser.parse_args(argv)
    video_to_images(args.root, args.subjects, args.actions, args.backend, args.workers)


if __name__ == "__main__":
    tb.run_cli(main)
