"""Stopping a run cleanly: SIGTERM / SIGUSR1 (what a cluster scheduler sends before it kills a
job) and Ctrl-C end the step in flight, every process agrees, `last.bin` is written, and the run
exits with EXIT_STOPPED and one line saying how to resume.

A signal only sets a flag; the training loop asks `StopSignals.requested(processes)` after every
step, which combines the flags of every process (so all stop after the same step).
"""
import ctypes
import ctypes.util
import os
import signal
import sys

import cv2
import torch
import torch.distributed as dist

from mvn.errors import CAPFError

EXIT_STOPPED = 75          # "temporary failure" (sysexits EX_TEMPFAIL): resumable, not an error
STOP_SIGNALS = ("SIGTERM", "SIGUSR1", "SIGINT")


PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h): a signal when the parent dies


def stop_when_launcher_dies():
    """Under torchrun: ask Linux to send this worker SIGTERM when its agent dies (a kill -9 of
    the agent, the node's job step ending it), so the worker stops as on any stop signal (its
    step ended, last.bin written) instead of training on as an orphan. True when armed; a
    launcher already gone by now counts as that signal. Elsewhere (no torchrun, not Linux):
    False, nothing changes."""
    if "TORCHELASTIC_RUN_ID" not in os.environ or not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the agent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
    return True


class EvaluationStopped(Exception):
    """A stop signal during an evaluation inside training: the evaluation ends at the next batch
    on every rank (mvn.engine.predict_in_shards); fit saves and raises TrainingStopped."""


class TrainingStopped(CAPFError):
    """The run stopped on a signal after saving its state; the message says how to resume."""

    def __init__(self, message, epoch, step, folder):
        super().__init__(message)
        self.epoch, self.step, self.folder = epoch, step, folder


class StopSignals:
    """Installs handlers for STOP_SIGNALS that record the signal instead of raising; restores
    the previous handlers on close(). Use as a context manager around the training loop."""

    def __init__(self):
        self.received = None
        self._previous = {}

    def __enter__(self):
        return self.install()

    def install(self):
        """Handle STOP_SIGNALS from now on (until close())."""
        for name in STOP_SIGNALS:
            number = getattr(signal, name, None)
            if number is not None:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    def _handle(self, number, frame):
        self.received = signal.Signals(number).name

    def requested(self, processes, group=None):
        """True on every process when any of them received a stop signal."""
        flag = torch.tensor([1 if self.received else 0], dtype=torch.int32)
        if processes.distributed:
            dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=group)
        return bool(flag.item())


def worker_init(worker_id):
    """DataLoader workers are the parallelism: OpenCV's own threads would oversubscribe. A
    scheduler's stop (SIGTERM / SIGUSR1 to the whole process group, as SLURM and Kubernetes
    send it) and Ctrl-C are the main process's to handle: it finishes its step, writes last.bin
    and ends the workers itself. A worker that died first would end the run with a traceback."""
    cv2.setNumThreads(0)
    for name in STOP_SIGNALS:
        number = getattr(signal, name, None)
        if number is not None:
            signal.signal(number, signal.SIG_IGN)
