"""train.py's command line before any work: --help must not wait for PyTorch."""
import subprocess
import sys

from conftest import REPO_ROOT


def test_help_imports_no_torch():
    result = subprocess.run([sys.executable, "-X", "importtime", "train.py", "--help"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "--resume" in result.stdout
    imported = [line.split("|")[-1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")]
    assert "mvn.errors" in imported                             # the check sees imports at all
    assert not [name for name in imported if name.split(".")[0] == "torch"]


# ------------------------------------------------------------------------- the resume hint

TORCHRUN_ENV = {"TORCHELASTIC_RUN_ID": "none", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2",
                "GROUP_WORLD_SIZE": "1", "TORCHELASTIC_MAX_RESTARTS": "0"}


def hint(argv, environ, parent=None):
    import train
    return train.resume_hint(argv, "/logs/run 1", environ=environ, parent_argv=parent)


def test_the_resume_hint_of_a_plain_run_is_python_train_py():
    assert hint(["--config", "c.yaml", "--name", "x", "--opts", "a=1"], {}) == \
        "python train.py --config c.yaml --opts a=1 --resume '/logs/run 1'"


def test_the_resume_hint_repeats_the_torchrun_command_of_the_agent():
    argv = ["--config", "c.yaml", "--resume", "auto", "--name", "x", "--opts", "a=1"]
    agent = ["/venv/bin/python3", "/venv/bin/torchrun", "--nproc_per_node=2",
             "--master_port", "29501", "train.py"] + argv
    assert hint(argv, TORCHRUN_ENV, agent) == \
        "torchrun --nproc_per_node=2 --master_port 29501 train.py --config c.yaml --opts a=1 " \
        "--resume '/logs/run 1'"
    module = ["python", "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
              "--rdzv-backend=c10d", "--rdzv-endpoint=localhost:29400", "--max-restarts=3",
              "/src/capf/train.py"] + argv
    assert hint(argv, TORCHRUN_ENV, module) == \
        "python -m torch.distributed.run --nnodes=1 --nproc_per_node=2 --rdzv-backend=c10d " \
        "--rdzv-endpoint=localhost:29400 --max-restarts=3 train.py --config c.yaml --opts a=1 " \
        "--resume '/logs/run 1'"


def test_the_resume_hint_of_torch_distributed_launch_leaves_out_local_rank():
    argv = ["--local-rank=0", "--config", "c.yaml"]
    agent = ["python", "-m", "torch.distributed.launch", "--nproc_per_node=1",
             "--master_port=29500", "train.py", "--local-rank=0", "--config", "c.yaml"]
    environ = dict(TORCHRUN_ENV, WORLD_SIZE="1", LOCAL_WORLD_SIZE="1")
    assert hint(argv, environ, agent) == \
        "python -m torch.distributed.launch --nproc_per_node=1 --master_port=29500 train.py " \
        "--config c.yaml --resume '/logs/run 1'"


def test_without_the_agent_command_the_hint_is_rebuilt_from_torchrun_variables():
    environ = dict(TORCHRUN_ENV, WORLD_SIZE="8", LOCAL_WORLD_SIZE="4", GROUP_WORLD_SIZE="2",
                   TORCHELASTIC_MAX_RESTARTS="3")
    assert hint(["--config", "c.yaml"], environ, ["/sbin/init"]) == \
        "torchrun --nnodes=2 --nproc_per_node=4 --max-restarts=3 train.py --config c.yaml " \
        "--resume '/logs/run 1' (on each of the 2 nodes)"
    assert hint(["--config", "c.yaml"], dict(TORCHRUN_ENV), None) == \
        "torchrun --nproc_per_node=2 train.py --config c.yaml --resume '/logs/run 1'"
