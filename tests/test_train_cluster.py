"""train.py as a cluster runs it (CPU, gloo, 127.0.0.1; every wait bounded): kill -9 at a
random step and resume bit for bit (1 and 2 processes), SIGTERM, torchrun restarts with
--resume auto, a frozen rank, two agents as two nodes, two runs started at once, two store
builds on one folder."""
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import REPO_ROOT, free_port, run_toolbox
from test_train import CONFIG, options, only_folder

# End-to-end runs (subprocesses, training): left out of `pytest -m "not slow"`.
pytestmark = pytest.mark.slow


STEPS = 8  # steps per epoch: long enough to be killed in the middle


def read(path):
    with open(path) as f:
        return f.read()


def run_options(root, **extra):
    values = {"train.n_epochs": 2, "train.max_steps_per_epoch": STEPS, "train.batch_size": 4,
              "train.checkpoint_every_steps": 1}
    values.update(extra)
    return options(root, **values)


def launcher(nproc, restarts=0):
    """python train.py, or torchrun with nproc workers (with restarts: the c10d rendezvous, as
    README recommends for jobs that restart)."""
    if nproc == 1:
        return [sys.executable, "train.py"]
    if restarts:
        return [sys.executable, "-m", "torch.distributed.run", "--nnodes=1",
                "--nproc_per_node=%d" % nproc, "--rdzv-backend=c10d",
                "--rdzv-endpoint=127.0.0.1:%d" % free_port(), "--max-restarts=%d" % restarts,
                "train.py"]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=%d" % nproc,
            "--master_addr=127.0.0.1", "--master_port=%d" % free_port(), "train.py"]


def start(command, log):
    """Popen in its own process group (so that kill -9 reaches the workers), output to `log`."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    handle = open(log, "w")
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=handle,
                               stderr=subprocess.STDOUT, start_new_session=True)
    process.log_handle = handle
    return process


def kill_all(process):
    """kill -9 the launched process and every process it started (torchrun's workers may live
    in process groups of their own)."""
    for pid in descendants(process.pid) + [process.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def finish(process, timeout=300):
    try:
        return process.wait(timeout)
    finally:
        if process.poll() is None:
            kill_all(process)
            process.wait()
        process.log_handle.close()


def position(folder):
    """(epoch, step) of the folder's last.bin, or None while there is none (or it is moving)."""
    try:
        last = torch.load(os.path.join(folder, "checkpoints", "last.bin"), weights_only=True)
    except Exception:  # noqa: BLE001 - absent, or being replaced right now: ask again
        return None
    return last["epoch"], last.get("step", 0)


