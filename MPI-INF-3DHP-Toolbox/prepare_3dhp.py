"""Prepare a downloaded (or synthesised) MPI-INF-3DHP: label files, then crops (the released
process_data.sh after its download step).

  python prepare_3dhp.py --root DIR [--sets train test] [--crop-intrinsics position]
                         [--via-full-frames] [--backend auto] [--workers W]

runs generate_labels_3dhp.py and then prepare_images_3dhp.py with those options. From Python,
`make_tiny_dataset(root)` synthesises a small release and prepares it (for tests and trying the
pipeline).
"""
import generate_labels_3dhp
import mpi_toolbox as tb
import prepare_images_3dhp
import synthesize_3dhp


def prepare(root, sets=tb.SETS, crop_intrinsics="position", via_full_frames=False,
            backend="auto", workers=1):
    """Labels, then crops, for `sets` under `root`."""
    generate_labels_3dhp.generate_labels(root, sets, crop_intrinsics, workers)
    prepare_images_3dhp.prepare_images(root, sets, via_full_frames, backend, workers)


def make_tiny_dataset(root, frames=2, test_frames=3, subjects=(1,), seed=0, workers=1):
    """A small synthetic MPI-INF-3DHP under `root`, prepared for training and evaluation:
    data_train_3dhp.npz (2 sequences per subject x 8 cameras x `frames`), data_test_3dhp.npz
    (TS1..TS6 x `test_frames`, some invalid) and every crop. Returns `root`. Resumable: a second
    call with the same arguments does nothing."""
    synthesize_3dhp.synthesize(root, subjects, frames, test_frames, seed, workers)
    prepare(root, tb.SETS if test_frames else ("train",), workers=workers)
    return root


def main(argv=None):
    parser = tb.argument_parser(__doc__.split("\n")[0])
    tb.add_sets_argument(parser)
    parser.add_argument("--crop-intrinsics", choices=generate_labels_3dhp.CROP_INTRINSICS,
                        default="position", help="see generate_labels_3dhp.py (QUIRK Q2)")
    parser.add_argument("--via-full-frames", action="store_true",
                        help="the released image route (see prepare_images_3dhp.py)")
    parser.add_argument("--backend", choices=("auto", "ffmpeg", "opencv"), default="auto",
                        help="full-frame extraction with --via-full-frames")
    args = parser.parse_args(argv)
    prepare(args.root, args.sets, args.crop_intrinsics, args.via_full_frames, args.backend,
            args.workers)


if __name__ == "__main__":
    tb.run_cli(main)
