"""The whole job in one command, on a CPU: install, a small synthetic Human3.6M, train, evaluate.

    python3 quickstart.py       # a real run on a 2-core machine: see README (runs vary)

Steps (each one is an ordinary command you can also run by hand; they are printed as they run):
  1. install.py: PyTorch (the CPU build where there is no NVIDIA GPU), the exact versions of
     requirements.lock and this package, into the running virtual environment, or into the
     repository's .venv (made on first use) when it runs outside one (skip: --no-install)
  2. H36M-Toolbox/synthesize_h36m.py     a synthetic raw release: S1, S5 (train), S9 (validation),
                                         15 actions x 2 trials x 4 cameras x --frames frames
  3. H36M-Toolbox/video_to_images.py     videos -> full-frame JPEGs
  4. H36M-Toolbox/generate_labels_h36m.py  -> h36m_train.pkl, h36m_validation.pkl
  5. train.py --config experiments/synthetic/quickstart.yaml   (tiny HRNet backbone)
  6. train.py --eval on the best checkpoint, then the per-action table beside the error of always
     predicting the mean training pose.
Finished steps are not redone on a rerun (the labels, a finished training run in --logdir and
its evaluation are reused; an unfinished training run is resumed), so an interrupted quick start
continues where it stopped: Ctrl-C (or SIGTERM) during training lets train.py finish its step and
write last.bin before the quick start exits.
"""
import argparse
import glob
import json
import os
import shlex
import signal
import subprocess
import sys
import time

import install

REPO = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join("experiments", "synthetic", "quickstart.yaml")
SUBJECTS = ["1", "5", "9"]
ACTIONS = [str(a) for a in range(2, 17)]
EXIT_STOPPED = 75  # as train.py's stop (mvn.stopping.EXIT_STOPPED): resumable


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=os.path.join("data", "synthetic_h36m"),
                        help="where the synthetic Human3.6M goes")
    parser.add_argument("--logdir", default=os.path.join("logs", "quickstart"),
                        help="experiment folders go here")
    parser.add_argument("--frames", type=int, default=10, help="frames per synthetic video")
    parser.add_argument("--no-install", action="store_true", help="skip the pip installs")
    parser.add_argument("--opts", nargs="*", default=[], metavar="KEY=VALUE",
                        help="extra config overrides for training and evaluation")
    return parser.parse_args()


class StepInterrupted(Exception):
    """Ctrl-C or SIGTERM reached the quick start while a step ran; the step was told and has
    ended (a training step writes its stop checkpoint first)."""

    def __init__(self, signal_name, exit_status):
        super().__init__(signal_name)
        self.signal_name, self.exit_status = signal_name, exit_status


