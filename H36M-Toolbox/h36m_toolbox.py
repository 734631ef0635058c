"""What the toolbox scripts share: the raw release's layout, CDF files, errors, workers, the CLI.

Raw layout (the release after extraction, see README.md), relative to the toolbox root:
  extracted/S<s>/Videos/<base>.<camera id>.mp4
  extracted/S<s>/Poses_D3_Positions_mono/<base>.<camera id>.cdf   (N, 96) camera frame, mm
  extracted/S<s>/Poses_D2_Positions/<base>.<camera id>.cdf        (N, 64) pixels
  extracted/S<s>/Poses_D3_Positions/<base>.cdf                    (N, 96) world frame, mm
  data/data_2d_h36m_cpn_ft_h36m_dbb.npz                           CPN detections
  images/<seq>/<seq>_NNNNNN.jpg                                   frames (video_to_images.py)
"""
import argparse
import os
import pickle
import warnings
from dataclasses import dataclass

import numpy as np

from mvn.errors import CAPFError
# re-exported for the scripts (tb.parallel_map, tb.run_cli): one home in mvn/toolbox.py
from mvn.toolbox import default_workers, parallel_map, run_script as run_cli

try:
    from mvn.human36m import facts as h36m
except ImportError as error:  # pragma: no cover - only without the package installed
    raise SystemExit("cannot import the project package `mvn` (%s): run `pip install -e .` in the "
                     "repository root, or set PYTHONPATH to it" % error)

TOOLBOX_DIR = os.path.dirname(os.path.abspath(__file__))
DETECTIONS_FILE = os.path.join("data", "data_2d_h36m_cpn_ft_h36m_dbb.npz")


class ToolboxError(CAPFError):
    """A problem with the user's data or arguments; the message says what to do."""


class ToolboxWarning(UserWarning):
    """Something skipped or cut, as the reference does; the message names the sequence."""


LABEL_PICKLE_PROTOCOL = 4  # the label files' pickle protocol (readable by Python 3.4+)


def write_label_file(path, records):
    """The label records as a pickle at `path`, written whole or not at all (a temporary file
    beside it, renamed over it)."""
    temporary = os.path.join(os.path.dirname(path), ".partial." + os.path.basename(path))
    with open(temporary, "wb") as f:
        pickle.dump(records, f, protocol=LABEL_PICKLE_PROTOCOL)
    os.replace(temporary, path)


def warn(message):
    warnings.warn(message, ToolboxWarning, stacklevel=2)


@dataclass(frozen=True)
class Sequence:
    """One video of the release: subject, action (2..16), subaction (1..2), camera index (0..3)."""
    subject: int
    action: int
    subaction: int
    camera_index: int

    @property
    def base(self):
        return h36m.sequence_name(self.subject, self.action, self.subaction)

    @property
    def camera_id(self):
        return h36m.CAMERA_IDS[self.camera_index]

    @property
    def image_dir_name(self):
        return h36m.image_sequence_name(self.subject, self.action, self.subaction, self.camera_index)

    @property
    def video_id(self):
        """Index in the reference's loop over all 7 x 15 x 2 x 4 sequences.

        The reference numbers videos with a counter over that loop; the counter equals this index
        on the full dataset, and this stays the same when only some subjects are processed.
        """
        s = h36m.ALL_SUBJECTS.index(self.subject)
        a = h36m.ACTIONS.index(self.action)
        return ((s * len(h36m.ACTIONS) + a) * 2 + self.subaction - 1) * len(h36m.CAMERA_IDS) \
            + self.camera_index

    def __str__(self):
        return "S%d %r camera %s (%s)" % (self.subject, self.base, self.camera_id, self.image_dir_name)

    def subject_dir(self, root):
        return os.path.join(root, "extracted", "S%d" % self.subject)

    def video_path(self, root):
        return os.path.join(self.subject_dir(root), "Videos", "%s.%s.mp4" % (self.base, self.camera_id))

    def pose3d_mono_path(self, root):
        return os.path.join(self.subject_dir(root), "Poses_D3_Positions_mono",
                            "%s.%s.cdf" % (self.base, self.camera_id))

    def pose2d_path(self, root):
        return os.path.join(self.subject_dir(root), "Poses_D2_Positions",
                            "%s.%s.cdf" % (self.base, self.camera_id))

    def pose3d_world_path(self, root):
        """QUIRK of the release: the world-frame file has no camera id (one per trial)."""
        return os.path.join(self.subject_dir(root), "Poses_D3_Positions", "%s.cdf" % self.base)

    def image_dir(self, root):
        return os.path.join(root, "images", self.image_dir_name)


