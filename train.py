r"""Train or evaluate CA-PF. Accepts the published commands unchanged:

    python train.py --config experiments/human36m/hrnet_32.yaml --logdir ./logs [--eval]
    python -m torch.distributed.launch --nproc_per_node=1 --master_port=29500 train.py \
        --config experiments/human36m/train/human36m_vol_softmax_single.yaml --logdir ./logs
    torchrun --nproc_per_node=4 train.py --config ... --logdir ./logs
    python train.py --config experiments/synthetic/tiny.yaml --logdir ./logs --device cpu
    python train.py --config experiments/mpi_inf_3dhp/hrnet_32.yaml --logdir ./logs [--eval]

Errors in the inputs (config, labels, images, weights, device) end it with one line and exit
status 2.
"""
import argparse
import os
import shlex
import sys

from mvn.errors import CAPFError


def warn_once(message):
    """A warning printed by the first process only (torchrun starts one per GPU)."""
    if os.environ.get("RANK", "0") == "0":
        print("warning: %s" % message, file=sys.stderr)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML file under experiments/")
    parser.add_argument("--logdir", default="./logs", help="experiment folders go here")
    parser.add_argument("--eval", action="store_true", help="evaluate --checkpoint, no training")
    parser.add_argument("--eval_dataset", choices=("train", "val"), default="val",
                        help="split evaluated by --eval")
    parser.add_argument("--checkpoint", default=None,
                        help="weights for --eval; default checkpoint/best_epoch.bin (also finds "
                             "best_epoch_<backbone>.bin), for MPI-INF-3DHP configs the published "
                             "checkpoint/HRNet_32_64_no_refine_24_3214.pth (hrnet_32) or "
                             "HRNet_48_96_no_refine_45_3125.pth (hrnet_48)")
    parser.add_argument("--backbone", metavar="TYPE",
                        help="overrides model.backbone.type (hrnet_32, hrnet_48, cpn, hrnet_tiny: "
                             "the rows of mvn/models/backbones.py)")
    parser.add_argument("--resume", metavar="FOLDER|auto",
                        help="continue the experiment folder (or its checkpoints/last.bin) at the "
                             "exact step it stopped; 'auto': the folder --name names, continued "
                             "if it exists, else started (for schedulers and torchrun restarts)")
    parser.add_argument("--start-over", dest="start_over", action="store_true",
                        help="with --resume: when the folder has no intact checkpoint left "
                             "(damaged or missing) but holds results, train it from the "
                             "beginning, replacing them (without it such a resume is refused)")
    parser.add_argument("--name", help="experiment (or --eval) folder name under --logdir "
                                       "(default: <title>@<date-time>); with --resume auto, "
                                       "required")
    parser.add_argument("--seed", type=int, help="overrides seed")
    parser.add_argument("--device", choices=("cpu", "cuda"),
                        help="default: cuda when available (NCCL), else cpu (gloo)")
    parser.add_argument("--local_rank", "--local-rank", dest="local_rank", type=int,
                        help="set by torch.distributed.launch (LOCAL_RANK also works)")
    parser.add_argument("--opts", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides, e.g. train.batch_size=64 val.flip_test=false")
    return parser.parse_args(argv)


def config_from_args(args, warn=None):
    """The validated config of a command line: --config, then --backbone / --seed, then --opts."""
    overrides = list(args.opts)
    if args.backbone:
        overrides.append("model.backbone.type=%s" % args.backbone)
        # As the released train.py: --backbone cpn trains at batch 256 per process, unless
        # train.batch_size is set on the command line (docs/fidelity.md, "Batch size").
        from mvn.models.backbones import BACKBONES
        explicit = any(o.split("=", 1)[0].strip() == "train.batch_size" for o in args.opts)
        backbone = BACKBONES.get(args.backbone)
        if backbone is not None and backbone.backbone_flag_batch_size and not explicit:
            overrides.append("train.batch_size=%d" % backbone.backbone_flag_batch_size)
    if args.seed is not None:
        overrides.append("seed=%d" % args.seed)
    from mvn.config import load_config  # imports PyTorch (the backbone table): not for --help
    return load_config(args.config, overrides, warn=warn)


def default_checkpoint(config):
    """--eval's checkpoint when none is given: the published file of the config's benchmark."""
    from mvn import benchmarks
    return benchmarks.get(config.dataset.name).published_checkpoint(config.model.backbone.type)


TORCH_LAUNCHER_MODULES = ("torch.distributed.run", "torch.distributed.launch")


def parent_command_line():
    """The command line of this process's parent (the torchrun agent for a torchrun worker),
    or None where /proc does not tell."""
    try:
        with open("/proc/%d/cmdline" % os.getppid(), "rb") as f:
            words = f.read().split(b"\0")
    except OSError:
        return None
    return [w.decode(errors="replace") for w in words if w]


def launcher_words(environ, parent_argv, script="train.py"):
    """How train.py was launched, as the words before it: ['python'] for a plain process; for a
    torchrun (or python -m torch.distributed.run / launch) worker, the launcher and its options
    as the agent's command line (`parent_argv`) has them, else rebuilt from the variables
    torchrun sets (GROUP_WORLD_SIZE nodes, LOCAL_WORLD_SIZE processes per node)."""
    if "TORCHELASTIC_RUN_ID" not in environ and int(environ.get("WORLD_SIZE", "1")) <= 1:
        return ["python"]
    words = parent_argv or []
    for index, word in enumerate(words):
        if os.path.basename(word) == "torchrun":
            launcher, start = ["torchrun"], index + 1
        elif (word == "-m" and index + 1 < len(words)
              and words[index + 1] in TORCH_LAUNCHER_MODULES):
            launcher, start = ["python", "-m", words[index + 1]], index + 2
        else:
            continue
        for end in range(start, len(words)):
            if os.path.basename(words[end]) == os.path.basename(script):
                return launcher + words[start:end]
        break
    rebuilt = ["torchrun"]
    if environ.get("GROUP_WORLD_SIZE", "1") != "1":
        rebuilt.append("--nnodes=%s" % environ["GROUP_WORLD_SIZE"])
    rebuilt.append("--nproc_per_node=%s" % environ.get("LOCAL_WORLD_SIZE",
                                                       environ.get("WORLD_SIZE", "1")))
    if environ.get("TORCHELASTIC_MAX_RESTARTS", "0") != "0":
        rebuilt.append("--max-restarts=%s" % environ["TORCHELASTIC_MAX_RESTARTS"])
    return rebuilt


def resume_hint(argv, folder, environ=None, parent_argv=None):
    """The command line to continue a stopped run: the launcher it was started with
    (launcher_words; reconstructed, not recorded), the same arguments, --resume FOLDER."""
    environ = os.environ if environ is None else environ
    if parent_argv is None and "TORCHELASTIC_RUN_ID" in environ:
        parent_argv = parent_command_line()
    args, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--resume", "--name", "--local_rank", "--local-rank"):
            skip = True     # the launcher passes --local-rank itself (torch.distributed.launch)
            continue
        if not arg.startswith(("--resume=", "--name=", "--local_rank=", "--local-rank=")):
            args.append(arg)
    launcher = launcher_words(environ, parent_argv)
    nodes = environ.get("GROUP_WORLD_SIZE", "1")
    return "%s train.py %s --resume %s%s" % (
        " ".join(shlex.quote(w) for w in launcher), " ".join(shlex.quote(a) for a in args),
        shlex.quote(folder), "" if nodes == "1" else " (on each of the %s nodes)" % nodes)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    # PyTorch is imported here, after the arguments, so that `--help` is instant.
    from mvn import distributed, engine
    from mvn.tasks import task_of
    from mvn.checkpoint import find_checkpoint
    from mvn.stopping import EXIT_STOPPED, TrainingStopped, stop_when_launcher_dies

    processes = None
    stop_when_launcher_dies()  # torchrun's agent killed: its workers stop, not train on alone
    try:
        if args.start_over and not args.resume:
            raise CAPFError("--start-over is for a resume: pass it with --resume FOLDER (or "
                            "--resume auto --name NAME)")
        config = config_from_args(args, warn=warn_once)
        if args.eval:
            checkpoint = find_checkpoint(args.checkpoint or default_checkpoint(config),
                                         config.model.backbone.type)
        processes = distributed.setup_processes(args.device, args.local_rank,
                                                config.train.collective_timeout_s)
        if args.eval:
            engine.run_evaluation(config, processes, args.logdir, checkpoint, task_of(config),
                                  args.eval_dataset, name=args.name)
        else:
            engine.fit(config, processes, args.logdir, task_of(config), resume=args.resume,
                       name=args.name, start_over=args.start_over)
        # Every rank done before the group is torn down: a rank destroying its group while
        # another still finishes its work can abort the process at exit (seen once with gloo).
        distributed.barrier(processes)
    except TrainingStopped as stop:
        if processes is None or processes.is_main:
            print("%s; resume with: %s" % (stop, resume_hint(argv, stop.folder)),
                  file=sys.stderr)
        return EXIT_STOPPED
    except CAPFError as error:
        print("error: %s" % error, file=sys.stderr)
        return 2
    except RuntimeError as error:
        if processes is None or not processes.distributed or not distributed.is_timeout(error):
            raise
        missing = distributed.unresponsive_ranks(processes)
        print("error: rank %d on %s: %s did not answer within train.collective_timeout_s = %d s "
              "or closed its connection (frozen, killed, or on a dead node): %s. The run stops; "
              "resume it with --resume (torchrun --max-restarts does so with --resume auto)"
              % (processes.rank, processes.node,
                 "rank(s) %s" % ", ".join(map(str, missing)) if missing else "another process",
                 config.train.collective_timeout_s, str(error).splitlines()[0][:160]),
              file=sys.stderr)
        return 2
    finally:
        engine.end_loader_workers()
        if processes is not None:
            distributed.cleanup_processes(processes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
