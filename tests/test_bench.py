"""The speed options bench/bench_step.py measures (train.amp, train.channels_last) against fp32 on
the tiny reference vectors, and both bench scripts end to end on small inputs. (train.compile
takes ~2 minutes to compile even the tiny model on a CPU: bench_step.py checks it.)"""
import os
import re
import sys

import pytest
import torch

from conftest import REPO_ROOT, load_reference, run_toolbox
from mvn import recipe
from mvn.config import load_config
from mvn.models import build_model

sys.path.insert(0, os.path.join(REPO_ROOT, "bench"))  # scripts, not a package
import bench_checkpoint  # noqa: E402
import bench_data  # noqa: E402
import bench_demo  # noqa: E402
import bench_feature_cache  # noqa: E402
import bench_step  # noqa: E402

# End-to-end runs (subprocesses, training): left out of `pytest -m "not slow"`.
pytestmark = pytest.mark.slow


TINY = ["model.backbone.type=hrnet_tiny", "model.embed_dim_ratio=32"]
# bf16 keeps 8 mantissa bits: on the tiny vectors (outputs up to 2.2 m, random-like weights
# whose features grow to ~1e3) autocast moves the output by at most 96 mm (4.3%; fp32 vs the
# reference: 0.007 mm). The bound leaves room for other CPUs' bf16 kernels.
AMP_BOUND_M = 0.15


@pytest.fixture(scope="module")
def tiny():
    reference = load_reference("tiny_vectors.pt")
    inputs = [reference[k] for k in ("images", "keypoints_2d", "keypoints_2d_crop")]
    return reference, inputs


def tiny_output(options, reference, inputs):
    config = load_config(None, TINY + options)
    model = build_model(config).eval()
    model.load_state_dict(reference["state_dict"])
    model = recipe.apply_channels_last(model, config)
    with torch.no_grad(), recipe.autocast(config, torch.device("cpu")):
        return model, model(*inputs).float()


