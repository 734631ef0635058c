"""What the data-preparation scripts share: worker processes with a progress bar, and running a
script so that a user error is one line.

Used by both toolboxes (H36M-Toolbox/ through h36m_toolbox.py, MPI-INF-3DHP-Toolbox/).
"""
import multiprocessing
import os
import pickle
import sys
import warnings

from tqdm import tqdm

from mvn.errors import CAPFError


def default_workers():
    """The cores this process may use, at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def _init_worker():
    import cv2
    cv2.setNumThreads(1)  # one process per core: no oversubscription


def parallel_map(function, jobs, workers, description, unit="seq"):
    """Yield `function(job)` for each job, in order, with a progress bar; in `workers` processes
    when there are more than one.

    Results make one pickle round trip either way, so what is written from them does not depend
    on the number of workers. Processes are spawned, not forked: a process that already used
    OpenCV's thread pool deadlocks its forked children.
    """
    jobs = list(jobs)
    bar = tqdm(total=len(jobs), desc=description, unit=unit, dynamic_ncols=True)
    try:
        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                yield pickle.loads(pickle.dumps(function(job), protocol=pickle.HIGHEST_PROTOCOL))
                bar.update()
        else:
            context = multiprocessing.get_context("spawn")
            with context.Pool(min(workers, len(jobs)), initializer=_init_worker) as pool:
                for result in pool.imap(function, jobs):
                    yield result
                    bar.update()
    finally:
        bar.close()


def _show_warning(message, category, filename, lineno, file=None, line=None):
    tqdm.write("WARNING: %s" % message, file=sys.stderr)


def run_script(main, argv=None):
    """Run `main(argv)` as a command: a CAPFError prints "error: <message>" and exits 2 (no
    traceback), Ctrl-C exits 130; warnings print as one line above the progress bars."""
    warnings.showwarning = _show_warning
    try:
        main(argv)
    except CAPFError as error:
        sys.stderr.write("error: %s\n" % error)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
