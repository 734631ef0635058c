"""Loading published weight files, with one clear error for anything that does not fit.

Files understood:
- `best_epoch.bin` (the reference's, and ours): {'epoch', 'lr', 'model', 'optimizer'}, `model`
  holding the DDP state dict (keys prefixed `module.`).
- HRNet COCO files `pose_hrnet_w{32,48}_256x192.pth`: a plain state dict; its `final_layer.*`
  (the COCO heatmap head) is not part of the backbone and is dropped and reported.
- CPN `CPN50_256x192.pth.tar`: {'state_dict': ...} with `module.` prefixes.

Every file is read with `torch.load(weights_only=True)`: a file that would need arbitrary
unpickling is refused, because unpickling can run code. A file that carries this project's
checksum (every checkpoint it writes, mvn/checksum.py) is verified first: a damaged, cut-short
or empty file is refused naming it, instead of loading damaged weights silently.
"""
import logging
import os
import pickle

import torch

from mvn.checksum import ChecksumError, verify_checksum
from mvn.errors import CAPFError

logger = logging.getLogger(__name__)

# Foreign keys that are known not to belong to the backbone, dropped in one visible place.


class WeightsError(CAPFError, RuntimeError):
    """A weights file that cannot be used; the message names the file and what to do."""


class DamagedFileError(WeightsError):
    """A weights file whose bytes cannot be what was saved (checksum, empty, cut short, not a
    torch.save file); `reason` says why in a few words, the message names the file too."""

    def __init__(self, message, reason=None):
        super().__init__(message)
        self.reason = reason


def read_weights_file(path):
    """torch.load(path, weights_only=True) with errors that say what is wrong with the file."""
    if not os.path.isfile(path):
        raise WeightsError("weights file %s does not exist" % path)
    try:
        verify_checksum(path)
    except ChecksumError as error:
        raise DamagedFileError("%s is damaged: %s; use an intact copy (download or copy it "
                               "again)" % (path, error), str(error)) from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        text = str(error)
        if "Unsupported global" not in text:  # bytes that are no pickle of tensors at all
            detail = next((line.strip() for line in text.splitlines()
                           if line.strip().startswith("Unsupported")), type(error).__name__)
            raise DamagedFileError("%s is damaged or not a PyTorch checkpoint (%s); download or "
                                   "copy it again" % (path, detail[:80]),
                                   "not a PyTorch checkpoint: %s" % detail[:80]) from None
        raise WeightsError(
            "%s holds Python objects besides tensors; loading them could run code from the "
            "file, so it is refused: re-save only its tensors (torch.save({'model': "
            "state_dict}, ...)) where the file is trusted" % path) from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DamagedFileError(
            "%s could not be read as a PyTorch file: it is truncated or not a torch.save file "
            "(%s). Download or copy it again." % (path, detail),
            "truncated or not a torch.save file: %s" % detail[:80]) from None


def strip_prefix(state_dict, prefix="module."):
    """Remove `prefix` from every key that has it (DDP's `module.`)."""
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state_dict.items()}


def extract_state_dict(obj, path):
    """The state dict inside a loaded checkpoint object, with `module.` prefixes removed."""
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(torch.is_tensor(v) for v in obj.values()):
        raise WeightsError("%s holds no state dict (expected a dict of tensors, or one under "
                           "'model' or 'state_dict')" % path)
    return strip_prefix(obj)


def guess_backbone_type(state_dict, prefix=""):
    """Which backbone a state dict was made for ('cpn', 'hrnet_32', ...), or None."""
    if any(k.startswith(prefix + "resnet.") for k in state_dict):
        return "cpn"
    transition = state_dict.get(prefix + "transition1.0.0.weight")
    if transition is not None:
        return {32: "hrnet_32", 48: "hrnet_48", 8: "hrnet_tiny"}.get(
            transition.shape[0], "hrnet_w%d" % transition.shape[0])
    return None


def _listing(names, limit=5):
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (", ... (%d more)" % (len(names) - limit) if len(names) > limit else "")


def check_state_dict(module, state_dict, path, what="model"):
    """Raise one WeightsError listing missing / unexpected / wrong-shape keys, if any."""
    expected = module.state_dict()
    missing = set(expected) - set(state_dict)
    unexpected = set(state_dict) - set(expected)
    wrong_shape = ["%s %s (file) vs %s (%s)" % (k, tuple(state_dict[k].shape),
                                                tuple(expected[k].shape), what)
                   for k in sorted(set(expected) & set(state_dict))
                   if state_dict[k].shape != expected[k].shape]
    if not (missing or unexpected or wrong_shape):
        return
    lines = ["%s does not fit the %s:" % (path, what)]
    if missing:
        lines.append("  %d missing keys: %s" % (len(missing), _listing(missing)))
    if unexpected:
        lines.append("  %d unexpected keys: %s" % (len(unexpected), _listing(unexpected)))
    if wrong_shape:
        lines.append("  %d keys with the wrong shape: %s"
                     % (len(wrong_shape), "; ".join(wrong_shape[:3])
                        + ("; ..." if len(wrong_shape) > 3 else "")))
    is_full_model = any(k.startswith("backbone.") for k in expected)
    file_type = guess_backbone_type(state_dict, "backbone." if is_full_model else "")
    model_type = guess_backbone_type(expected, "backbone." if is_full_model else "")
    if file_type and model_type and file_type != model_type:
        lines.append("  the file looks like a '%s' checkpoint but the model's backbone is '%s': "
                     "set model.backbone.type (or --backbone) to match" % (file_type, model_type))
    raise WeightsError("\n".join(lines))


def load_model_weights(model, path):
    """Load a whole-model checkpoint (best_epoch.bin / last.bin) strictly; returns the raw dict."""
    checkpoint = read_weights_file(path)
    state_dict = extract_state_dict(checkpoint, path)
    check_state_dict(model, state_dict, path, what="CA_PF model")
    model.load_state_dict(state_dict, strict=True)
    return checkpoint


def load_backbone_weights(backbone, path, head_prefixes=()):
    """Load a published HRNet COCO (.pth) or CPN (.pth.tar) file into `backbone` strictly,
    leaving out the keys under `head_prefixes` (the backbone's row in mvn.models.backbones:
    HRNet's COCO heatmap head `final_layer.*`). Returns the list of those keys."""
    state_dict = extract_state_dict(read_weights_file(path), path)
    dropped = sorted(k for k in state_dict if k.startswith(tuple(head_prefixes)))
    state_dict = {k: v for k, v in state_dict.items() if k not in set(dropped)}
    check_state_dict(backbone, state_dict, path, what="backbone")
    backbone.load_state_dict(state_dict, strict=True)
    if dropped:
        logger.info("%s: ignored %d keys of the COCO heatmap head (%s)",
                    path, len(dropped), _listing(dropped, 2))
    return dropped

