"""Write h36m_train.pkl (S1, S5, S6, S7, S8) and h36m_validation.pkl (S9, S11): one dict per frame.

Record for record what the released label script produces (docs/fidelity.md): same keys,
dtypes, values and order (subject, action, subaction, camera, frame). Unlike the reference, images
are not opened to learn their size: it is known per camera, and one frame per sequence is checked.

  python generate_labels_h36m.py --root DIR [--subjects 1 5 ...] [--actions 2 3 ...]
"""
import os
import pickle
import zipfile

import numpy as np

import h36m_toolbox as tb
from mvn import geometry
from mvn.datasets.label_files import read_npz_array
from mvn.human36m import facts as h36m
from mvn.images import ImageError, read_frame_bgr

JOINTS_17 = list(h36m.JOINTS_17_FROM_32)


def image_size(path):
    """(width, height) of the frame at `path`, decoded as training will read it."""
    try:
        image = read_frame_bgr(path)
    except ImageError as error:
        raise tb.ToolboxError("%s: delete its folder and run video_to_images.py again"
                              % error) from None
    return image.shape[1], image.shape[0]


def camera_record(subject, camera_index):
    """The record's `camera` dict from the calibration table.

    Shapes follow the original H36M-Toolbox, whose calibration came from 3d-pose-baseline's
    cameras.h5: R (3, 3) world -> camera, T (3, 1) camera centre in world mm, fx = f[0] etc. as
    arrays of shape (1,) (f and c being (2, 1) there), k (3, 1), p (2, 1); all float64.
    """
    cam = h36m.camera(subject, camera_index)
    f = np.array(cam["f"], dtype=np.float64).reshape(2, 1)
    c = np.array(cam["c"], dtype=np.float64).reshape(2, 1)
    return {"R": np.array(cam["R"], dtype=np.float64),
            "T": np.array(cam["T"], dtype=np.float64).reshape(3, 1),
            "fx": f[0], "fy": f[1], "cx": c[0], "cy": c[1],
            "k": np.array(cam["k"], dtype=np.float64).reshape(3, 1),
            "p": np.array(cam["p"], dtype=np.float64).reshape(2, 1)}


def label_sequence(job):
    """Records of one sequence (box, crop, keypoints, metres) and warnings to show; runs in a
    worker."""
    root, sequence, detections_px = job
    messages = []
    pose3d_mm = tb.read_pose_cdf(sequence.pose3d_mono_path(root), 96).reshape(-1, 32, 3)
    pose2d_px = tb.read_pose_cdf(sequence.pose2d_path(root), 64).reshape(-1, 32, 2)
    nposes = min(len(pose3d_mm), len(pose2d_px))
    if len(detections_px) < nposes:
        raise tb.ToolboxError(
            "%s: the detection file has %d frames but the poses have %d; the detections do not "
            "belong to this sequence (use the file of VideoPose3D's release)"
            % (sequence, len(detections_px), nposes))
    detections_px = detections_px[:nposes]            # detections longer than the poses are cut

    # A frame is labelled only if its image exists (a short video: the frames it has).
    existing = set(os.listdir(sequence.image_dir(root)))
    frames = [i for i in range(nposes)
              if h36m.frame_file_pattern(sequence.image_dir_name) % (i + 1) in existing]
    if len(frames) < nposes:
        messages.append("%s: %d of %d posed frames have an image (is the video shorter than the "
                        "poses?); labelling only those, as the reference does"
                        % (sequence, len(frames), nposes))
    if not frames:
        return [], messages
    width, height = h36m.resolution(sequence.camera_index)
    first = os.path.join(root, "images", h36m.image_name(sequence.subject, sequence.action,
                                                         sequence.subaction, sequence.camera_index,
                                                         frames[0] + 1))
    if image_size(first) != (width, height):
        raise tb.ToolboxError(
            "%s: %s is %dx%d but camera %s records are %dx%d: these images do not come from this "
            "camera's video; delete images/%s and run video_to_images.py again"
            % ((sequence, first) + image_size(first) + (sequence.camera_id, width, height,
                                                        sequence.image_dir_name)))

    camera = camera_record(sequence.subject, sequence.camera_index)  # one dict shared by the frames
    f_px = (camera["fx"][0], camera["fy"][0])
    c_px = (camera["cx"][0], camera["cy"][0])
    joints_3d_mm = pose3d_mm[frames][:, JOINTS_17]     # (F, 17, 3) camera frame
    joints_2d_px = pose2d_px[frames][:, JOINTS_17]     # (F, 17, 2)
    cpn_px = detections_px[frames]                     # (F, 17, 2) float32
    boxes = geometry.box_from_root(joints_3d_mm[:, 0], f_px, c_px)    # (F, 4)
    centers, scales = geometry.center_scale_from_box(boxes)           # (F, 2) each
    records = []
    for n, i in enumerate(frames):
        center = (centers[n, 0], centers[n, 1])
        scale = (scales[n, 0], scales[n, 1])
        M = geometry.get_affine_transform(center, scale)             # (2, 3) full frame -> crop
        crop = geometry.affine_transform_points
        records.append({
            "image": h36m.image_name(sequence.subject, sequence.action, sequence.subaction,
                                     sequence.camera_index, i + 1),
            "joints_2d_gt": geometry.normalize_screen_coordinates(joints_2d_px[n], width, height),
            "joints_2d_cpn": geometry.normalize_screen_coordinates(cpn_px[n], width, height),
            "joints_3d": joints_3d_mm[n] / 1000.0,
            "joints_vis": np.ones((17, 3)),
            "video_id": sequence.video_id,
            "image_id": i + 1,
            "subject": sequence.subject,
            "action": sequence.action,
            "subaction": sequence.subaction,
            "camera_id": sequence.camera_index,
            "source": "h36m",
            "camera": camera,
            "nposes": nposes,
            "center": center,
            "scale": scale,
            "box": boxes[n],
            "joints_2d_gt_crop": crop(joints_2d_px[n], M).astype(np.float32),
            "joints_2d_cpn_crop": crop(cpn_px[n], M).astype(np.float32),
        })
    return records, messages


