"""Device and dtype policy.

CUDA trains in bf16 where the card supports it (fp16 otherwise); CPU trains and infers in fp32,
because bf16 matmul on these CPUs runs about 300x slower than fp32 (0.23 vs 70-87 GFLOP/s measured).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tunewise.errors import SpecError


@dataclass(frozen=True)
class DevicePolicy:
    device: str  # "cpu" or "cuda"
    dtype: torch.dtype  # weights and compute

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")


_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device_policy(device: str = "auto", precision: str = "auto") -> DevicePolicy:
    """Pick the device and dtype for training or inference.

    device: auto | cpu | cuda. precision: auto | fp32 | bf16 | fp16.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise SpecError("train.device=cuda but no CUDA device is visible", hint="use train.device=auto or cpu")
    if precision == "auto":
        if device == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            dtype = torch.float32
    else:
        dtype = _DTYPES[precision]
    return DevicePolicy(device=device, dtype=dtype)
