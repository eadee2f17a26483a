"""A lean forward pass for Gemma 3 text models on the CPU, for the assistant's replies.

transformers runs each decoding step through many small modules: the masks are built, the rotary
angles computed, the cache updated and every projection launched one by one. With a small model
(the shipped Gemma 3 270M) that bookkeeping costs more than the arithmetic: about 50 ms a token on
two cores, of which the matrix products are about 20. :class:`FastGemma3` computes the same thing
from the same weights with a few large operations per layer: one projection for query, key and value,
one for the feed-forward's gate and up, both query and key normalised in one call, the rotary tables
computed once, a key/value cache that grows in place, and the projections' weights in float16 (a
decoding step reads every weight once: the speed is the bytes read). In float32 its logits match
transformers' to float rounding (``tests/test_assistant_fast_decoder.py``);
:class:`~workers.assistant.llm.TransformersLM` uses it when the model is a Gemma 3 text model in
float32 on the CPU; anything else runs through transformers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

#: Positions the cache holds at first; it doubles when full.
FIRST_CAPACITY = 512


def _config_value(config: Any, name: str, default: Any = None) -> Any:
    return getattr(config, name, default)


def supports(model: Any) -> str:
    """Why ``model`` cannot take the lean path ("" when it can)."""
    config = getattr(model, "config", None)
    if config is None or _config_value(config, "model_type") != "gemma3_text":
        return "not a Gemma 3 text model"
    if type(model).__name__ != "Gemma3ForCausalLM":
        return f"{type(model).__name__} is not Gemma3ForCausalLM"
    if _config_value(config, "attn_logit_softcapping") or _config_value(config, "final_logit_softcapping"):
        return "logit soft-capping"
    if _config_value(config, "attention_bias") or _config_value(config, "use_bidirectional_attention"):
        return "attention bias or bidirectional attention"
    if _config_value(config, "hidden_activation") != "gelu_pytorch_tanh":
        return f"activation {_config_value(config, 'hidden_activation')}"
    ropes = _config_value(config, "rope_parameters") or {}
    for kind in set(_config_value(config, "layer_types") or ()):
        params = ropes.get(kind) if isinstance(ropes, dict) else None
        if not params or params.get("rope_type", "default") != "default" or "rope_theta" not in params:
            return f"rotary embedding of {kind} is not the default kind"
    try:
        weight = model.model.layers[0].self_attn.q_proj.weight
    except AttributeError:
        return "unexpected module layout"
    if weight.dtype != torch.float32 or weight.device.type != "cpu":
        return "weights are not float32 on the CPU"
    return ""


class FastCache:
    """Keys and values of every layer, ``[kv_heads, capacity, head_dim]`` each, the first ``length``
    positions filled. ``copy.deepcopy`` copies only what is filled."""

    def __init__(self, layers: int, kv_heads: int, head_dim: int, capacity: int = FIRST_CAPACITY) -> None:
        self.length = 0
        self.keys = [torch.zeros(kv_heads, capacity, head_dim) for _ in range(layers)]
        self.values = [torch.zeros(kv_heads, capacity, head_dim) for _ in range(layers)]

    @property
    def capacity(self) -> int:
        return self.keys[0].shape[1] if self.keys else 0

    def reserve(self, positions: int) -> None:
        """Room for ``positions`` in all (doubling, so that growing costs little over a conversation)."""
        if positions <= self.capacity:
            return
        size = max(positions, 2 * self.capacity)
        for store in (self.keys, self.values):
            for i, old in enumerate(store):
                new = torch.zeros(old.shape[0], size, old.shape[2])
                new[:, : self.length] = old[:, : self.length]
                store[i] = new

    def get_seq_length(self) -> int:
        return self.length

    def __deepcopy__(self, memo: dict[int, Any]) -> FastCache:
        return self.prefix_copy(self.length)

    def prefix_copy(self, length: int) -> FastCache:
        """An independent cache of the first ``length`` positions (positions are only ever appended,
        so those of an earlier moment can be taken later), with the same room."""
        if not 0 <= length <= self.length:
            raise ValueError(f"the cache holds {self.length} positions, not {length}")
        other = FastCache.__new__(FastCache)
        other.length = length
        other.keys = [k.clone() for k in self.keys]
        other.values = [v.clone() for v in self.values]
        return other


class FastGemma3:
    """The lean forward pass of a loaded ``Gemma3ForCausalLM`` (float32, CPU), sharing its output head.

    ``weights``: the projections' weights for one token at a time, ``"float16"`` (a decoding step
    reads each weight once, so half the bytes is about twice the speed; greedy answers were the same as
    in float32 on the questions measured), ``"bfloat16"`` or ``"float32"`` (exactly transformers'
    arithmetic). ``prompt_weights``: the same for prompts (several tokens at once), where the products
    are compute-bound: bfloat16 took 40 ms for 12 tokens where float32 took 75 on a CPU with bfloat16
    instructions (float16 was slower than float32 there), with the same answers to eight questions.
    :func:`pick_weights` measures which kinds are fastest on this CPU. int8 weights (dynamic
    quantization) were no faster and changed answers. ``release``: with both kinds 16-bit, the
    model's own float32 projection weights are freed (the same memory as before for the two 16-bit
    copies), and the model must not be called directly any more.
    """

    def __init__(
        self, model: Any, weights: str = "float16", prompt_weights: str = "float32", *, release: bool = False
    ) -> None:
        why = supports(model)
        if why:
            raise ValueError(f"the lean decoder does not support this model: {why}")
        config = model.config
        base = model.model
        self.hidden = int(config.hidden_size)
        self.heads = int(config.num_attention_heads)
        self.kv_heads = int(config.num_key_value_heads)
        self.head_dim = int(config.head_dim)
        self.rep = self.heads // self.kv_heads
        self.eps = float(config.rms_norm_eps)
        self.scale = float(config.query_pre_attn_scalar) ** -0.5
        self.window = int(config.sliding_window or 0)
        self.layer_types = list(config.layer_types)
        self.embedding = base.embed_tokens.weight
        self.embed_scale = torch.tensor(math.sqrt(self.hidden)).to(self.embedding.dtype)
        self.head: Callable[[torch.Tensor], torch.Tensor] = model.get_output_embeddings()
        self.final_norm = 1.0 + base.norm.weight.detach().float()
        self.theta = {kind: float(config.rope_parameters[kind]["rope_theta"]) for kind in set(self.layer_types)}
        self.layers: list[dict[str, Any]] = []
        with torch.no_grad():
            for layer, kind in zip(base.layers, self.layer_types, strict=True):
                attn, mlp = layer.self_attn, layer.mlp
                qk_norm = torch.cat(
                    [(1.0 + attn.q_norm.weight.float()).expand(self.heads, -1),
                     (1.0 + attn.k_norm.weight.float()).expand(self.kv_heads, -1)]
                )
                # The fused float32 weights replace the model's own (its projections become views of
                # them), so that keeping both paths costs no memory.
                qkv = _fuse([attn.q_proj, attn.k_proj, attn.v_proj])
                gate_up = _fuse([mlp.gate_proj, mlp.up_proj])
                exact = {"qkv": qkv, "o": attn.o_proj.weight.detach(), "gate_up": gate_up,
                         "down": mlp.down_proj.weight.detach()}
                if release and "float32" not in (weights, prompt_weights):
                    # Only the 16-bit copies are used: the model's own float32 projections go (the
                    # model then runs through this class alone).
                    for lin in (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj, mlp.gate_proj, mlp.up_proj,
                                mlp.down_proj):
                        lin.weight = torch.nn.Parameter(torch.empty(0), requires_grad=False)
                self.layers.append({
                    "kind": kind,
                    "in_norm": 1.0 + layer.input_layernorm.weight.float(),
                    "qk_norm": qk_norm.contiguous(),
                    "post_attn_norm": 1.0 + layer.post_attention_layernorm.weight.float(),
                    "pre_ffn_norm": 1.0 + layer.pre_feedforward_layernorm.weight.float(),
                    "post_ffn_norm": 1.0 + layer.post_feedforward_layernorm.weight.float(),
                    # prompts (several tokens: compute-bound) and one token at a time (memory-bound)
                    "many": _packed(exact, prompt_weights),
                    "one": _packed(exact, weights),
                })
        self.intermediate = int(config.intermediate_size)
        self.weights = weights
        self.prompt_weights = prompt_weights
        self.released = release and "float32" not in (weights, prompt_weights)
        self._rope: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def new_cache(self) -> FastCache:
        return FastCache(len(self.layers), self.kv_heads, self.head_dim)

    # ---- pieces ----
    def _norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), eps=self.eps) * weight

    def _rotary(self, kind: str, end: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin for positions ``0..end-1`` (``[positions, 1, head_dim]``), grown by doubling."""
        table = self._rope.get(kind)
        if table is None or table[0].shape[0] < end:
            size = max(end, 2 * table[0].shape[0] if table is not None else FIRST_CAPACITY)
            steps = torch.arange(0, self.head_dim, 2, dtype=torch.int64).float() / self.head_dim
            inv = 1.0 / (self.theta[kind] ** steps)
            freqs = torch.arange(size, dtype=torch.int64).float()[:, None] * inv[None, :]
            emb = torch.cat((freqs, freqs), dim=-1)
            table = (emb.cos()[:, None, :], emb.sin()[:, None, :])
            self._rope[kind] = table
        return table

    @staticmethod
    def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * cos + rotated * sin

    def _mask(self, first: int, t: int, start: int, end: int, sliding: bool) -> torch.Tensor | None:
        """Which cached positions ``start..end-1`` each query of ``first..first+T-1`` may see, repeated
        for the query heads of a key head; None for one query (its slice holds exactly those)."""
        if t == 1:
            return None
        qpos = torch.arange(first, first + t)[:, None]
        kpos = torch.arange(start, end)[None, :]
        allowed = kpos <= qpos
        if sliding:
            allowed &= qpos - kpos < self.window
        return allowed.repeat(self.rep, 1)

    def _attention(
        self, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, start: int, end: int, mask: Any
    ) -> torch.Tensor:
        """Queries ``[T, heads, head_dim]`` over cached positions ``start..end-1`` (``mask`` from
        :meth:`_mask`); returns ``[T, heads * head_dim]``."""
        t = q.shape[0]
        # The query heads that share a key head are queries of that head: [kv_heads, rep * T, head_dim].
        grouped = q.view(t, self.kv_heads, self.rep, self.head_dim).permute(1, 2, 0, 3).reshape(
            1, self.kv_heads, self.rep * t, self.head_dim
        )
        k = keys[:, start:end].unsqueeze(0)
        v = values[:, start:end].unsqueeze(0)
        out = F.scaled_dot_product_attention(grouped, k, v, attn_mask=mask, scale=self.scale)
        out = out.view(self.kv_heads, self.rep, t, self.head_dim).permute(2, 0, 1, 3)
        return out.reshape(t, self.heads * self.head_dim)

    # ---- the forward pass ----
    def forward(self, ids: Sequence[int], cache: FastCache) -> torch.Tensor:
        """Feed ``ids`` after what ``cache`` holds (it is updated); the last position's logits."""
        with torch.inference_mode():
            return self.head(self.hidden_state(ids, cache).unsqueeze(0))[0, -1].float()

    @torch.inference_mode()
    def hidden_state(self, ids: Sequence[int], cache: FastCache, also: int | None = None) -> torch.Tensor:
        """Feed ``ids`` after what ``cache`` holds (it is updated); the last position's normalised hidden
        state ``[1, hidden]``, what the output head reads. With ``also`` (an index into ``ids``), that
        position's state too, first: ``[2, hidden]``."""
        t = len(ids)
        if t == 0:
            raise ValueError("no tokens to feed")
        first = cache.length
        end = first + t
        cache.reserve(end)
        x = F.embedding(torch.tensor(list(ids), dtype=torch.long), self.embedding)
        x = (x * self.embed_scale).float()  # [T, hidden]
        q_size = self.heads * self.head_dim
        kv_size = self.kv_heads * self.head_dim
        # Per kind of layer, once for all its layers: the rotary angles of these positions, the first
        # cached position they may see, and the mask.
        per_kind: dict[str, tuple[torch.Tensor, torch.Tensor, int, torch.Tensor | None]] = {}
        for kind in self.theta:
            cos_all, sin_all = self._rotary(kind, end)
            sliding = kind == "sliding_attention" and self.window > 0
            start = max(0, first - self.window + 1) if sliding else 0
            per_kind[kind] = (cos_all[first:end], sin_all[first:end], start, self._mask(first, t, start, end, sliding))
        for i, layer in enumerate(self.layers):
            cos, sin, start, mask = per_kind[layer["kind"]]
            w = layer["one"] if t == 1 else layer["many"]
            h = self._norm(x, layer["in_norm"])
            qkv = _linear(h, w["qkv"])
            qk = qkv[:, : q_size + kv_size].view(t, self.heads + self.kv_heads, self.head_dim)
            qk = self._rotate(self._norm(qk, layer["qk_norm"]), cos, sin)
            q, k = qk[:, : self.heads], qk[:, self.heads :]
            v = qkv[:, q_size + kv_size :].view(t, self.kv_heads, self.head_dim)
            keys, values = cache.keys[i], cache.values[i]
            keys[:, first:end] = k.transpose(0, 1)
            values[:, first:end] = v.transpose(0, 1)
            a = self._attention(q, keys, values, start, end, mask)
            x = x + self._norm(_linear(a, w["o"]), layer["post_attn_norm"])
            h = self._norm(x, layer["pre_ffn_norm"])
            gate, up = _linear(h, w["gate_up"]).split(self.intermediate, dim=-1)
            h = _linear(F.gelu(gate, approximate="tanh") * up, w["down"])
            x = x + self._norm(h, layer["post_ffn_norm"])
        cache.length = end
        rows = x[-1:] if also is None else x[[also % t, t - 1]]
        return self._norm(rows, self.final_norm)


