"""Pinned CPU kernels: the same float32 results from the same seed on any x86-64 CPU that has AVX2.

torch picks its own vectorised kernels (ATen) by the newest instructions a CPU has (AVX-512 or AVX2), and MKL picks
its matrix-multiply code the same way. The two kinds of kernels sum in different orders, so their float32 results
differ in the last bits. A 1e-7 difference flips a sampled token now and then, and training amplifies it: measured
here, the toy base model's weights trained with ATen's AVX-512 and AVX2 kernels differed by 1.5e-7 after 60 steps even
in float64, and by 0.4 after its 600. Asking both for their AVX2 code (`ATEN_CPU_CAPABILITY=avx2`, `MKL_CBWR=AVX2`)
gives every AVX2 CPU the same code, and so the same numbers; measured here, with them pinned, 1 or 2 torch threads and
oneDNN on or off trained bitwise-identical models.

The variables must be set before torch runs its first operation and MKL its first product: `hf-dlp demo` does this
for the toy model on a CPU (`pin_cpu_kernels`), and records what took effect (`cpu_kernels`).
"""

from __future__ import annotations

import os
from typing import Any

PINNED_KERNELS: dict[str, str] = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"}
"""The environment that gives every x86-64 CPU with AVX2 the same kernels."""


def cpu_kernels() -> dict[str, Any]:
    """The CPU kernels in effect: ATen's capability, MKL's code-branch setting and whether both are the pinned ones.

    Examples:

    >>> sorted(cpu_kernels())
    ['aten', 'mkl_cbwr', 'pinned']
    """
    import torch

    aten = torch.backends.cpu.get_cpu_capability()
    mkl_cbwr = os.environ.get("MKL_CBWR")
    return {"aten": aten, "mkl_cbwr": mkl_cbwr, "pinned": aten == "AVX2" and mkl_cbwr == PINNED_KERNELS["MKL_CBWR"]}


def pin_cpu_kernels() -> bool:
    """Ask torch and MKL for their AVX2 kernels (`PINNED_KERNELS`); `True` when that is what runs.

    Variables the caller set already are kept. It is `False` when torch ran an operation before (its choice is then
    fixed for the process), when the CPU lacks AVX2, or when the caller chose other kernels: numbers may then differ
    from a pinned run's in the last bits, and sampled runs from there on. Then the variables it set are removed again,
    so that they do not reach child processes either.

    Examples:

    >>> import subprocess, sys
    >>> code = "from hf_dlp.cpu_kernels import pin_cpu_kernels; print(pin_cpu_kernels())"
    >>> subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip()  # a fresh process
    'True'
    """
    added = [name for name in PINNED_KERNELS if name not in os.environ]
    os.environ.update({name: PINNED_KERNELS[name] for name in added})
    if cpu_kernels()["pinned"]:
        return True
    for name in added:
        del os.environ[name]
    return False


__all__ = ["PINNED_KERNELS", "cpu_kernels", "pin_cpu_kernels"]