def wait_until(condition, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail("waited %d s for %s" % (timeout, what))


def final_state(folder):
    return torch.load(os.path.join(folder, "checkpoints", "last.bin"), weights_only=True)


def assert_same_run(a, b):
    assert (a["epoch"], a["step"]) == (b["epoch"], b["step"]) == (2, 0)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    drop = ("samples_per_s",)
    assert [{k: v for k, v in h.items() if k not in drop} for h in a["history"]] == \
        [{k: v for k, v in h.items() if k not in drop} for h in b["history"]]


def resume_auto_and_compare(nproc, root, logdir, tmp_path, straight):
    """`--resume auto --name run` with `nproc` processes finishes the run in logdir/run, and its
    final state is bit-identical to the uninterrupted run's."""
    resumed = start(launcher(nproc) + ["--config", CONFIG, "--logdir", logdir, "--device", "cpu",
                                       "--resume", "auto", "--name", "run", "--opts"]
                    + run_options(root), str(tmp_path / "resume.log"))
    assert finish(resumed) == 0, read(tmp_path / "resume.log")[-3000:]
    assert_same_run(straight[nproc], final_state(os.path.join(logdir, "run")))


@pytest.fixture(scope="module")
def straight(synthetic_h36m, tmp_path_factory):
    """Uninterrupted runs, 1 and 2 processes: their final last.bin."""
    runs = {}
    for nproc in (1, 2):
        logdir = str(tmp_path_factory.mktemp("straight%d" % nproc))
        process = start(launcher(nproc) + ["--config", CONFIG, "--logdir", logdir, "--device",
                                           "cpu", "--opts"] + run_options(synthetic_h36m),
                        os.path.join(logdir, "..", "straight%d.log" % nproc))
        assert finish(process) == 0
        runs[nproc] = final_state(only_folder(logdir))
    return runs


@pytest.mark.parametrize("nproc", [1, 2])
def test_kill_9_at_a_random_step_then_resume_is_bit_exact(synthetic_h36m, straight, tmp_path,
                                                          nproc):
    logdir = str(tmp_path / "logs")
    base = ["--config", CONFIG, "--logdir", logdir, "--device", "cpu", "--name", "run"]
    process = start(launcher(nproc) + base + ["--opts"] + run_options(synthetic_h36m),
                    str(tmp_path / "first.log"))
    folder = os.path.join(logdir, "run")
    target = (random.Random(nproc).randint(0, 1), random.Random(nproc + 7).randint(2, STEPS - 3))
    try:
        wait_until(lambda: (position(folder) or (-1, -1)) >= target, 240, "step %s" % (target,))
    finally:
        kill_all(process)
        finish(process)
    killed_at = position(folder)
    assert killed_at is not None and killed_at < (2, 0)
    resumed = start(launcher(nproc) + ["--config", CONFIG, "--logdir", logdir, "--device", "cpu",
                                       "--resume", folder, "--opts"]
                    + run_options(synthetic_h36m), str(tmp_path / "resume.log"))
    assert finish(resumed) == 0, read(tmp_path / "resume.log")[-3000:]
    assert "resuming from" in read(tmp_path / "resume.log")
    assert_same_run(straight[nproc], final_state(folder))


def test_a_kill_during_the_first_save_is_resumable(synthetic_h36m, straight, tmp_path):
    # What a kill -9 in the middle of the very first save leaves: the run's config and a
    # partial temporary file, no complete checkpoint.
    logdir = str(tmp_path / "logs")
    process = start(launcher(1) + ["--config", CONFIG, "--logdir", logdir, "--device", "cpu",
                                   "--name", "run", "--opts"] + run_options(synthetic_h36m),
                    str(tmp_path / "first.log"))
    folder = os.path.join(logdir, "run")
    try:
        wait_until(lambda: os.path.isfile(os.path.join(folder, "config.yaml")), 120, "start")
    finally:
        kill_all(process)
        finish(process)
    os.makedirs(os.path.join(folder, "checkpoints"), exist_ok=True)
    for name in ("last.bin", "last.previous.bin"):
        path = os.path.join(folder, "checkpoints", name)
        if os.path.exists(path):
            os.remove(path)
    open(os.path.join(folder, "checkpoints", "last.bin.tmp"), "w").close()   # 0 bytes
    resumed = start(launcher(1) + ["--config", CONFIG, "--logdir", logdir, "--device", "cpu",
                                   "--resume", folder, "--opts"] + run_options(synthetic_h36m),
                    str(tmp_path / "resume.log"))
    assert finish(resumed) == 0, read(tmp_path / "resume.log")[-3000:]
    assert "no complete checkpoint yet: starting from the beginning" in \
        read(tmp_path / "resume.log")
    assert not os.path.exists(os.path.join(folder, "checkpoints", "last.bin.tmp"))
    assert_same_run(straight[1], final_state(folder))


@pytest.mark.parametrize("target, workers", [("the main process", 0),
                                             ("the process group", 2)])
def test_sigterm_stops_after_the_step_with_one_line_and_resumes_exactly(synthetic_h36m,
                                                                        straight, tmp_path,
                                                                        target, workers):
    """SIGTERM to train.py, or to its whole process group with DataLoader workers (what SLURM's
    scancel and Kubernetes send): the workers leave the stop to the main process, which ends the
    step, writes last.bin and exits 75; the resume is bit-identical to the uninterrupted run."""
    logdir = str(tmp_path / "logs")
    command = launcher(1) + ["--config", CONFIG, "--logdir", logdir, "--device", "cpu", "--name",
                             "run", "--opts"] + run_options(synthetic_h36m,
                                                            **{"dataset.num_workers": workers})
    process = start(command, str(tmp_path / "first.log"))
    folder = os.path.join(logdir, "run")
    wait_until(lambda: (position(folder) or (-1, -1)) >= (0, 4), 240, "step 4")
    if target == "the process group":  # start() made train.py a session (and group) leader
        os.killpg(process.pid, signal.SIGTERM)
    else:
        os.kill(process.pid, signal.SIGTERM)
    assert finish(process, timeout=120) == 75                      # EXIT_STOPPED
    text = read(tmp_path / "first.log")
    assert "Traceback" not in text
    line = [l for l in text.replace("\r", "\n").splitlines() if "stopped by SIGTERM" in l]
    assert len(line) == 1 and "resume with: python train.py" in line[0]
    assert "--resume %s" % folder in line[0]
    epoch, step = position(folder)
    assert "at epoch %d step %d" % (epoch, step) in line[0] and (epoch, step) < (2, 0)
    resume_auto_and_compare(1, synthetic_h36m, logdir, tmp_path, straight)


def test_sigterm_to_a_torchrun_jobs_process_group_stops_every_rank_and_resumes_exactly(
        synthetic_h36m, straight, tmp_path):
    """scancel on a 2-process torchrun job: SIGTERM reaches the agent, both ranks and their
    DataLoader workers at once. The ranks end the step together, rank 0 writes last.bin and
    prints one line repeating the launcher; torchrun itself then reports its workers' exit
    (README: its own status is not 75). The resume is bit-identical to the uninterrupted run."""
    logdir = str(tmp_path / "logs")
    command = launcher(2) + ["--config", CONFIG, "--logdir", logdir, "--device", "cpu", "--name",
                             "run", "--opts"] + run_options(synthetic_h36m,
                                                            **{"dataset.num_workers": 1})
    process = start(command, str(tmp_path / "first.log"))
    folder = os.path.join(logdir, "run")
    try:
        wait_until(lambda: (position(folder) or (-1, -1)) >= (0, 3), 240, "step 3")
        job = descendants(process.pid)  # the ranks and their DataLoader workers
        assert len(job) >= 4
        os.killpg(process.pid, signal.SIGTERM)  # the agent leads the group: all of the job
    except BaseException:
        finish(process, timeout=1)
        raise
    code = finish(process, timeout=120)
    text = read(tmp_path / "first.log")
    assert code != 0
    assert not [pid for pid in job if alive(pid)]  # nothing of the job left running
    lines = [l for l in text.replace("\r", "\n").splitlines() if "stopped by SIGTERM" in l]
    assert len(lines) == 1 and "--nproc_per_node=2" in lines[0], text[-3000:]
    epoch, step = position(folder)
    assert "at epoch %d step %d" % (epoch, step) in lines[0] and (epoch, step) < (2, 0)
    resume_auto_and_compare(2, synthetic_h36m, logdir, tmp_path, straight)


@pytest.mark.parametrize("nproc", [1, 2])
def test_sigterm_during_an_evaluation_stops_within_a_batch_and_the_resume_redoes_it(
        synthetic_h36m, straight, tmp_path, nproc):
    """SIGTERM to the process group while the first epoch's evaluation runs (one frame per batch
    here, so that it lasts): the evaluation ends at the next batch on every rank, last.bin keeps
    the epoch's steps, the line says the evaluation is redone, and the resume (with the usual
    batch) is bit-identical to the uninterrupted run."""
    logdir = str(tmp_path / "logs")
    log = str(tmp_path / "first.log")
    process = start(launcher(nproc) + [
        "--config", CONFIG, "--logdir", logdir, "--device", "cpu", "--name", "run", "--opts"]
        + run_options(synthetic_h36m, **{"val.batch_size": 1}), log)
    folder = os.path.join(logdir, "run")
    try:
        wait_until(lambda: "evaluate:" in read(log), 300, "the evaluation")
        os.killpg(process.pid, signal.SIGTERM)
    except BaseException:
        finish(process, timeout=1)
        raise
    started = time.time()
    code = finish(process, timeout=120)
    assert time.time() - started < 30  # within SLURM's default grace
    assert code == 75 if nproc == 1 else code != 0
    text = read(log)
    lines = [l for l in text.replace("\r", "\n").splitlines() if "stopped by SIGTERM" in l]
    assert len(lines) == 1, text[-3000:]
    assert "at epoch 0 step %d (during the epoch's evaluation, which the resume does again)" \
        % STEPS in lines[0]
    assert position(folder) == (0, STEPS)
    assert not os.path.exists(os.path.join(folder, "checkpoints", "best_epoch.bin"))
    resume_auto_and_compare(nproc, synthetic_h36m, logdir, tmp_path, straight)


def test_a_killed_torchrun_agent_stops_its_workers_cleanly(synthetic_h36m, straight, tmp_path):
    """kill -9 of the torchrun agent alone: Linux sends its workers SIGTERM (PR_SET_PDEATHSIG,
    mvn.stopping.stop_when_launcher_dies); they stop after the same step with last.bin written
    instead of training on as orphans, and the resume is bit-identical."""
    logdir = str(tmp_path / "logs")
    process = start(launcher(2) + ["--config", CONFIG, "--logdir", logdir, "--device", "cpu",
                                   "--name", "run", "--opts"] + run_options(synthetic_h36m),
                    str(tmp_path / "first.log"))
    folder = os.path.join(logdir, "run")
    try:
        wait_until(lambda: (position(folder) or (-1, -1)) >= (0, 3), 240, "step 3")
        workers = wait_until(lambda: worker_pids(process.pid), 30, "the workers")
        os.kill(process.pid, signal.SIGKILL)                 # the agent only
        wait_until(lambda: not [pid for pid in workers if alive(pid)], 120,
                   "the workers to stop")
    finally:
        finish(process, timeout=5)
    text = read(tmp_path / "first.log")
    lines = [l for l in text.replace("\r", "\n").splitlines() if "stopped by SIGTERM" in l]
    assert len(lines) == 1, text[-3000:]
    epoch, step = position(folder)
    assert "at epoch %d step %d" % (epoch, step) in lines[0] and (epoch, step) < (2, 0)
    resume_auto_and_compare(2, synthetic_h36m, logdir, tmp_path, straight)


def alive(pid):
    """True while `pid` runs (a zombie, exited but not yet reaped, counts as gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def children(parent):
    """(pid, command line) of the processes whose parent is `parent` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open("/proc/%s/cmdline" % entry) as f:
                cmdline = f.read()
        except OSError:
            continue
        if ppid == parent:
            found.append((int(entry), cmdline))
    return found


def descendants(pid):
    out = []
    for child, _ in children(pid):
        out += [child] + descendants(child)
    return out


def worker_pids(agent_pid):
    """The train.py processes started by a torchrun agent."""
    return sorted(pid for pid, cmdline in children(agent_pid) if "train.py" in cmdline)


def test_torchrun_restarts_a_killed_worker_and_resume_auto_finishes_the_same_run(
        synthetic_h36m, straight, tmp_path):
    logdir = str(tmp_path / "logs")
    process = start(launcher(2, restarts=1) + [
        "--config", CONFIG, "--logdir", logdir, "--device", "cpu", "--resume", "auto", "--name",
        "run", "--opts"] + run_options(synthetic_h36m), str(tmp_path / "run.log"))
    folder = os.path.join(logdir, "run")
    try:
        wait_until(lambda: (position(folder) or (-1, -1)) >= (0, 5), 240, "step 5")
        workers = wait_until(lambda: worker_pids(process.pid), 30, "the workers")
        os.kill(workers[-1], signal.SIGKILL)                          # a dead worker
    except BaseException:
        finish(process, timeout=1)
        raise
    assert finish(process, timeout=400) == 0, read(tmp_path / "run.log")[-3000:]
    assert "resuming from" in read(tmp_path / "run.log")
    assert_same_run(straight[2], final_state(folder))


def test_a_frozen_rank_ends_the_job_within_the_timeout_naming_it(synthetic_h36m, tmp_path):
    timeout_s = 8
    logdir = str(tmp_path / "logs")
    process = start(launcher(2) + [
        "--config", CONFIG, "--logdir", logdir, "--device", "cpu", "--name", "run", "--opts"]
        + run_options(synthetic_h36m, **{"train.collective_timeout_s": timeout_s}),
        str(tmp_path / "run.log"))
    folder = os.path.join(logdir, "run")
    try:
        wait_until(lambda: (position(folder) or (-1, -1)) >= (0, 3), 240, "step 3")
        workers = wait_until(lambda: worker_pids(process.pid), 30, "the workers")
        frozen = time.time()
        os.kill(workers[-1], signal.SIGSTOP)                          # rank 1 stops answering

        def message():
            text = read(tmp_path / "run.log")
            return [l for l in text.splitlines() if "did not answer within" in l]
        lines = wait_until(message, timeout_s + 30, "the timeout message")
        assert time.time() - frozen < timeout_s + 30
        assert "rank 0" in lines[0] and "collective_timeout_s = %d s" % timeout_s in lines[0]
        assert "rank 0" in lines[0] and "rank(s) 1 did not answer" in lines[0]   # the frozen one
        for pid in workers:
            if os.path.exists("/proc/%d" % pid):
                os.kill(pid, signal.SIGCONT)
        assert finish(process, timeout=90) != 0
    finally:
        if process.poll() is None:
            finish(process, timeout=1)


def test_two_agents_as_two_nodes_train_and_evaluate_like_one_process(synthetic_h36m,
                                                                     tmp_path):
    logdir = str(tmp_path / "logs")
    common = ["--config", CONFIG, "--device", "cpu", "--opts"] + options(synthetic_h36m)

    def two_nodes(args, name):
        port = free_port()
        agents = [start([sys.executable, "-m", "torch.distributed.run", "--nnodes=2",
                         "--nproc_per_node=1", "--rdzv-backend=c10d",
                         "--rdzv-endpoint=127.0.0.1:%d" % port, "--rdzv-id=%s" % name,
                         "train.py"] + args, str(tmp_path / ("%s%d.log" % (name, n))))
                  for n in range(2)]
        codes = [finish(agent, timeout=300) for agent in agents]
        assert codes == [0, 0], read(tmp_path / ("%s0.log" % name))[-3000:]
        return read(tmp_path / ("%s0.log" % name)) + read(tmp_path / ("%s1.log" % name))

    text = two_nodes(["--logdir", logdir] + common, "train")
    folder = only_folder(logdir)
    assert "rank 0]" in text                                          # node and rank in the logs
    checkpoint = os.path.join(folder, "checkpoints", "best_epoch.bin")
    two_nodes(["--logdir", str(tmp_path / "eval2"), "--eval", "--checkpoint", checkpoint]
              + common, "eval")
    # Same thread count as the two agents (start() sets OMP_NUM_THREADS=1): CPU sums depend on it
    one = subprocess.run(launcher(1) + ["--logdir", str(tmp_path / "eval1"), "--eval",
                                        "--checkpoint", checkpoint] + common,
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert one.returncode == 0, one.stderr[-3000:]
    tables = [json.loads(read(os.path.join(only_folder(str(tmp_path / d)), "evaluation.json")))
              for d in ("eval1", "eval2")]
    assert tables[0] == tables[1]


def test_two_runs_started_at_once_get_two_complete_folders(synthetic_h36m, tmp_path):
    logdir = str(tmp_path / "logs")
    command = launcher(1) + ["--config", CONFIG, "--logdir", logdir, "--device", "cpu",
                             "--opts"] + options(synthetic_h36m)
    runs = [start(command, str(tmp_path / ("run%d.log" % n))) for n in range(2)]
    assert [finish(run) for run in runs] == [0, 0]
    folders = sorted(os.listdir(logdir))
    assert len(folders) == 2
    for name in folders:
        for part in ("config.yaml", "checkpoints/last.bin", "best_evaluation.json"):
            assert os.path.isfile(os.path.join(logdir, name, part)), (name, part)


def test_two_store_builds_on_one_folder_never_damage_it(synthetic_h36m, tmp_path):
    script = os.path.join(REPO_ROOT, "H36M-Toolbox", "prepare_store.py")
    for trial in range(3):
        out = str(tmp_path / ("store%d" % trial))
        command = [sys.executable, script, "--root", synthetic_h36m, "--out", out, "--splits",
                   "val", "--source", "images", "--workers", "1"]
        builds = [start(command, str(tmp_path / ("build%d_%d.log" % (trial, n))))
                  for n in range(2)]
        codes = [finish(build, timeout=300) for build in builds]
        logs = [read(tmp_path / ("build%d_%d.log" % (trial, n))) for n in range(2)]
        for code, log in zip(codes, logs):
            assert code == 0 or (code == 2 and "another prepare_store.py build is running" in log
                                 and "--overwrite" not in log), log[-2000:]
        assert 0 in codes
        result = run_toolbox("prepare_store.py", "--out", out, "--verify")
        assert "val: 96 frames, complete, readable and matching their checksums" in result.stdout


def test_a_second_run_on_a_busy_folder_is_refused_and_the_first_is_untouched(synthetic_h36m,
                                                                            straight, tmp_path):
    """One run per experiment folder: a second `--resume auto --name run` (a requeue while the
    first still runs) and a `--resume <folder>` are refused with one line naming the running
    one; the first completes bit-identical to a run alone."""
    logdir = str(tmp_path / "logs")
    auto = launcher(1) + ["--config", CONFIG, "--logdir", logdir, "--device", "cpu", "--resume",
                          "auto", "--name", "run", "--opts"] + run_options(synthetic_h36m)
    first = start(auto, str(tmp_path / "first.log"))
    folder = os.path.join(logdir, "run")
    wait_until(lambda: (position(folder) or (-1, -1)) >= (0, 2), 240, "step 2")
    for n, command in enumerate([auto, launcher(1) + ["--config", CONFIG, "--logdir", logdir,
                                                      "--device", "cpu", "--resume", folder,
                                                      "--opts"] + run_options(synthetic_h36m)]):
        second = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True,
                                timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"))
        assert second.returncode == 2, second.stderr[-2000:]
        (line,) = [l for l in second.stderr.splitlines() if l.startswith("error: ")]
        assert "is being trained by another run (pid %d on " % first.pid in line, line
    assert finish(first) == 0, read(tmp_path / "first.log")[-3000:]
    assert_same_run(straight[1], final_state(folder))
    # once the first has ended, the folder is free: a resume of the finished run is accepted
    again = subprocess.run(auto, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert again.returncode == 0, again.stderr[-2000:]


def test_resume_from_a_named_file_uses_that_file_or_refuses(synthetic_h36m, tmp_path):
    logdir = str(tmp_path / "logs")
    common = ["--config", CONFIG, "--logdir", logdir, "--device", "cpu"]
    options_ = ["--opts"] + run_options(synthetic_h36m, **{"train.n_epochs": 1})
    process = start(launcher(1) + common + ["--name", "run"] + options_, str(tmp_path / "a.log"))
    assert finish(process) == 0
    folder = os.path.join(logdir, "run")
    checkpoints = os.path.join(folder, "checkpoints")
    # the epoch-end last.bin is (1, 0); an earlier state kept under another name
    state = final_state(folder)
    state["epoch"], state["step"] = 0, 3
    torch.save(state, os.path.join(checkpoints, "step3.bin"))
    resumed = subprocess.run(launcher(1) + common + ["--resume",
                                                     os.path.join(checkpoints, "step3.bin")]
                             + options_, cwd=REPO_ROOT, capture_output=True, text=True,
                             timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from %s: epoch 0, step 3" % os.path.join(checkpoints, "step3.bin") \
        in resumed.stderr
    with open(os.path.join(checkpoints, "broken.bin"), "wb") as f:
        f.write(b"not a checkpoint")
    refused = subprocess.run(launcher(1) + common + ["--resume",
                                                     os.path.join(checkpoints, "broken.bin")]
                             + options_, cwd=REPO_ROOT, capture_output=True, text=True,
                             timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert refused.returncode == 2
    (line,) = [l for l in refused.stderr.splitlines() if l.startswith("error: ")]
    assert "--resume %s" % os.path.join(checkpoints, "broken.bin") in line
    for name in ("../outside", "a/b", ".."):
        bad = subprocess.run(launcher(1) + common + ["--name", name] + options_, cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=120)
        assert bad.returncode == 2 and "must be a plain folder name" in bad.stderr, bad.stderr
    assert sorted(os.listdir(tmp_path)) == ["a.log", "logs"]   # nothing made outside --logdir
