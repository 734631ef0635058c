"""What the MPI-INF-3DHP toolbox scripts share: errors, the frames used of a sequence, finding
the raw release's sequences, small file helpers and the command line.

Layout under --root, the dataset folder (file names: mvn/mpi_inf_3dhp/facts.py):
  mpi_inf_3dhp/S<s>/Seq<q>/annot.mat, camera.calibration, imageSequence/video_<c>.avi
  mpi_inf_3dhp_test_set/TS<k>/annot_data.mat, imageSequence/img_<NNNNNN>.jpg (1-based)
  synthetic_release.json            a synthetic release only: its frames used per sequence
  data_train_3dhp.npz, data_test_3dhp.npz       labels (+ <name>.json: what they were made from)
  mpi_inf_3dhp/images/s_SS_seq_QQ_ca_CC/..., mpi_inf_3dhp_test_set/images/TS<k>/...   crops
"""
import argparse
import json
import os
import re
import warnings

try:
    from mvn.mpi_inf_3dhp import facts as mpi
    from mvn import toolbox
    from mvn.errors import CAPFError
except ImportError as error:  # pragma: no cover - only without the package installed
    raise SystemExit("cannot import the project package `mvn` (%s): run `pip install -e .` in the "
                     "repository root, or set PYTHONPATH to it" % error)

TOOLBOX_DIR = os.path.dirname(os.path.abspath(__file__))
SYNTHETIC_RELEASE_FILE = "synthetic_release.json"
TRAIN_ANNOT = re.compile(r"^S(\d+)/Seq(\d+)/annot\.mat$")     # relative to mpi_inf_3dhp/
TEST_ANNOT = re.compile(r"^(TS\d+)/annot_data\.mat$")         # relative to mpi_inf_3dhp_test_set/
SEQUENCE_NAME = re.compile(r"^S(\d+) Seq(\d+)$")              # a training label key
SETS = ("train", "test")

parallel_map = toolbox.parallel_map
run_cli = toolbox.run_script


class ToolboxError(CAPFError):
    """A problem with the user's data or arguments; the message says what to do."""


class ToolboxWarning(UserWarning):
    """Something worth knowing that does not stop the script; the message names the file."""


def warn(message):
    warnings.warn(message, ToolboxWarning, stacklevel=2)


def sequence_label(subject, sequence, camera=None):
    """'S1 Seq2' or 'S1 Seq2 camera 4', as messages name a training sequence."""
    name = mpi.sequence_name(subject, sequence)
    return name if camera is None else "%s camera %d" % (name, camera)


def parse_sequence_name(name):
    """'S1 Seq2' (a training label key) -> (1, 2)."""
    match = SEQUENCE_NAME.match(str(name))
    if match is None:
        raise ToolboxError("%r is not a training sequence name ('S<s> Seq<q>'); is this the test "
                           "label file?" % (name,))
    return int(match.group(1)), int(match.group(2))


# --- frames used of a training sequence --------------------------------------------------------

def read_synthetic_release(root):
    """The description a synthetic release leaves in `root` (synthesize_3dhp.py), or None."""
    path = os.path.join(root, SYNTHETIC_RELEASE_FILE)
    if not os.path.exists(path):
        return None
    release = read_json(path)
    if not isinstance(release, dict) or not all(isinstance(release.get(key), dict)
                                                for key in ("sequences", "test_sequences")):
        raise ToolboxError("%s is damaged (not the JSON synthesize_3dhp.py writes): synthesise "
                           "the release again into an empty --root" % path)
    return release


def frames_used(root, subject, sequence):
    """(frames, fps) of a training sequence: the first `frames` annotation rows and video frames
    are used. From the release's table (mvn.mpi_inf_3dhp.SEQUENCE_INFO), or, for a
    synthetic release, from its synthetic_release.json (its sequences are shorter)."""
    name = mpi.sequence_name(subject, sequence)
    release = read_synthetic_release(root)
    if release is None:
        if name not in mpi.SEQUENCE_INFO:
            raise ToolboxError("%s: not a sequence of MPI-INF-3DHP (S1..S8, Seq1..Seq2); move its "
                               "folder out of %s" % (name, os.path.join(root, mpi.TRAIN_FOLDER)))
        return mpi.SEQUENCE_INFO[name]
    entry = release["sequences"].get(name)
    if entry is None:
        raise ToolboxError("%s is not in %s, the description of the synthetic release in %s: it "
                           "was not synthesised there; synthesise it with synthesize_3dhp.py "
                           "--root %s --subjects %d" % (name, SYNTHETIC_RELEASE_FILE, root, root,
                                                        subject))
    return int(entry["frames"]), int(entry["fps"])


def frames_source(root):
    """Where frames_used() takes its counts from, for the log."""
    if read_synthetic_release(root) is not None:
        return ("frames used per sequence from %s (a synthetic release), not the real release's "
                "table" % os.path.join(root, SYNTHETIC_RELEASE_FILE))
    return "frames used per sequence from the release's table (mpii_get_sequence_info)"


