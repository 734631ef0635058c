"""Releases that must match each other, in one place (no imports: install.py reads it before
torch is installed)."""

# torchvision is built for one torch release: torch "major.minor" -> torchvision "major.minor"
TORCHVISION_FOR_TORCH = {"2.9": "0.24", "2.10": "0.25", "2.11": "0.26", "2.12": "0.27",
                         "2.13": "0.28", "2.14": "0.29"}


def torchvision_for(torch_version):
    """'2.13.0+cpu' -> '0.28' (None when the table does not know that torch)."""
    return TORCHVISION_FOR_TORCH.get(".".join(torch_version.split("+")[0].split(".")[:2]))
