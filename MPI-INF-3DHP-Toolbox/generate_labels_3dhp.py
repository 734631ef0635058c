"""Write data_train_3dhp.npz and data_test_3dhp.npz, the released label files.

What the released data_to_npz_3dhp.py and data_to_npz_3dhp_test.py write, key for key and value
for value: np.savez_compressed with one key `data`, a pickled dict.
  train: "S<s> Seq<q>" -> [{camera '0','1','2','4',...,'8': {data_2d (F, 17, 2) px from annot2,
         data_2d_crop (F, 17, 2) crop px, data_3d (F, 17, 3) mm from univ_annot3}}, fps]
         (the first F annotation rows, F = frames used of the sequence; every frame kept)
  test:  "TS1".."TS6" -> {data_2d (n, 17, 2), data_2d_crop, data_3d (n, 17, 3), valid (n,),
         activity (n,)}   (every annotated frame; `activity` is added here: activity_annotation,
         which the evaluation needs and the released loader ignores)
Arrays keep the dtype of the MATLAB files, as the released scripts' arrays do. Crop keypoints
come from the per-frame box and affine of mvn.mpi_inf_3dhp (the released arithmetic, bit for bit).

QUIRK Q2: the released training labels build the crop keypoints of camera c with the intrinsics
of the camera at c's POSITION in the list 0 1 2 4 5 6 7 8 (cameras 4..8 get those of 3..7), while
the images are cropped with camera c's own; `--crop-intrinsics position` (default) reproduces
that, `camera` uses the camera's own entry (keypoints consistent with the crops).
Deliberate difference (Q13): the sequences are found by parsing S<s>/Seq<q>/annot.mat paths in
full; any other *mat file under mpi_inf_3dhp/ (or TS<k>/annot_data.mat under the test set) is an
error naming it, where the released script reads single characters of its folder names.

A label file is rewritten only when its inputs (their sizes and times), the options or this
script's format changed since it was made: <label file>.json records what it was made from.

  python generate_labels_3dhp.py --root DIR [--sets train test] [--crop-intrinsics position]
                                 [--workers W]
"""
import os

import numpy as np

import mpi_toolbox as tb
from mvn.mpi_inf_3dhp import matfile
from mvn.mpi_inf_3dhp import facts as mpi

FORMAT_VERSION = 1          # bump when what this script writes changes
JOINTS = list(mpi.JOINTS_17_FROM_28)
CROP_INTRINSICS = ("position", "camera")


def crop_intrinsics_index(position, camera, crop_intrinsics):
    """The intrinsics table entry of a training camera's crop keypoints (QUIRK Q2)."""
    return position if crop_intrinsics == "position" else camera


def crop_keypoints(data_2d_px, data_3d_mm, intrinsics_index):
    """(F, 17, 2) full-frame px -> crop px (dtype of data_2d), the box from the data_3d pelvis."""
    center, scale = mpi.crop_center_scale(data_3d_mm[:, mpi.ROOT_JOINT], intrinsics_index)
    return mpi.crop_keypoints(data_2d_px, mpi.crop_affines(center, scale))


# --- training set ------------------------------------------------------------------------------

def _read(read, path, names, advice):
    """matfile.read_v5 / read_v73 of `names`; a file that cannot be read is a ToolboxError
    ending with `advice`."""
    try:
        return read(path, names)
    except matfile.MatFileError as error:
        raise tb.ToolboxError("%s; %s" % (error, advice)) from None


def check_finite(poses, path, variable, what, advice):
    """Refuse annotations (F, 17, C) with a NaN or inf: they would make NaN boxes, crops and
    labels. `what` names the sequence (and camera)."""
    bad = np.flatnonzero(~np.isfinite(poses.reshape(len(poses), -1)).all(1))
    if len(bad):
        raise tb.ToolboxError("%s: %s of %s is not finite (NaN or inf) in %d frame(s), the first "
                              "frame %d (1-based); %s" % (path, variable, what, len(bad),
                                                          bad[0] + 1, advice))


def _camera_cell(cells, camera, width, path, variable):
    """The (rows, width) matrix of one camera from a cell array (scipy: (14, 1) objects)."""
    cells = np.asarray(cells, dtype=object)
    if cells.size <= camera:
        raise tb.ToolboxError("%s: %s has %d camera cells, camera %d is needed; download "
                              "annot.mat again" % (path, variable, cells.size, camera))
    try:
        matrix = matfile.real_array(cells.reshape(-1)[camera], path,
                                    "%s of camera %d" % (variable, camera))
    except matfile.MatFileError as error:
        raise tb.ToolboxError("%s; download annot.mat again" % error) from None
    if matrix.ndim != 2 or matrix.shape[1] != width:
        raise tb.ToolboxError("%s: %s of camera %d has shape %s, expected (rows, %d); download "
                              "annot.mat again" % (path, variable, camera, matrix.shape, width))
    return matrix