# --- finding the raw release's sequences -------------------------------------------------------

def _mat_files(folder):
    """Paths (relative to `folder`, '/'-separated) of every file whose name ends in "mat", as the
    released label scripts collect them; the crop folders are not searched."""
    found = []
    for directory, subdirectories, files in os.walk(folder):
        if directory == folder and "images" in subdirectories:
            subdirectories.remove("images")
        subdirectories.sort()
        for name in sorted(files):
            if name.endswith("mat"):
                found.append(os.path.relpath(os.path.join(directory, name), folder)
                             .replace(os.sep, "/"))
    return found


def _annotation_matches(folder, pattern, accepted, expected):
    """The regex matches of every *mat file under `folder`; a file that does not match, or whose
    match `accepted` refuses, is an error naming it (`expected`: the paths allowed, for it)."""
    matches = []
    for relative in _mat_files(folder):
        match = pattern.match(relative)
        if match is None or not accepted(match):
            raise ToolboxError("%s: unexpected MATLAB file; the label step reads every *mat file "
                               "under %s as %s: move it out of that folder"
                               % (os.path.join(folder, relative), folder, expected))
        matches.append(match)
    return matches


def find_training_sequences(root):
    """Sorted (subject, sequence) of every S<s>/Seq<q>/annot.mat under root/mpi_inf_3dhp.

    The released script takes any file ending in "mat" there and reads the subject and sequence
    digits from single characters of its folder names (QUIRK Q13); here the whole path is parsed
    and any other such file is an error naming it.
    """
    folder = os.path.join(root, mpi.TRAIN_FOLDER)
    if not os.path.isdir(folder):
        raise ToolboxError("%s not found: download the training set into it (see "
                           "MPI-INF-3DHP-Toolbox/README.md), synthesise one with "
                           "synthesize_3dhp.py --root %s, or leave it out with --sets test"
                           % (folder, root))
    sequences = [(int(m.group(1)), int(m.group(2))) for m in _annotation_matches(
        folder, TRAIN_ANNOT, lambda m: int(m.group(1)) in mpi.SUBJECTS
        and int(m.group(2)) in mpi.SEQUENCES, "S<1..8>/Seq<1..2>/annot.mat")]
    if not sequences:
        raise ToolboxError("%s holds no S<s>/Seq<q>/annot.mat: download the training set (see "
                           "MPI-INF-3DHP-Toolbox/README.md) or synthesise one with "
                           "synthesize_3dhp.py" % folder)
    return sorted(sequences)


def find_test_sequences(root):
    """Sorted names ('TS1', ...) of every TS<k>/annot_data.mat under root/mpi_inf_3dhp_test_set
    (any other *mat file there is an error naming it, as for the training set)."""
    folder = os.path.join(root, mpi.TEST_FOLDER)
    if not os.path.isdir(folder):
        raise ToolboxError("%s not found: unzip mpi_inf_3dhp_test_set.zip so that it holds "
                           "TS1..TS6 (see MPI-INF-3DHP-Toolbox/README.md), synthesise one with "
                           "synthesize_3dhp.py --root %s, or leave it out with --sets train"
                           % (folder, root))
    names = [m.group(1) for m in _annotation_matches(
        folder, TEST_ANNOT, lambda m: m.group(1) in mpi.TEST_SEQUENCES,
        "TS<1..6>/annot_data.mat")]
    if not names:
        raise ToolboxError("%s holds no TS<k>/annot_data.mat: unzip mpi_inf_3dhp_test_set.zip "
                           "there so that it holds TS1..TS6 (see MPI-INF-3DHP-Toolbox/README.md)"
                           % folder)
    return sorted(names, key=mpi.TEST_SEQUENCES.index)


# --- files -------------------------------------------------------------------------------------

def partial_path(path):
    """Where `path` is written before it is renamed into place (the name keeps its extension,
    which some writers need)."""
    return os.path.join(os.path.dirname(path), ".partial." + os.path.basename(path))


def write_json(path, value, only_if_changed=False):
    """Write `value` as JSON (renamed into place); with only_if_changed, a file that already
    holds it is left alone (its time too: the label step's up-to-date check uses it)."""
    if only_if_changed and read_json(path) == value:
        return
    tmp = partial_path(path)
    with open(tmp, "w") as f:
        json.dump(value, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def read_json(path):
    """The JSON value in `path`, or None if it is missing or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def file_stamp(path):
    """[size, mtime_ns] of a file: what 'unchanged' means for the up-to-date checks."""
    status = os.stat(path)
    return [status.st_size, status.st_mtime_ns]


# --- the command line --------------------------------------------------------------------------

def argument_parser(description):
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--root", default=TOOLBOX_DIR,
                        help="dataset folder holding mpi_inf_3dhp/ and mpi_inf_3dhp_test_set/")
    parser.add_argument("--workers", type=int, default=toolbox.default_workers(),
                        help="parallel worker processes (1: run in this process)")
    return parser


def add_sets_argument(parser):
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS),
                        help="training set, test set, or both")
