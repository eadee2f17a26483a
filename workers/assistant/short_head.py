"""The greedy pick of the next token without reading the whole output head (CPU, no Qt).

A small language model's output head is most of what a decoding step reads: Gemma 3 270M's is
262,144 x 640, 320 MiB in float16, about 11 of its 24 ms a token on a 2-core CPU. A greedy step only
needs the highest logit, so :class:`ShortlistHead` scores every token with a 4-bit copy of the head
(a quarter of the bytes; torch's int4 CPU kernel), takes the ``CANDIDATES`` best and scores those again
with the float16 head itself; the best of them is the pick.

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


class ShortlistHead:
    """The greedy next token from a float16 output-head weight ``[vocab, hidden]`` (no bias)."""

    def __init__(self, weight16: Any) -> None:
        import torch

        self._torch = torch
        self.weight = weight16
        vocab, hidden = weight16.shape
        if hidden % GROUP or vocab % 64:
            raise ValueError(f"a {vocab}x{hidden} head does not fit the 4-bit kernel")
        self.packed, self.scales = _quantize(weight16, torch)
        #: Steps decided by the candidates, and steps the whole head decided.
        self.short_steps = 0
        self.full_steps = 0

    def full(self, hidden: Any) -> Any:
        """All logits (float32) through the float16 head, as the model computes them."""
        torch = self._torch
        return torch.nn.functional.linear(hidden.reshape(1, -1).to(torch.float16), self.weight)[0].float()

    def approximate(self, hidden: Any) -> Any:
        """All logits (float32) from the 4-bit copy."""
        torch = self._torch
        x = hidden.reshape(1, -1).to(torch.bfloat16)
        return torch.ops.aten._weight_int4pack_mm_for_cpu(x, self.packed, GROUP, self.scales)[0].float()

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


def _quantize(weight16: Any, torch: Any) -> tuple[Any, Any]:
    """Asymmetric 4-bit groups of ``GROUP`` weights, packed for torch's CPU kernel."""
    vocab, hidden = weight16.shape
    packed_rows, scale_rows = [], []
    for start in range(0, vocab, 16384):  # in slices: the float32 working copy stays small
        w = weight16[start : start + 16384].float().reshape(-1, hidden // GROUP, GROUP)
        low = w.amin(-1, keepdim=True)
        high = w.amax(-1, keepdim=True)
        scale = ((high - low) / 15).clamp(min=1e-8)
        q = torch.clamp(torch.round((w - low) / scale), 0, 15).to(torch.int32).reshape(w.shape[0], hidden)
        packed_rows.append(q)
        # The kernel computes (q - 8) * scale + zero.
        scale_rows.append(torch.cat([scale, low + 8 * scale], -1))
    q = torch.cat(packed_rows)
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1)
    scales = torch.cat(scale_rows).transpose(0, 1).contiguous().to(torch.bfloat16)
    return packed, scales


def for_head(weight16: Any) -> ShortlistHead | None:
    """A :class:`ShortlistHead` for this float16 head weight when it is faster here than the whole
    head (measured once, a few calls each), else None (the reason logged)."""
    import torch

    if getattr(weight16, "dtype", None) != torch.float16 or weight16.device.type != "cpu" or weight16.dim() != 2:
        return None
    try:
        head = ShortlistHead(weight16)
        hidden = torch.randn(weight16.shape[1])

        def best_of(fn: Any) -> float:
            best = float("inf")
            with torch.inference_mode():
                for _ in range(4):
                    start = time.perf_counter()
                    fn()
                    best = min(best, time.perf_counter() - start)
            return best

        short = best_of(lambda: head.shortlist(hidden))
        whole = best_of(lambda: int(torch.argmax(head.full(hidden))))
    except Exception as exc:  # an older torch without the int4 CPU kernel, or a head it cannot take
        log.info("the 4-bit head shortlist is not used: %s", exc)
        return None
    head.short_steps = head.full_steps = 0
    if short >= 0.9 * whole:
        log.info("the 4-bit head shortlist is not faster here (%.1f against %.1f ms)", short * 1e3, whole * 1e3)
        return None
    log.info("greedy steps pick from a 4-bit head shortlist (%.1f against %.1f ms)", short * 1e3, whole * 1e3)
    return head
