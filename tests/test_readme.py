"""README.md's commands and code, run as written."""
import os
import re
import subprocess
import sys

import torch

from conftest import REPO_ROOT
from mvn.checkpoint import model_state_with_module_prefix
from mvn.config import load_config
from mvn.models import build_model


def readme_python_blocks():
    with open(os.path.join(REPO_ROOT, "README.md")) as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


def test_using_the_model_from_python_runs_as_written(synthetic_h36m, tmp_path):
    """The README's snippet, in a folder laid out as after `python3 quickstart.py`: the quick
    start's config, its synthetic data (here a smaller set) and a checkpoint of its model."""
    (block,) = readme_python_blocks()
    os.symlink(os.path.join(REPO_ROOT, "experiments"), tmp_path / "experiments")
    os.makedirs(tmp_path / "data")
    os.symlink(synthetic_h36m, tmp_path / "data" / "synthetic_h36m")
    folder = tmp_path / "logs" / "quickstart" / "synthetic_quickstart@20261126-120000"
    os.makedirs(folder / "checkpoints")
    model = build_model(load_config(os.path.join(REPO_ROOT, "experiments/synthetic/quickstart.yaml")))
    torch.save({"epoch": 1, "lr": 0.001, "model": model_state_with_module_prefix(model),
                "optimizer": {}}, folder / "checkpoints" / "best_epoch.bin")
    result = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = result.stdout.splitlines()
    # the same 8 frames evaluated here, through the evaluation's own path
    from mvn.human36m.dataset import Human36MDataset
    from mvn.distributed import single_process
    from mvn.engine import predict
    config = load_config(None, ["model.backbone.type=hrnet_tiny", "model.backbone.pretrained=none",
                                "model.embed_dim_ratio=32", "model.drop_path_rate=0.0",
                                "val.batch_size=8", "val.max_batches=1", "dataset.num_workers=0"])
    dataset = Human36MDataset(os.path.join(synthetic_h36m, "images"),
                              os.path.join(synthetic_h36m, "h36m_validation.pkl"),
                              frame_stride=4)  # quickstart.yaml's dataset.val_frame_stride
    predictions, targets = predict(model.eval(), dataset, config, single_process(), progress=False)
    expected_mm = 1000 * (predictions - targets).norm(dim=-1).mean().item()
    assert line == "MPJPE on these 8 frames: %.1f mm" % expected_mm