def _fuse(linears: Sequence[Any]) -> torch.Tensor:
    """One weight for several projections of the same input; each projection's weight becomes a view."""
    fused = torch.cat([lin.weight.detach() for lin in linears]).contiguous()
    start = 0
    for lin in linears:
        rows = lin.weight.shape[0]
        lin.weight = torch.nn.Parameter(fused[start : start + rows], requires_grad=False)
        start += rows
    return fused


def _packed(weights: dict[str, torch.Tensor], kind: str) -> dict[str, torch.Tensor]:
    """The same weights in another kind (the float32 ones themselves for float32)."""
    return weights if kind == "float32" else {name: _pack(w, kind) for name, w in weights.items()}


def _pack(weight: torch.Tensor, kind: str) -> torch.Tensor:
    if kind in ("float16", "bfloat16"):
        return weight.detach().to(getattr(torch, kind))
    raise ValueError(kind)


def _linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    if weight.dtype == torch.float32:
        return F.linear(x, weight)
    return F.linear(x.to(weight.dtype), weight).float()


_PICKED: tuple[str, str] | None = None


def pick_weights() -> tuple[str, str]:
    """The fastest kinds of weights on this CPU (measured once per process, a few milliseconds): for
    one token at a time among float32, float16 and bfloat16, for prompts among float32 and bfloat16
    (float16 and bfloat16 products are slow on CPUs without the instructions for them)."""
    global _PICKED
    if _PICKED is None:
        import time

        weight = torch.randn(4096, 640)

        def seconds(kind: str, tokens: int) -> float:
            w = weight if kind == "float32" else weight.to(getattr(torch, kind))
            x = torch.randn(tokens, 640)
            best = float("inf")
            with torch.inference_mode():
                for _ in range(4):
                    start = time.perf_counter()
                    _linear(x, w)
                    best = min(best, time.perf_counter() - start)
            return best

        one = min(("float16", "bfloat16", "float32"), key=lambda kind: seconds(kind, 1))
        many = min(("bfloat16", "float32"), key=lambda kind: seconds(kind, 12))
        _PICKED = (one, many)
        log.info("lean decoder weights: %s for one token, %s for prompts", one, many)
    return _PICKED


def for_model(
    model: Any, weights: str | None = None, prompt_weights: str | None = None, *, release: bool = False
) -> FastGemma3 | None:
    """The lean decoder for ``model``, or None (with the reason logged) when it does not apply.
    Without kinds of weights the fastest on this CPU are used (:func:`pick_weights`)."""
    why = supports(model)
    if why:
        log.debug("the lean decoder is not used: %s", why)
        return None
    if weights is None or prompt_weights is None:
        one, many = pick_weights()
        weights, prompt_weights = weights or one, prompt_weights or many
    try:
        return FastGemma3(model, weights, prompt_weights, release=release)
    except Exception:  # the model's layout differs from what this code knows: transformers runs it
        log.warning("the lean decoder could not take this model; transformers runs it", exc_info=True)
        return None