def label_train_sequence(job):
    """[{camera: {data_2d, data_2d_crop, data_3d}}, fps] of one sequence; runs in a worker."""
    root, subject, sequence, frames, fps, crop_intrinsics = job
    path = os.path.join(root, mpi.annot_path(subject, sequence))
    data = _read(matfile.read_v5, path, ["cameras", "annot2", "univ_annot3"],
                 "download annot.mat of this sequence again")
    cameras = np.asarray(data["cameras"]).reshape(-1)
    if len(cameras) <= max(mpi.TRAIN_CAMERAS) or \
            not np.array_equal(cameras, np.arange(len(cameras))):
        raise tb.ToolboxError("%s: `cameras` is %s, expected 0..13 (one cell per camera); "
                              "download annot.mat again" % (path, cameras.tolist()))
    cameras_dict = {}
    for position, camera in enumerate(mpi.TRAIN_CAMERAS):
        annot2 = _camera_cell(data["annot2"], camera, 2 * mpi.NUM_JOINTS_RAW, path, "annot2")
        univ = _camera_cell(data["univ_annot3"], camera, 3 * mpi.NUM_JOINTS_RAW, path,
                            "univ_annot3")
        rows = min(len(annot2), len(univ))
        if rows < frames:
            raise tb.ToolboxError(
                "%s: %s has %d annotation rows but %d frames are used; the file is incomplete: "
                "download it again" % (tb.sequence_label(subject, sequence, camera), path, rows,
                                       frames))
        data_2d = annot2.reshape(len(annot2), mpi.NUM_JOINTS_RAW, 2)[:frames, JOINTS]  # (F, 17, 2)
        data_3d = univ.reshape(len(univ), mpi.NUM_JOINTS_RAW, 3)[:frames, JOINTS]     # (F, 17, 3)
        what = tb.sequence_label(subject, sequence, camera)
        for variable, poses in (("annot2", data_2d), ("univ_annot3", data_3d)):
            check_finite(poses, path, variable, what, "download annot.mat again")
        index = crop_intrinsics_index(position, camera, crop_intrinsics)  # QUIRK Q2 by default
        cameras_dict[str(camera)] = {"data_2d": data_2d,
                                     "data_2d_crop": crop_keypoints(data_2d, data_3d, index),
                                     "data_3d": data_3d}
    return [cameras_dict, fps]


def train_jobs(root, crop_intrinsics):
    """The jobs and the input files (relative to root) of the training labels."""
    jobs, inputs = [], []
    for subject, sequence in tb.find_training_sequences(root):
        frames, fps = tb.frames_used(root, subject, sequence)
        jobs.append((root, subject, sequence, frames, fps, crop_intrinsics))
        inputs.append(mpi.annot_path(subject, sequence))
    if tb.read_synthetic_release(root) is not None:     # the frames used come from it
        inputs.append(tb.SYNTHETIC_RELEASE_FILE)
    return jobs, inputs


# --- test set ----------------------------------------------------------------------------------

def _test_poses(array, channels, path, variable):
    """MATLAB (channels, 17, 1, n) -> (n, 17, channels), as the released np.squeeze of h5py's
    (n, 1, 17, channels) gives (kept (n, ...) also when n == 1)."""
    try:
        array = matfile.real_array(array, path, variable)
    except matfile.MatFileError as error:
        raise tb.ToolboxError("%s; unzip the test set again" % error) from None
    if array.ndim < 2 or array.shape[0] != channels or array.shape[1] != mpi.NUM_JOINTS:
        raise tb.ToolboxError("%s: %s has MATLAB shape %s, expected (%d, 17, 1, n); is this the "
                              "test set's annot_data.mat?"
                              % (path, variable, array.shape, channels))
    return array.T.reshape(-1, mpi.NUM_JOINTS, channels)


