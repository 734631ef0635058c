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


def resume_hint(argv, folder):
    """The command line to continue a stopped run: the same arguments, --resume FOLDER."""
    args, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--resume", "--name"):
            skip = True
            continue
        if not arg.startswith(("--resume=", "--name=")):
            args.append(arg)
    return "python train.py %s --resume %s" % (" ".join(shlex.quote(a) for a in args),
                                              shlex.quote(folder))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    # PyTorch is imported here, after the arguments, so that `--help` is instant.
    from mvn import distributed, engine
    from mvn.checkpoint import find_checkpoint
    from mvn.stopping import EXIT_STOPPED, TrainingStopped

    processes = None
    try:
        config = config_from_args(args, warn=warn_once)
        if args.eval:
            checkpoint = find_checkpoint(args.checkpoint or default_checkpoint(config),
                                         config.model.backbone.type)
        processes = distributed.setup_processes(args.device, args.local_rank,
                                                config.train.collective_timeout_s)
        if args.eval:
            engine.run_evaluation(config, processes, args.logdir, checkpoint, args.eval_dataset,
                                  name=args.name)
        else:
            engine.fit(config, processes, args.logdir, resume=args.resume, name=args.name)
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
