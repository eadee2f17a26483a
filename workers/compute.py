"""Which compute device the installed runtimes can use: CPU, or CUDA with the GPU's name.

Runtimes are probed with importlib so that nothing heavy is imported unless installed, and the
probe is meant to run off the UI thread (importing torch takes seconds).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class ComputeInfo:
    device: str = "cpu"  # "cpu" | "cuda"
    gpu_name: str = ""
    cpu_threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    #: runtime name -> what it offers, e.g. {"onnxruntime": "CUDAExecutionProvider, CPUExecutionProvider"}
    runtimes: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def label(self) -> str:
        if self.device == "cuda":
            return f"CUDA · {self.gpu_name or 'GPU'}"
        return f"CPU · {self.cpu_threads} threads"

    def details(self) -> str:
        lines = [self.label()]
        lines += [f"{name}: {what}" for name, what in self.runtimes.items()]
        lines += self.notes
        return "\n".join(lines)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _nvidia_smi_name() -> str:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return ""
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else ""


def probe(include_torch: bool = True) -> ComputeInfo:
    """Look at onnxruntime and torch (when installed) for a usable CUDA device."""
    info = ComputeInfo()
    cuda = False
    if _installed("onnxruntime"):
        try:
            ort = importlib.import_module("onnxruntime")
            providers = list(ort.get_available_providers())
            info.runtimes["onnxruntime"] = f"{ort.__version__}: " + ", ".join(providers)
            cuda = cuda or "CUDAExecutionProvider" in providers
        except Exception as exc:  # a broken install must not stop the studio
            info.notes.append(f"onnxruntime is installed but failed to load: {exc}")
    if include_torch and _installed("torch"):
        try:
            torch = importlib.import_module("torch")
            if torch.cuda.is_available():
                cuda = True
                info.gpu_name = torch.cuda.get_device_name(0)
                info.runtimes["torch"] = f"{torch.__version__}: CUDA {torch.version.cuda}"
            else:
                info.runtimes["torch"] = f"{torch.__version__}: CPU"
        except Exception as exc:
            info.notes.append(f"torch is installed but failed to load: {exc}")
    if cuda:
        info.device = "cuda"
        info.gpu_name = info.gpu_name or _nvidia_smi_name()
    log.info("compute probe: %s", info.details().replace("\n", "; "))
    return info