def load_detections(root):
    path = os.path.join(root, tb.DETECTIONS_FILE)
    if not os.path.isfile(path):
        raise tb.ToolboxError(
            "%s not found: download data_2d_h36m_cpn_ft_h36m_dbb.npz (VideoPose3D's CPN detections, "
            "see H36M-Toolbox/README.md) into %s, or synthesise a release with synthesize_h36m.py"
            % (path, os.path.dirname(path)))
    try:  # the detections are a pickled dict: unpickled with arrays, lists and dicts only
        return read_npz_array(path, "positions_2d").item()
    except (KeyError, ValueError, OSError, EOFError, AttributeError, zipfile.BadZipFile,
            pickle.UnpicklingError) as error:
        raise tb.ToolboxError("%s is not VideoPose3D's detection file (%s: %s): download it "
                              "again" % (path, type(error).__name__, error))


def find_detections(positions_2d, sequence):
    """(N, 17, 2) detections of a sequence, or None (QUIRK: try the renamed actions too)."""
    subject_entries = positions_2d.get("S%d" % sequence.subject, {})
    for name in h36m.detection_names(sequence.subject, sequence.action, sequence.subaction):
        cameras = subject_entries.get(name)
        if cameras is not None and len(cameras) > sequence.camera_index:
            return np.asarray(cameras[sequence.camera_index])
    return None


def generate_labels(root, subjects=h36m.ALL_SUBJECTS, actions=h36m.ACTIONS, workers=1):
    """Write the two label files under `root`; returns their paths (train, validation)."""
    tb.check_subjects_actions(subjects, actions)
    positions_2d = load_detections(root)
    jobs = []
    for sequence in tb.sequences(subjects, actions):   # check everything before the long part
        tb.require_raw_file(sequence.pose3d_mono_path(root), sequence, root, "3D pose file")
        tb.require_raw_file(sequence.pose2d_path(root), sequence, root, "2D pose file")
        if not os.path.isdir(sequence.image_dir(root)):
            raise tb.ToolboxError("%s: %s not found: run video_to_images.py --root %s first"
                                  % (sequence, sequence.image_dir(root), root))
        detections = find_detections(positions_2d, sequence)
        if detections is None:
            tb.warn("%s: no CPN detections for it in %s (tried %s); skipping the sequence, as the "
                    "reference does" % (sequence, tb.DETECTIONS_FILE, " and ".join(
                        repr(n) for n in h36m.detection_names(sequence.subject, sequence.action,
                                                              sequence.subaction))))
            continue
        jobs.append((root, sequence, detections))
    train, validation = [], []
    for (_, sequence, _), (records, messages) in zip(
            jobs, tb.parallel_map(label_sequence, jobs, workers, "labelling sequences")):
        for message in messages:
            tb.warn(message)
        (train if sequence.subject in h36m.TRAIN_SUBJECTS else validation).extend(records)
    paths = (os.path.join(root, h36m.LABEL_FILES["train"]),
             os.path.join(root, h36m.LABEL_FILES["val"]))
    tb.write_label_file(paths[0], train)
    tb.write_label_file(paths[1], validation)
    print("wrote %d records to %s and %d to %s" % (len(train), paths[0], len(validation), paths[1]))
    return paths


def main(argv=None):
    parser = tb.argument_parser(__doc__.split("\n")[0])
    tb.add_selection_arguments(parser)
    args = parser.parse_args(argv)
    generate_labels(args.root, args.subjects, args.actions, args.workers)


if __name__ == "__main__":
    tb.run_cli(main)
