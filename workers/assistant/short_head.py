"""The greedy pick of the next token without reading the whole output head (CPU, no Qt).

A small language model's output head is most of what a decoding step reads: Gemma 3 270M's is
262,144 x 640, 320 MiB in float16, about 11 of its 24 ms a token on a 2-core CPU. A greedy step only
needs the highest logit, so :class:`ShortlistHead` scores every token with a 4-bit copy of the head
(a quarter of the bytes), takes the ``CANDIDATES`` best and scores those again with the float16 head
itself; the best of them is the pick.

Two kernels can score the 4-bit copy, and :func:`for_head` times both and keeps the faster one:
torch's int4 CPU kernel (fast with AVX-512; on a CPU with AVX2 only it computes, at 12 ms for
Gemma's head on two cores, nearly as long as the float16 head reads) and ONNX Runtime's
``MatMulNBits`` with 8-bit activations (4.6 ms there).

It is checked at every step: the candidates' own error (4-bit against float16) gives the margin, and
the pick stands only when it beats the best token left out (its 4-bit score) by twice the largest
error seen; otherwise (a flat distribution, or a penalty that pulled the candidates down) the whole
float16 head decides, as without this class. Sampling always uses the whole head.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

#: Tokens scored again in float16 (a 320 KiB gather for Gemma 3 270M).
CANDIDATES = 256
#: Weights per 4-bit scale (the kernel's group size).
GROUP = 32
#: The pick must beat the best token left out by this many times the largest candidate error.
SAFETY = 2.0
#: And by at least this much (logits), whatever the errors were.
MIN_MARGIN = 0.05
#: The kernels that can score the 4-bit copy.
KERNELS = ("torch", "onnx")
#: Rows of the head the kernels race on (a 4-bit copy of Gemma 3 270M's whole head takes 2-3 s to make).
TRIAL_ROWS = 65536


class ShortlistHead:
    """The greedy next token from a float16 output-head weight ``[vocab, hidden]`` (no bias)."""

    def __init__(self, weight16: Any, kernel: str = "torch") -> None:
        import torch

        self._torch = torch
        self.weight = weight16
        vocab, hidden = weight16.shape
        if hidden % GROUP or vocab % 64:
            raise ValueError(f"a {vocab}x{hidden} head does not fit the 4-bit kernel")
        if kernel not in KERNELS:
            raise ValueError(f"unknown 4-bit kernel {kernel!r} (one of {', '.join(KERNELS)})")
        #: Which kernel scores the 4-bit copy ("torch" or "onnx").
        self.kernel = kernel
        self._approximate = _TorchInt4(weight16, torch) if kernel == "torch" else _OnnxInt4(weight16, torch)
        #: Seconds a shortlist took with each kernel tried and the whole head ("whole"), when
        #: :func:`for_head` chose the kernel.
        self.timings: dict[str, float] = {}
        #: Steps decided by the candidates, and steps the whole head decided.
        self.short_steps = 0
        self.full_steps = 0

    def full(self, hidden: Any) -> Any:
        """All logits (float32) through the float16 head, as the model computes them."""
        torch = self._torch
        return torch.nn.functional.linear(hidden.reshape(1, -1).to(torch.float16), self.weight)[0].float()

    def approximate(self, hidden: Any) -> Any:
        """All logits (float32) from the 4-bit copy."""
        return self._approximate(hidden)

    def shortlist(self, hidden: Any) -> tuple[Any, Any]:
        """The ``CANDIDATES`` best tokens by the 4-bit copy (torch.topk's values and indices) and their
        float16 logits."""
        torch = self._torch
        top = torch.topk(self.approximate(hidden), CANDIDATES)
        exact = torch.nn.functional.linear(hidden.reshape(1, -1).to(torch.float16), self.weight[top.indices])
        return top, exact[0].float()

    def pick(self, hidden: Any, penalized: Iterable[int] = (), penalty: float = 1.0) -> int:
        """The token with the highest logit after ``penalty`` (positive logits divided by it, negative
        ones multiplied) on the ``penalized`` tokens: the same token as an argmax over :meth:`full`."""
        torch = self._torch
        top, exact = self.shortlist(hidden)
        ids = top.indices
        error = float((exact - top.values).abs().max())
        penalized = sorted(set(penalized))
        values = exact
        if penalized and penalty != 1.0:
            recent = torch.tensor(penalized, dtype=ids.dtype)
            hit = torch.isin(ids, recent)
            if bool(hit.any()):
                values = exact.clone()
                v = values[hit]
                values[hit] = torch.where(v > 0, v / penalty, v * penalty)
        best_value = values.max()
        # Ties go to the lowest token id, as an argmax over the whole head does.
        best = int(ids[values == best_value].min())
        left_out = float(top.values[-1])  # no token outside the candidates scored higher in 4 bits
        if float(best_value) >= left_out + max(MIN_MARGIN, SAFETY * error):
            self.short_steps += 1
            return best
        self.full_steps += 1
        logits = self.full(hidden)
        if penalized and penalty != 1.0:
            recent = torch.tensor(penalized)
            v = logits[recent]
            logits[recent] = torch.where(v > 0, v / penalty, v * penalty)
        return int(torch.argmax(logits))


class _TorchInt4:
    """The 4-bit copy in torch's int4 CPU kernel's layout (asymmetric groups with float zeros)."""

    def __init__(self, weight16: Any, torch: Any) -> None:
        self._torch = torch
        self.packed, self.scales = _quantize(weight16, torch)

    def __call__(self, hidden: Any) -> Any:
        torch = self._torch
        x = hidden.reshape(1, -1).to(torch.bfloat16)
        return torch.ops.aten._weight_int4pack_mm_for_cpu(x, self.packed, GROUP, self.scales)[0].float()


class _OnnxInt4:
    """The 4-bit copy as one ONNX Runtime ``MatMulNBits`` node (groups of ``GROUP`` with 4-bit zero
    points; activations quantized to 8 bits per group, the kernel's fast path)."""

    def __init__(self, weight16: Any, torch: Any) -> None:
        import onnxruntime as ort
        from onnx import TensorProto, helper

        self._torch = torch
        vocab, hidden = weight16.shape
        packed, scales, zeros = _quantize_nbits(weight16, torch)
        node = helper.make_node(
            "MatMulNBits",
            ["x", "packed", "scales", "zeros"],
            ["logits"],
            domain="com.microsoft",
            K=hidden,
            N=vocab,
            bits=4,
            block_size=GROUP,
            accuracy_level=4,  # 8-bit activations: without them the kernel dequantizes, 4x slower
        )
        arrays = {"packed": packed, "scales": scales, "zeros": zeros}
        graph = helper.make_graph(
            [node],
            "shortlist",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, hidden])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, vocab])],
            initializer=[_in_memory(name, array, helper) for name, array in arrays.items()],
        )
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
        )
        model.ir_version = 9  # what onnxruntime 1.17 and newer read
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, torch.get_num_threads())
        # Its threads sleep between calls: the layers' products run on the same cores right after.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        # The weights are handed over as they are, not copied into the model's bytes and parsed back
        # (2 s less for Gemma's head); the session reads them from these values, kept as long as it is.
        self._values = [ort.OrtValue.ortvalue_from_numpy(array) for array in arrays.values()]
        options.add_external_initializers(list(arrays), self._values)
        self._session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    def __call__(self, hidden: Any) -> Any:
        torch = self._torch
        x = hidden.detach().reshape(1, -1).to(torch.float32).contiguous().numpy()
        return torch.from_numpy(self._session.run(None, {"x": x})[0][0])


