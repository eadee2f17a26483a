"""The compute-device probe reads whichever runtime is installed (faked here: CI has no GPU)."""

from __future__ import annotations

import importlib.util
import sys
import types

import pytest

from workers import compute


def _fake_module(monkeypatch: pytest.MonkeyPatch, name: str, module: types.ModuleType) -> None:
    monkeypatch.setitem(sys.modules, name, module)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: types.SimpleNamespace(name=n) if n == name else real_find_spec(n, *a)
    )


def test_cpu_when_no_runtime_offers_cuda(monkeypatch) -> None:
    ort = types.ModuleType("onnxruntime")
    ort.__version__ = "1.99"
    ort.get_available_providers = lambda: ["CPUExecutionProvider"]
    _fake_module(monkeypatch, "onnxruntime", ort)
    info = compute.probe(include_torch=False)
    assert info.device == "cpu"
    assert info.label().startswith("CPU · ")
    assert "CPUExecutionProvider" in info.runtimes["onnxruntime"]


def test_cuda_with_the_gpu_name_from_onnxruntime_and_nvidia_smi(monkeypatch) -> None:
    ort = types.ModuleType("onnxruntime")
    ort.__version__ = "1.99"
    ort.get_available_providers = lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    _fake_module(monkeypatch, "onnxruntime", ort)
    monkeypatch.setattr(compute, "_nvidia_smi_name", lambda: "NVIDIA GeForce RTX 4090")
    info = compute.probe(include_torch=False)
    assert info.device == "cuda"
    assert info.label() == "CUDA · NVIDIA GeForce RTX 4090"


def test_cuda_name_from_torch(monkeypatch) -> None:
    torch = types.ModuleType("torch")
    torch.__version__ = "2.13.0+cu130"
    torch.version = types.SimpleNamespace(cuda="13.0")
    torch.cuda = types.SimpleNamespace(is_available=lambda: True, get_device_name=lambda i: "NVIDIA H100")
    _fake_module(monkeypatch, "torch", torch)
    info = compute.probe()
    assert info.label() == "CUDA · NVIDIA H100"
    assert info.runtimes["torch"] == "2.13.0+cu130: CUDA 13.0"


def test_a_broken_runtime_is_a_note_not_a_crash(monkeypatch) -> None:
    ort = types.ModuleType("onnxruntime")
    ort.__version__ = "1.99"

    def broken():
        raise OSError("libcudart.so.12: cannot open shared object file")

    ort.get_available_providers = broken
    _fake_module(monkeypatch, "onnxruntime", ort)
    info = compute.probe(include_torch=False)
    assert info.device == "cpu"
    assert "libcudart" in info.notes[0]
