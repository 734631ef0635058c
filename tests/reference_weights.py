"""The deterministic weight fill behind `tests/reference/*_fill_vectors.pt` (see the README
there): used by the fidelity tests and by bench/bench_step.py, never by training."""
import zlib

import torch


def fill_reference_weights(state_dict):
    """Fill `state_dict` in place: each tensor draws from a generator seeded by crc32(name)."""
    for name in sorted(state_dict):
        t = state_dict[name]
        if name.endswith("num_batches_tracked"):
            t.zero_()
            continue
        g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
        r = torch.randn(tuple(t.shape), generator=g, dtype=torch.float32)
        if name.endswith("running_var"):
            value = 1 + 0.1 * r.abs()
        elif name.endswith("running_mean"):
            value = 0.1 * r
        elif t.dim() >= 2:
            value = r / (t[0].numel() ** 0.5)
        elif name.endswith("weight"):
            value = 1 + 0.1 * r
        else:
            value = 0.1 * r
        t.copy_(value)
    return state_dict