def sequences(subjects=h36m.ALL_SUBJECTS, actions=h36m.ACTIONS, subactions=(1, 2),
              camera_indices=(0, 1, 2, 3)):
    """All sequences in the reference's loop order: subject, action, subaction, camera."""
    return [Sequence(s, a, sa, c) for s in subjects for a in actions for sa in subactions
            for c in camera_indices]


def check_subjects_actions(subjects, actions):
    for s in subjects:
        if s not in h36m.ALL_SUBJECTS:
            raise ToolboxError("unknown subject %r: Human3.6M subjects are %s"
                               % (s, " ".join(map(str, h36m.ALL_SUBJECTS))))
    for a in actions:
        if a not in h36m.ACTIONS:
            raise ToolboxError("unknown action %r: actions are %d..%d"
                               % (a, h36m.ACTIONS[0], h36m.ACTIONS[-1]))


def require_raw_file(path, sequence, root, what):
    """Raise a ToolboxError naming the sequence when a raw file (or its subject folder) is missing."""
    subject_dir = sequence.subject_dir(root)
    if not os.path.isdir(subject_dir):
        raise ToolboxError(
            "%s: folder %s not found. Extract the Human3.6M archives of S%d there (see "
            "H36M-Toolbox/README.md, 'Preparing Human3.6M'), synthesise it with "
            "synthesize_h36m.py, or leave the subject out with --subjects."
            % (sequence, subject_dir, sequence.subject))
    if not os.path.isfile(path):
        raise ToolboxError(
            "%s: %s %s not found. Extract that archive of S%d into %s (see H36M-Toolbox/README.md), "
            "or leave the action out with --actions." % (sequence, what, path, sequence.subject,
                                                        subject_dir))


# --- CDF files ----------------------------------------------------------------------------------

def read_pose_cdf(path, values_per_frame):
    """The release's `Pose` variable, stored as (1, N, values) -> (N, values) float64."""
    import cdflib
    pose = np.asarray(cdflib.CDF(path).varget("Pose"))
    if pose.size % values_per_frame:
        raise ToolboxError("%s: variable Pose has shape %s, expected (1, N, %d); the file is not a "
                           "Human3.6M pose file" % (path, pose.shape, values_per_frame))
    return pose.reshape(-1, values_per_frame)


def write_pose_cdf(path, pose):
    """Write (N, values) as the release does: one record of shape (N, values), CDF_DOUBLE.

    `cdflib.CDF(path).varget('Pose')` then returns (1, N, values) like on the real files.
    Uncompressed: cdflib's default gzip stamps the time into the file (bytes would differ).
    Written to a temporary file first and renamed, so a crash leaves no torn file.
    """
    from cdflib.cdfwrite import CDF
    pose = np.ascontiguousarray(pose, dtype=np.float64)
    tmp = os.path.join(os.path.dirname(path), ".partial." + os.path.basename(path))
    if os.path.exists(tmp):
        os.remove(tmp)
    cdf = CDF(tmp)
    cdf.write_var({"Variable": "Pose", "Data_Type": CDF.CDF_DOUBLE, "Num_Elements": 1,
                   "Rec_Vary": True, "Dim_Sizes": list(pose.shape), "Compress": 0}, var_data=pose[None])
    cdf.close()
    os.replace(tmp, path)


# --- workers and the command line ---------------------------------------------------------------
# Worker processes with a progress bar, and user errors as one line: mvn/toolbox.py (shared with
# MPI-INF-3DHP-Toolbox).

def argument_parser(description):
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--root", default=TOOLBOX_DIR,
                        help="toolbox data root holding extracted/, data/, images/ and the labels")
    parser.add_argument("--workers", type=int, default=default_workers(),
                        help="parallel worker processes (1: run in this process)")
    return parser


def add_selection_arguments(parser):
    parser.add_argument("--subjects", type=int, nargs="+", default=list(h36m.ALL_SUBJECTS),
                        help="subjects to process")
    parser.add_argument("--actions", type=int, nargs="+", default=list(h36m.ACTIONS),
                        help="action ids to process (2..16)")
