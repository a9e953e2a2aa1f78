"""Which torch device the reference implementation runs on.

Chosen at run time: ``"auto"`` means CUDA when a GPU is present, else CPU.
Every code path is the same on both devices; only where tensors live differs.
"""

from __future__ import annotations

import torch


class DeviceError(ValueError):
    """The device the user asked for cannot be used here."""


def choose_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("--device cuda asked for, but torch sees no CUDA device")
        return torch.device("cuda")
    raise DeviceError(f"unknown device {name!r}; expected auto, cpu or cuda")


def synchronize(device: torch.device) -> None:
    """Wait for queued copies to finish (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