def _in_memory(name: str, array: Any, helper: Any) -> Any:
    """An initializer whose data the session is given separately (``add_external_initializers``)."""
    tensor = helper.TensorProto(name=name, data_type=helper.np_dtype_to_tensor_dtype(array.dtype))
    tensor.dims.extend(array.shape)
    tensor.data_location = tensor.EXTERNAL
    for key, value in (("location", f"in-memory-{name}"), ("offset", "0"), ("length", str(array.nbytes))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def _quantize_nbits(weight16: Any, torch: Any) -> tuple[Any, Any, Any]:
    """Asymmetric 4-bit groups of ``GROUP`` weights with 4-bit zero points, in ``MatMulNBits``' layout:
    (packed ``[vocab, groups, GROUP / 2]`` uint8, low nibble first; scales ``[vocab * groups]``
    float32; zero points ``[vocab * ceil(groups / 2)]`` uint8, two to a byte)."""
    vocab, hidden = weight16.shape
    groups = hidden // GROUP
    packed_rows, scale_rows, zero_rows = [], [], []
    for start in range(0, vocab, 16384):
        w = weight16[start : start + 16384].float().reshape(-1, groups, GROUP)
        low = w.amin(-1, keepdim=True).clamp_(max=0.0)  # the range holds 0, so the zero point is in 0..15
        high = w.amax(-1, keepdim=True).clamp_(min=0.0)
        scale = ((high - low) / 15).clamp_(min=1e-8)
        zero = torch.round(-low / scale).clamp_(0, 15)
        q = w.div_(scale).round_().add_(zero).clamp_(0, 15).to(torch.uint8)  # in place: no new pages
        packed_rows.append(q[..., 0::2] | (q[..., 1::2] << 4))
        scale_rows.append(scale.reshape(-1))
        z = zero.reshape(-1, groups).to(torch.uint8)
        if groups % 2:
            z = torch.cat([z, torch.zeros(z.shape[0], 1, dtype=torch.uint8)], 1)
        zero_rows.append((z[:, 0::2] | (z[:, 1::2] << 4)).reshape(-1))
    return (
        torch.cat(packed_rows).numpy(),
        torch.cat(scale_rows).numpy(),
        torch.cat(zero_rows).numpy(),
    )


def _quantize(weight16: Any, torch: Any) -> tuple[Any, Any]:
    """Asymmetric 4-bit groups of ``GROUP`` weights, packed for torch's CPU kernel."""
    vocab, hidden = weight16.shape
    packed_rows, scale_rows = [], []
    for start in range(0, vocab, 16384):  # in slices: the float32 working copy stays small
        w = weight16[start : start + 16384].float().reshape(-1, hidden // GROUP, GROUP)
        low = w.amin(-1, keepdim=True)
        high = w.amax(-1, keepdim=True)
        scale = ((high - low) / 15).clamp(min=1e-8)
        q = w.sub_(low).div_(scale).round_().clamp_(0, 15).to(torch.int32).reshape(w.shape[0], hidden)
        # Packed slice by slice (the layout is row by row): the whole head never exists as int32,
        # which took about 1.1 GB more at its peak for Gemma 3 270M.
        packed_rows.append(torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1))
        # The kernel computes (q - 8) * scale + zero.
        scale_rows.append(torch.cat([scale, low + 8 * scale], -1))
    packed = torch.cat(packed_rows)
    scales = torch.cat(scale_rows).transpose(0, 1).contiguous().to(torch.bfloat16)
    return packed, scales


def for_head(weight16: Any, kernels: Iterable[str] = KERNELS) -> ShortlistHead | None:
    """A :class:`ShortlistHead` for this float16 head weight, with whichever of ``kernels`` is fastest
    here, when it is faster than the whole head (measured once, a few calls each), else None (the
    reasons logged). The kernels race on the first ``TRIAL_ROWS`` rows of the head, so that only the
    winner's 4-bit copy of the whole head is made (each takes seconds)."""
    import torch

    if getattr(weight16, "dtype", None) != torch.float16 or weight16.device.type != "cpu" or weight16.dim() != 2:
        return None
    hidden = torch.randn(weight16.shape[1])

    def best_of(fn: Any, runs: int = 4) -> float:
        best = float("inf")
        with torch.inference_mode():
            for _ in range(runs):
                start = time.perf_counter()
                fn()
                best = min(best, time.perf_counter() - start)
        return best

    try:
        whole = best_of(lambda: int(torch.argmax(torch.nn.functional.linear(hidden.half()[None], weight16)[0])))
    except Exception as exc:  # a head the float16 product cannot take
        log.info("the 4-bit head shortlist is not used: %s", exc)
        return None
    kernels = list(kernels)
    trial = weight16[: min(TRIAL_ROWS, weight16.shape[0])]
    timings: dict[str, float] = {"whole": whole}
    raced: dict[str, float] = {}
    for kernel in kernels if len(kernels) > 1 else ():
        try:
            head = ShortlistHead(trial, kernel)
            raced[kernel] = best_of(lambda head=head: head.approximate(hidden), runs=8)
        except Exception as exc:  # an older torch or onnxruntime without the kernel, or a head it cannot take
            log.info("the %s 4-bit kernel is not used: %s", kernel, exc)
            continue
        finally:
            head = None
        log.info("4-bit kernel %s: %.2f ms on %d rows of the head", kernel, raced[kernel] * 1e3, trial.shape[0])
    order = sorted(raced, key=raced.__getitem__) if len(kernels) > 1 else kernels
    chosen: ShortlistHead | None = None
    short = float("inf")
    for kernel in order:
        try:
            head = ShortlistHead(weight16, kernel)
            short = best_of(lambda head=head: head.shortlist(hidden))
        except Exception as exc:
            log.info("the %s 4-bit kernel is not used: %s", kernel, exc)
            continue
        chosen = head
        break
    if chosen is None:
        return None
    timings[chosen.kernel] = short
    chosen.timings = timings
    chosen.short_steps = chosen.full_steps = 0
    if short >= 0.9 * whole:
        log.info("the 4-bit head shortlist is not faster here (%.1f against %.1f ms)", short * 1e3, whole * 1e3)
        return None
    log.info(
        "greedy steps pick from a 4-bit head shortlist (%s kernel, %.1f against %.1f ms)",
        chosen.kernel,
        short * 1e3,
        whole * 1e3,
    )
    return chosen