def test_channels_last_output_matches_fp32_on_reference_vectors(tiny):
    reference, inputs = tiny
    model, output = tiny_output(["train.channels_last=true"], reference, inputs)
    assert all(p.is_contiguous(memory_format=torch.channels_last)
               for p in model.backbone.parameters() if p.dim() == 4)
    torch.testing.assert_close(output, reference["output"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("options", [["train.amp=true"],
                                     ["train.amp=true", "train.channels_last=true"]])
def test_amp_output_within_bf16_bound_of_fp32(tiny, options):
    reference, inputs = tiny
    _, fp32 = tiny_output([], reference, inputs)
    _, output = tiny_output(options, reference, inputs)
    difference = (output - fp32).abs()
    assert torch.isfinite(output).all()
    assert 0 < difference.max() < AMP_BOUND_M
    assert difference.mean() < AMP_BOUND_M / 3


def test_rounding_only_the_images_to_bf16_already_moves_the_output_past_half_a_millimetre(tiny):
    """bench_step.py's floor for bf16 (bench/RESULTS.md): the fp32 model on bf16-rounded images.
    On the tiny vectors it moves the output by ~19 mm (HRNet-32 fill vectors: ~2 mm)."""
    reference, inputs = tiny
    config = load_config(None, TINY)
    model, fp32 = tiny_output([], reference, inputs)
    unrounded = bench_step.reference_output(model, config, reference, torch.device("cpu"))
    floor = bench_step.reference_output(model, config, reference, torch.device("cpu"),
                                        round_images_to_bf16=True)
    assert torch.equal(unrounded, fp32)
    assert 0.0005 < (floor - fp32).abs().max() < 0.1


def test_bench_step_prints_options_side_by_side(capsys):
    bench_step.main(["--backbone", "hrnet_tiny", "--batch", "2", "--warmup", "0", "--steps", "1",
                     "--options", "fp32", "channels_last", "--device", "cpu"])
    lines = capsys.readouterr().out.splitlines()
    table = lines[lines.index(next(l for l in lines if l.startswith("option"))):]
    assert [row.split()[0] for row in table[1:]] == ["fp32", "channels_last"]
    assert float(table[1].split()[2]) == 1.0  # x fp32 of the baseline


def test_bench_data_prints_the_ratio_last(synthetic_h36m, tmp_path, capsys):
    store = str(tmp_path / "store")
    run_toolbox("prepare_store.py", "--root", synthetic_h36m, "--out", store, "--splits", "val",
                "--source", "images", "--workers", "1")
    bench_data.main(["--root", synthetic_h36m, "--stores", store, "--split", "val",
                     "--workers", "2", "--seconds", "0.2", "--samples", "5", "--rounds", "1",
                     "--label-rows", "2000", "--reference-label-rows", "1000",
                     "--tmp", str(tmp_path)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("store/reference samples/s ratio: ")
    ratio = float(lines[-1].split(": ")[1])
    # the table's rows: name, ms/sample, samples/s (1 worker), samples/s (N), KB/sample, ratios
    number = r"\s+(\d+(?:\.\d+)?)"
    rows = [re.fullmatch(r"(.+?)" + number * 6, line) for line in lines]
    rows = [row for row in rows if row is not None]
    reference, first_store = rows[0], rows[1]
    assert float(reference.group(6)) == 1.0                    # the reference against itself
    assert ratio == pytest.approx(float(first_store.group(3)) / float(reference.group(3)),
                                  abs=0.06)                     # both printed rounded
    assert ratio == pytest.approx(float(first_store.group(6)), abs=0.051)
    assert any(line.startswith("store: label columns (HDF5)") for line in lines)
    (validation,) = [line for line in lines if line.startswith("label validation")]
    assert re.fullmatch(r"label validation \(.*\) of 2000 rows: \d+\.\d\d s, 0 bad", validation)
    (check,) = [line for line in lines if line.startswith("frame integrity check: ")]
    check_us, share = re.match(r"frame integrity check: ([\d.]+) us per frame, ([\d.]+)%",
                               check).groups()
    assert 0 < float(check_us) and float(share) < 5  # a few bytes against a whole decode


def test_bench_step_names_missing_reference_vectors(tmp_path):
    with pytest.raises(SystemExit, match="hrnet32_fill_vectors.pt not found"):
        bench_step.main(["--reference-dir", str(tmp_path), "--options", "fp32"])


def test_bench_demo_prints_frames_per_second_per_configuration(capsys):
    assert bench_demo.main(["--configs", "tiny", "--frames", "2", "--people", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("x86_64") or "torch" in lines[0]
    assert re.match(r"tiny +2 frames x 2 people: +[\d.]+ frames/s, +[\d.]+ people/s$", lines[-1])


def test_bench_checkpoint_prints_save_and_load_side_by_side(tmp_path, capsys):
    bench_checkpoint.main(["--backbone", "hrnet_tiny", "--repeats", "1", "--folder",
                           str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("hrnet_tiny checkpoint (model + AdamW state): ")
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:4]}
    assert set(rows) == {"save", "load"}
    for base, ours, ratio in rows.values():   # rounded to ms: the ratio is of the unrounded
        assert float(base) >= 0 and float(ours) >= 0 and float(ratio) > 0
    assert lines[4].startswith("verify alone: ")
    assert os.listdir(tmp_path) == []                    # its files removed


def test_bench_feature_cache_prints_both_rates_and_the_ratio_last(synthetic_h36m, capsys):
    root = synthetic_h36m
    bench_feature_cache.main([
        "--config", os.path.join(REPO_ROOT, "experiments", "synthetic", "tiny.yaml"),
        "--steps", "1", "--rounds", "1", "--opts", "dataset.root=%s/images" % root,
        "dataset.train_labels_path=%s/h36m_train.pkl" % root, "dataset.num_workers=0",
        "dataset.train_frame_stride=16", "train.batch_size=2"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("cached/uncached train samples/s ratio: ")
    assert float(lines[-1].split(": ")[1]) > 0
    assert any(line.startswith("cache built in") for line in lines)
