"""Extract the Human3.6M archives into the toolbox layout extracted/S<s>/<kind>/.

The dataset site serves per-subject archives whose members are S1/Videos/<file> and
S1/MyPoseFeatures/<D2_Positions | D3_Positions | D3_Positions_mono>/<file>. Saved under the names
h36m-fetch gives them (archives/Videos_S1.tgz, archives/Poses_D2_Positions_S1.tgz, ...), they are
unpacked here to extracted/S1/Videos, extracted/S1/Poses_D2_Positions, ... (the layout the original
H36M-Toolbox reads). Members are streamed; files already extracted with the right size are kept.

  python extract_archives.py --root DIR [--archives DIR/archives] [--subjects 1 5 ...]
"""
import os
import re
import shutil
import tarfile

import h36m_toolbox as tb
from mvn.human36m import facts as h36m

KINDS = ("Videos", "Poses_D2_Positions", "Poses_D3_Positions", "Poses_D3_Positions_mono")
REQUIRED_KINDS = ("Videos", "Poses_D2_Positions", "Poses_D3_Positions_mono")
_MEMBER = re.compile(r"^(?:\./)?S(\d+)/(?:Videos|MyPoseFeatures/(D2_Positions|D3_Positions|"
                     r"D3_Positions_mono))/([^/]+)$")


def archive_path(archives, kind, subject):
    return os.path.join(archives, "%s_S%d.tgz" % (kind, subject))


def extract_archive(job):
    """Extract one archive's files into extracted/S<s>/<kind>/; returns the number written."""
    path, root, kind, subject = job
    written = 0
    with tarfile.open(path, "r:*") as archive:
        for member in archive:
            match = _MEMBER.match(member.name)
            if not member.isfile() or not match or int(match.group(1)) != subject:
                continue
            member_kind = "Videos" if match.group(2) is None else "Poses_" + match.group(2)
            if member_kind != kind:
                continue
            folder = os.path.join(root, "extracted", "S%d" % subject, kind)
            os.makedirs(folder, exist_ok=True)
            target = os.path.join(folder, match.group(3))
            if os.path.isfile(target) and os.path.getsize(target) == member.size:
                continue
            tmp = os.path.join(folder, ".partial." + match.group(3))
            with archive.extractfile(member) as source, open(tmp, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            os.replace(tmp, target)
            written += 1
    if written == 0 and not os.path.isdir(os.path.join(root, "extracted", "S%d" % subject, kind)):
        raise tb.ToolboxError("%s holds no S%d/%s files: is it the right archive? (see "
                              "H36M-Toolbox/README.md)" % (path, subject, kind.replace(
                                  "Poses_", "MyPoseFeatures/")))
    return written


def extract_archives(root, archives=None, subjects=h36m.ALL_SUBJECTS, workers=1):
    tb.check_subjects_actions(subjects, ())
    archives = archives or os.path.join(root, "archives")
    jobs = []
    for subject in subjects:
        for kind in KINDS:
            path = archive_path(archives, kind, subject)
            if os.path.isfile(path):
                jobs.append((path, root, kind, subject))
            elif kind in REQUIRED_KINDS:
                raise tb.ToolboxError(
                    "%s not found: download the S%d '%s' archive from the Human3.6M site and save "
                    "it under that name (see H36M-Toolbox/README.md), or leave S%d out with "
                    "--subjects" % (path, subject, kind, subject))
    return sum(tb.parallel_map(extract_archive, jobs, workers, "extracting archives"))


def main(argv=None):
    parser = tb.argument_parser(__doc__.split("\n")[0])
    parser.add_argument("--archives", default=None,
                        help="folder with <kind>_S<s>.tgz (default: ROOT/archives)")
    parser.add_argument("--subjects", type=int, nargs="+", default=list(h36m.ALL_SUBJECTS),
                        help="subjects to extract")
    args = parser.parse_args(argv)
    extract_archives(args.root, args.archives, args.subjects, args.workers)


if __name__ == "__main__":
    tb.run_cli(main)