def run_step(command, stdout=None):
    """Run one step from the repository root; returns its exit status.

    The step runs in its own process group, so Ctrl-C in the terminal (or a SIGTERM) reaches the
    quick start alone, which passes it on to the step once and WAITS for the step to end:
    train.py then finishes its step in flight and writes last.bin, and a rerun resumes there.
    (subprocess.run would kill the step 0.25 s after the interrupt, losing the training.)"""
    process = subprocess.Popen(command, cwd=REPO, stdout=stdout,
                               stderr=None if stdout is None else subprocess.STDOUT,
                               start_new_session=True)
    received = []

    def pass_on(number, frame):
        received.append(signal.Signals(number).name)
        process.send_signal(number)  # does nothing once the step has ended

    previous = {number: signal.signal(number, pass_on)
                for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        status = process.wait()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if received:
        raise StepInterrupted(received[0], status)
    return status


def run(command):
    """Run one step; stop the quick start if it fails."""
    print("\n$ " + " ".join(shlex.quote(c) for c in command), flush=True)
    status = run_step(command)
    if status != 0:
        sys.exit("quickstart: the step above failed (exit status %d); fix what it reports and "
                 "rerun `python3 quickstart.py`: finished steps are skipped" % status)


def prepare_data(root, frames):
    subset = ["--subjects"] + SUBJECTS + ["--actions"] + ACTIONS
    toolbox = os.path.join("H36M-Toolbox", "%s")
    labels = [os.path.join(REPO, path) for path in label_paths(root).values()]
    if all(os.path.isfile(path) for path in labels):
        print("\nlabels exist in %s: synthesis, extraction and labelling skipped" % root)
        return
    run([sys.executable, toolbox % "synthesize_h36m.py", "--root", root, "--frames", str(frames),
         "--seed", "0"] + subset)
    run([sys.executable, toolbox % "video_to_images.py", "--root", root] + subset)
    run([sys.executable, toolbox % "generate_labels_h36m.py", "--root", root] + subset)


def label_paths(root):
    """{'train': path, 'val': path} of the label files under `root` (imported after install)."""
    from mvn.human36m.facts import LABEL_FILES
    return {split: os.path.join(root, name) for split, name in LABEL_FILES.items()}


def dataset_options(root):
    labels = label_paths(root)
    return ["dataset.root=%s" % os.path.join(root, "images"),
            "dataset.train_labels_path=%s" % labels["train"],
            "dataset.val_labels_path=%s" % labels["val"]]


def training_folders(logdir, title):
    """Experiment folders of `title` in `logdir` that hold a last.bin, newest first."""
    folders = glob.glob(os.path.join(REPO, logdir, "%s@*" % title))
    return [f for f in sorted(folders, reverse=True)
            if os.path.isfile(os.path.join(f, "checkpoints", "last.bin"))]


def epochs_done(folder):
    import torch
    last = torch.load(os.path.join(folder, "checkpoints", "last.bin"), weights_only=True)
    return last["epoch"]  # epochs finished


def train(logdir, options):
    """Train (or resume the newest unfinished run, or reuse a finished one); returns its folder."""
    from mvn.config import load_config
    config = load_config(os.path.join(REPO, CONFIG), options)
    folders = training_folders(logdir, config.title)
    if folders and epochs_done(folders[0]) >= config.train.n_epochs:
        print("\ntraining already finished in %s: reused" % folders[0])
        return folders[0]
    command = [sys.executable, "train.py", "--config", CONFIG, "--logdir", logdir,
               "--device", "cpu"]
    if folders:
        command += ["--resume", folders[0]]
    run(command + ["--opts"] + options)
    return training_folders(logdir, config.title)[0]


def evaluate(folder, checkpoint, options):
    """Evaluate `checkpoint` on every validation frame (train.py --eval), or reuse the
    evaluation made of it before; returns (the table, the evaluation folder).

    The evaluation's own log (its progress and table) goes to <folder>/evaluation/eval.log:
    the quick start prints the table once, beside the baseline."""
    eval_logdir = os.path.join(folder, "evaluation")
    done = sorted(glob.glob(os.path.join(eval_logdir, "*", "evaluation.json")))
    if done and os.path.getmtime(done[-1]) > os.path.getmtime(checkpoint):
        print("\nevaluation of %s exists: reused (%s)" % (os.path.relpath(checkpoint, REPO),
                                                          os.path.relpath(done[-1], REPO)))
    else:
        os.makedirs(eval_logdir, exist_ok=True)
        log_path = os.path.join(eval_logdir, "eval.log")
        command = [sys.executable, "train.py", "--config", CONFIG, "--logdir", eval_logdir,
                   "--device", "cpu", "--eval", "--checkpoint", checkpoint, "--opts"] + options \
            + ["dataset.val_frame_stride=1"]  # every validation frame
        print("\n$ " + " ".join(shlex.quote(c) for c in command)
              + "\n  (its output: %s)" % os.path.relpath(log_path, REPO), flush=True)
        with open(log_path, "w") as log:
            status = run_step(command, stdout=log)
        if status != 0:
            with open(log_path) as log:
                print(log.read()[-3000:])
            sys.exit("quickstart: the evaluation failed (exit status %d, output above and in "
                     "%s); fix what it reports and rerun `python3 quickstart.py`"
                     % (status, log_path))
        done = sorted(glob.glob(os.path.join(eval_logdir, "*", "evaluation.json")))
    with open(done[-1]) as f:
        return json.load(f), os.path.dirname(done[-1])


def mean_pose_errors(root):
    """Per-action errors (mm) of always predicting the mean root-relative training pose."""
    import numpy as np
    from mvn.human36m.labels import load_label_columns
    from mvn.human36m.protocol import per_action_errors
    labels = label_paths(root)
    train_labels = load_label_columns(os.path.join(REPO, labels["train"]))
    val_labels = load_label_columns(os.path.join(REPO, labels["val"]))
    train_3d = train_labels.keypoints_3d - train_labels.keypoints_3d[:, :1]  # (N, 17, 3)
    val_3d = val_labels.keypoints_3d - val_labels.keypoints_3d[:, :1]        # (M, 17, 3)
    mean_pose = np.broadcast_to(train_3d.mean(axis=0), val_3d.shape)
    return per_action_errors(mean_pose, val_3d, val_labels.action, val_labels.subaction)


def print_comparison(model_errors, baseline_errors):
    """The per-action table (every column of mvn.human36m.protocol.COLUMNS) beside the mean
    pose's P1."""
    from mvn.human36m.protocol import COLUMNS
    print("\n%-16s" % "action" + "".join(" %8s" % ("%s mm" % c.header) for c in COLUMNS)
          + " %8s   %s" % ("frames", "mean-pose P1 mm"))
    for action in list(model_errors["actions"]) + ["average"]:
        model = (model_errors["average"] if action == "average"
                 else model_errors["actions"][action])
        baseline = (baseline_errors["average"] if action == "average"
                    else baseline_errors["actions"][action])
        print("%-16s" % action + "".join(" %8.1f" % model[c.key] for c in COLUMNS)
              + " %8d   %8.1f" % (model["frames"], baseline["p1"]))


def quickstart(args):
    start = time.time()
    prepare_data(args.root, args.frames)
    options = dataset_options(args.root) + list(args.opts)
    folder = train(args.logdir, options)
    checkpoint = os.path.join(folder, "checkpoints", "best_epoch.bin")
    model_errors, eval_folder = evaluate(folder, checkpoint, options)
    baseline_errors = mean_pose_errors(args.root)
    print_comparison(model_errors, baseline_errors)
    print("\nCA-PF (tiny, synthetic) average MPJPE %.1f mm; always predicting the mean training "
          "pose: %.1f mm" % (model_errors["average"]["p1"], baseline_errors["average"]["p1"]))
    print("checkpoint: %s\nevaluation (table as JSON/CSV, best/worst frames PNG): %s"
          % (os.path.relpath(checkpoint, REPO), os.path.relpath(eval_folder, REPO)))
    print("total time %.1f min" % ((time.time() - start) / 60))


def enter_venv():
    """Outside a virtual environment (or conda), continue in the repository's .venv, made on
    first use: many systems refuse pip installs into their own Python (PEP 668), and a user's
    site-packages stay untouched. Inside one, install there."""
    if sys.prefix != sys.base_prefix or os.environ.get("CONDA_PREFIX"):
        return
    venv = os.path.join(REPO, ".venv")
    python = os.path.join(venv, "bin", "python3")
    if not os.path.exists(python):
        print("\n$ python3 -m venv .venv   (this Python is not a virtual environment)", flush=True)
        if subprocess.run([sys.executable, "-m", "venv", venv]).returncode != 0:
            sys.exit("quickstart: could not make %s; make a virtual environment yourself "
                     "(python3 -m venv .venv && . .venv/bin/activate) and rerun" % venv)
    print("continuing with %s (activate it for your own commands: . .venv/bin/activate)"
          % python, flush=True)
    os.execv(python, [python, os.path.abspath(__file__)] + sys.argv[1:])


def main():
    args = parse_args()
    if not args.no_install:
        enter_venv()
        print("\ninstalling PyTorch, requirements.lock and this package (install.py)", flush=True)
        try:
            install.install()
        except install.InstallError as error:
            sys.exit("quickstart: %s; fix it and rerun `python3 quickstart.py`" % error)
    from mvn.errors import CAPFError  # importable once installed
    try:
        quickstart(args)
    except CAPFError as error:
        sys.exit("quickstart: error: %s" % error)
    except StepInterrupted as stop:
        print("\nquickstart: stopped by %s (the step's exit status: %d). Rerun `python3 "
              "quickstart.py` with the same options: finished steps are skipped and an "
              "interrupted training resumes from its last.bin" % (stop.signal_name,
                                                                   stop.exit_status),
              file=sys.stderr)
        sys.exit(EXIT_STOPPED)


if __name__ == "__main__":
    main()