def label_test_sequence(job):
    """{data_2d, data_2d_crop, data_3d, valid, activity} of one test sequence; in a worker."""
    root, name = job
    path = os.path.join(root, mpi.test_annot_path(name))
    data = _read(matfile.read_v73, path, ["valid_frame", "activity_annotation", "annot2",
                                          "univ_annot3"], "unzip the test set again")
    data_2d = _test_poses(data["annot2"], 2, path, "annot2")                       # (n, 17, 2)
    data_3d = _test_poses(data["univ_annot3"], 3, path, "univ_annot3")             # (n, 17, 3)
    valid = np.asarray(data["valid_frame"]).reshape(-1)                            # (n,)
    activity = np.asarray(data["activity_annotation"]).reshape(-1)                 # (n,)
    if not len(data_2d) == len(data_3d) == len(valid) == len(activity):
        raise tb.ToolboxError("%s: annot2, univ_annot3, valid_frame and activity_annotation have "
                              "%d, %d, %d and %d frames; unzip the test set again"
                              % (path, len(data_2d), len(data_3d), len(valid), len(activity)))
    for variable, poses in (("annot2", data_2d), ("univ_annot3", data_3d)):
        check_finite(poses, path, variable, name, "unzip the test set again")
    # every frame, valid or not, as the released script
    crop = crop_keypoints(data_2d, data_3d, mpi.sequence_intrinsics_index(name))
    return {"data_2d": data_2d, "data_2d_crop": crop, "data_3d": data_3d, "valid": valid,
            "activity": activity}


def test_jobs(root):
    names = tb.find_test_sequences(root)
    return [(root, name) for name in names], [mpi.test_annot_path(n) for n in names]


# --- writing -----------------------------------------------------------------------------------

def _made_from(root, inputs, options):
    """What a label file is made from: its inputs' stamps, the options, this script's format."""
    stamps = {relative: tb.file_stamp(os.path.join(root, relative)) for relative in inputs}
    return {"format": FORMAT_VERSION, "options": options, "inputs": stamps}


def _write_npz(path, data):
    tmp = tb.partial_path(path)
    with open(tmp, "wb") as f:
        np.savez_compressed(f, data=data)
    os.replace(tmp, path)


def write_label_file(root, split, function, jobs, inputs, options, workers, description):
    """Compute and write one label file unless it is up to date; returns (path, written)."""
    path = os.path.join(root, mpi.LABEL_FILES[split])
    record_path = path + ".json"
    made_from = _made_from(root, inputs, options)
    if os.path.isfile(path) and tb.read_json(record_path) == made_from:
        print("%s is up to date (its inputs and options are unchanged): skipped" % path)
        return path, False
    names = ([mpi.sequence_name(job[1], job[2]) for job in jobs] if split == "train"
             else [job[1] for job in jobs])
    data = dict(zip(names, tb.parallel_map(function, jobs, workers, description)))
    _write_npz(path, data)
    tb.write_json(record_path, made_from)
    entries = ([entry for cameras, _fps in data.values() for entry in cameras.values()]
               if split == "train" else list(data.values()))
    print("wrote %s: %d sequences, %d frames (all cameras)"
          % (path, len(data), sum(len(entry["data_2d"]) for entry in entries)))
    return path, True


def generate_labels(root, sets=tb.SETS, crop_intrinsics="position", workers=1):
    """Write the label files of `sets` under `root`; returns {split: (path, written)}."""
    if crop_intrinsics not in CROP_INTRINSICS:
        raise tb.ToolboxError("--crop-intrinsics must be one of %s (got %r)"
                              % (", ".join(CROP_INTRINSICS), crop_intrinsics))
    planned = {}        # everything is checked before the long part
    if "train" in sets:
        planned["train"] = train_jobs(root, crop_intrinsics)
        print(tb.frames_source(root))
    if "test" in sets:
        planned["test"] = test_jobs(root)
    results = {}
    if "train" in planned:
        jobs, inputs = planned["train"]
        if crop_intrinsics == "position":
            print("crop keypoints of cameras 4..8 use the intrinsics of cameras 3..7, as the "
                  "released labels do (QUIRK Q2; --crop-intrinsics camera to use their own)")
        results["train"] = write_label_file(root, "train", label_train_sequence, jobs, inputs,
                                            {"crop_intrinsics": crop_intrinsics}, workers,
                                            "training labels")
    if "test" in planned:
        jobs, inputs = planned["test"]
        results["test"] = write_label_file(root, "test", label_test_sequence, jobs, inputs, {},
                                           workers, "test labels")
    return results


def main(argv=None):
    parser = tb.argument_parser(__doc__.split("\n")[0])
    tb.add_sets_argument(parser)
    parser.add_argument("--crop-intrinsics", choices=CROP_INTRINSICS, default="position",
                        help="intrinsics of the training crop keypoints: 'position' = the entry "
                        "at the camera's position in 0 1 2 4 5 6 7 8 (the released labels, QUIRK "
                        "Q2), 'camera' = the camera's own (as its crop image)")
    args = parser.parse_args(argv)
    generate_labels(args.root, args.sets, args.crop_intrinsics, args.workers)


if __name__ == "__main__":
    tb.run_cli(main)
