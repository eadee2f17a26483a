"""GGUF language models without llama.cpp: read the file, and convert it once into a transformers folder.

A GGUF file keeps its weights quantized and its tokenizer as metadata. Loading one through
transformers dequantizes everything and rebuilds the tokenizer on every start (close to a minute
for the shipped Gemma-3-270M on two cores). Here the work is done once:

- :func:`read_gguf` parses the header, the metadata and the tensor table itself (string arrays with
  a plain loop, number arrays as numpy views), and checks that every tensor lies inside the file, so
  a truncated download or a file that is no GGUF at all gives one clear sentence.
- :func:`convert_gguf` dequantizes the tensors (numpy; Q8_0, Q4_0, Q4_1, F16 and BF16 directly, the
  other block formats through the ``gguf`` package), renames them to the transformers names, undoes
  llama.cpp's storage conventions (Gemma's ``1 + w`` norms, Llama's interleaved query and key rows
  for its rotary embedding), builds the tokenizer with the ``tokenizers`` library and writes
  ``config.json``, ``generation_config.json``, ``model.safetensors`` and the tokenizer files.
  Gemma, Gemma 2 and Gemma 3 (SentencePiece vocabulary) and Llama with a byte-level BPE vocabulary
  (SmolLM2, for instance) take this fast path; other architectures go through transformers' own
  GGUF loader once and are saved the same way.
- :func:`ensure_converted` keeps the result in the model store under
  ``<store>/converted/<file stem>-<key>`` (the key identifies the file's content cheaply), builds it
  in a temporary folder and renames it into place, and rebuilds a folder that is incomplete or
  damaged.

No Qt here; heavy libraries are imported inside the functions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
import os
import shutil
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workers.errors import Cancelled, UserError

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"
#: Bump when the converted folder's layout or content changes: older folders are rebuilt.
CONVERTER_VERSION = 1
#: Written last into a converted folder; its absence means the folder is incomplete.
MARKER = "snowai-converted.json"
CONVERTED_DIR = "converted"
#: Deepest nesting of metadata arrays read (real files nest one level at most).
MAX_ARRAY_DEPTH = 8
#: Largest ``general.alignment`` accepted (the format's default is 32 bytes).
MAX_ALIGNMENT = 1 << 20
#: GGUF files up to this size are converted to float32 weights, bigger ones to 16 bits.
FLOAT32_LIMIT = 1536 * 1024 * 1024

Progress = Callable[[int, int], None]
Status = Callable[[str], None]
CancelCheck = Callable[[], bool]

# GGUF metadata value types.
_UINT8, _INT8, _UINT16, _INT16, _UINT32, _INT32, _FLOAT32, _BOOL, _STRING, _ARRAY, _UINT64, _INT64, _FLOAT64 = range(
    13
)
_SCALAR_FORMATS = {
    _UINT8: "<B",
    _INT8: "<b",
    _UINT16: "<H",
    _INT16: "<h",
    _UINT32: "<I",
    _INT32: "<i",
    _FLOAT32: "<f",
    _BOOL: "<?",
    _UINT64: "<Q",
    _INT64: "<q",
    _FLOAT64: "<d",
}
_NUMPY_TYPES = {
    _UINT8: np.uint8,
    _INT8: np.int8,
    _UINT16: np.uint16,
    _INT16: np.int16,
    _UINT32: np.uint32,
    _INT32: np.int32,
    _FLOAT32: np.float32,
    _BOOL: np.bool_,
    _UINT64: np.uint64,
    _INT64: np.int64,
    _FLOAT64: np.float64,
}

# ggml tensor types handled here without the gguf package.
GGML_F32, GGML_F16, GGML_Q4_0, GGML_Q4_1, GGML_Q8_0, GGML_BF16 = 0, 1, 2, 3, 8, 30

# The architectures converted by this module's own code (the others go through transformers).
FAST_ARCHITECTURES = ("gemma", "gemma2", "gemma3", "llama")
#: llama.cpp's pre-tokenizer names that are plain GPT-2 byte-level splitting, and those that first
#: cut numbers into single digits (byte-level BPE vocabularies; others go through transformers).
BPE_PRE_GPT2 = ("default", "gpt-2", "gpt2")
BPE_PRE_DIGITS = ("smollm", "starcoder", "refact")

# Token types in ``tokenizer.ggml.token_type``.
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED, TOKEN_BYTE = 1, 2, 3, 4, 5, 6


# ---- reading ---------------------------------------------------------------------------------


@dataclass
class GGUFTensor:
    name: str
    #: ggml order (fastest-varying first), as stored in the file.
    dims: tuple[int, ...]
    ggml_type: int
    #: Absolute offset of the tensor's data in the file.
    offset: int
    nbytes: int

    @property
    def shape(self) -> tuple[int, ...]:
        """The numpy / torch shape (slowest-varying first)."""
        return tuple(reversed(self.dims))

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.dims:
            n *= d
        return n


@dataclass
class GGUFFile:
    path: Path
    version: int
    size: int
    metadata: dict[str, Any]
    tensors: list[GGUFTensor] = field(default_factory=list)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    @property
    def name(self) -> str:
        return str(self.metadata.get("general.name") or self.path.stem)

    @property
    def chat_template(self) -> str | None:
        value = self.metadata.get("tokenizer.chat_template")
        return str(value) if value else None

    def arch_value(self, key: str, default: Any = None) -> Any:
        """A ``<architecture>.<key>`` metadata value (e.g. ``block_count``)."""
        return self.metadata.get(f"{self.architecture}.{key}", default)

    def tensor(self, name: str) -> GGUFTensor | None:
        return next((t for t in self.tensors if t.name == name), None)


class _Cursor:
    """Little-endian reads from a buffer, with a clear error past its end."""

    def __init__(self, buf: mmap.mmap | bytes, path: Path) -> None:
        self.buf = buf
        self.pos = 0
        self.size = len(buf)
        self.path = path

    def _need(self, n: int) -> None:
        if n < 0 or self.pos + n > self.size:
            raise _truncated(self.path)

    def scalar(self, fmt: str) -> Any:
        n = struct.calcsize(fmt)
        self._need(n)
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return value

    def u32(self) -> int:
        return int(self.scalar("<I"))

    def u64(self) -> int:
        return int(self.scalar("<Q"))

    def string(self) -> str:
        n = self.u64()
        self._need(n)
        raw = self.buf[self.pos : self.pos + n]
        self.pos += n
        return raw.decode("utf-8", "replace")

    def strings(self, count: int) -> list[str]:
        # The hot loop of a 262k-token vocabulary: keep it flat.
        buf, pos, size = self.buf, self.pos, self.size
        unpack = struct.Struct("<Q").unpack_from
        out: list[str] = []
        append = out.append
        for _ in range(count):
            if pos + 8 > size:
                raise _truncated(self.path)
            (n,) = unpack(buf, pos)
            pos += 8
            end = pos + n
            if end > size:
                raise _truncated(self.path)
            append(buf[pos:end].decode("utf-8", "replace"))
            pos = end
        self.pos = pos
        return out

    def array(self, item_type: int, count: int, depth: int = 0) -> Any:
        if item_type == _STRING:
            return self.strings(count)
        if item_type in _NUMPY_TYPES:
            dtype = np.dtype(_NUMPY_TYPES[item_type]).newbyteorder("<")
            n = dtype.itemsize * count
            self._need(n)
            arr = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos).copy()
            self.pos += n
            return arr
        if item_type == _ARRAY:
            if depth >= MAX_ARRAY_DEPTH:
                raise _corrupt(self.path, "arrays nested too deep")
            return [self.value(_ARRAY, depth + 1) for _ in range(count)]
        raise _corrupt(self.path, f"unknown array item type {item_type}")

    def value(self, value_type: int, depth: int = 0) -> Any:
        if value_type == _STRING:
            return self.string()
        if value_type == _ARRAY:
            item_type = self.u32()
            count = self.u64()
            if count > self.size:
                raise _corrupt(self.path, "an array longer than the file")
            return self.array(item_type, count, depth)
        fmt = _SCALAR_FORMATS.get(value_type)
        if fmt is None:
            raise _corrupt(self.path, f"unknown metadata type {value_type}")
        return self.scalar(fmt)


def _truncated(path: Path) -> UserError:
    return UserError(
        f"{path.name} is incomplete (the file ends too early); download or copy it again."
    )


def _corrupt(path: Path, what: str) -> UserError:
    return UserError(f"{path.name} is not a readable GGUF model ({what}); download or copy it again.")


def _alignment(path: Path, value: Any) -> int:
    """The ``general.alignment`` of a file: a positive whole number of bytes (32 when not given)."""
    if value is None:
        return 32
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise _corrupt(path, "an invalid general.alignment")
    alignment = int(value)
    if alignment == 0:
        return 32
    if not 0 < alignment <= MAX_ALIGNMENT:
        raise _corrupt(path, f"an invalid general.alignment {alignment}")
    return alignment


def _block_sizes(ggml_type: int) -> tuple[int, int]:
    """(elements per block, bytes per block) of a ggml tensor type."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        return GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    except (ValueError, KeyError):
        raise UserError(
            f"This GGUF file uses a tensor format ({ggml_type}) that this version cannot read; "
            "install llama-cpp-python or pick another quantization of the model."
        ) from None


def check_gguf_file(path: Path) -> None:
    """Raise a UserError unless ``path`` is a file that starts like a GGUF model."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"The model file {path} was not found.")
    if path.is_dir():
        raise UserError(f"{path} is a folder; choose the .gguf file inside it (or use the transformers backend).")
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise UserError(f"{path.name} could not be read: {exc.strerror or exc}.") from None
    if head[:4] != GGUF_MAGIC:
        raise UserError(f"{path.name} is not a GGUF model file; choose a .gguf file (or a transformers model folder).")
    if len(head) < 8:
        raise _truncated(path)


def read_gguf(path: str | Path) -> GGUFFile:
    """Parse a GGUF file's header, metadata and tensor table (no tensor data is read)."""
    path = Path(path)
    check_gguf_file(path)
    size = path.stat().st_size
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        cur = _Cursor(mm, path)
        cur.pos = 4
        version = cur.u32()
        if version not in (2, 3):
            if version in (1,):
                raise UserError(f"{path.name} is an old GGUF version 1 file; convert it again with llama.cpp.")
            raise _corrupt(path, f"unsupported version {version}")
        n_tensors = cur.u64()
        n_kv = cur.u64()
        if n_tensors > size or n_kv > size:
            raise _corrupt(path, "an impossible header")
        metadata: dict[str, Any] = {}
        for _ in range(n_kv):
            key = cur.string()
            value_type = cur.u32()
            metadata[key] = cur.value(value_type)
        infos: list[tuple[str, tuple[int, ...], int, int]] = []
        for _ in range(n_tensors):
            name = cur.string()
            n_dims = cur.u32()
            if n_dims > 8:
                raise _corrupt(path, f"tensor {name} has {n_dims} dimensions")
            dims = tuple(cur.u64() for _ in range(n_dims))
            ggml_type = cur.u32()
            offset = cur.u64()
            infos.append((name, dims, ggml_type, offset))
        alignment = _alignment(path, metadata.get("general.alignment", 32))
        data_start = (cur.pos + alignment - 1) // alignment * alignment
    tensors: list[GGUFTensor] = []
    for name, dims, ggml_type, offset in infos:
        block, type_size = _block_sizes(ggml_type)
        n = 1
        for d in dims:
            n *= d
        if n % block:
            raise _corrupt(path, f"tensor {name} does not fill whole blocks")
        nbytes = n // block * type_size
        start = data_start + offset
        if start + nbytes > size:
            raise _truncated(path)
        tensors.append(GGUFTensor(name, dims, ggml_type, start, nbytes))
    return GGUFFile(path, version, size, metadata, tensors)


def file_key(path: Path) -> str:
    """A short key for a file's content, cheap to compute: its size and its first and last MiB."""
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    chunk = 1024 * 1024
    with path.open("rb") as fh:
        digest.update(fh.read(chunk))
        if size > chunk:
            fh.seek(max(chunk, size - chunk))
            digest.update(fh.read(chunk))
    return digest.hexdigest()[:12]


# ---- dequantizing ----------------------------------------------------------------------------


def _raw(mm: mmap.mmap, tensor: GGUFTensor) -> np.ndarray:
    return np.frombuffer(mm, dtype=np.uint8, count=tensor.nbytes, offset=tensor.offset)


def dequantize(mm: mmap.mmap, tensor: GGUFTensor) -> np.ndarray:
    """The tensor's values as float32, in its numpy shape."""
    raw = _raw(mm, tensor)
    kind = tensor.ggml_type
    if kind == GGML_F32:
        out = raw.view("<f4").copy()
    elif kind == GGML_F16:
        out = raw.view("<f2").astype(np.float32)
    elif kind == GGML_BF16:
        out = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
    elif kind == GGML_Q8_0:
        blocks = raw.reshape(-1, 34)
        scales = blocks[:, :2].copy().view("<f2").astype(np.float32)
        out = blocks[:, 2:].view(np.int8).astype(np.float32)
        out *= scales
    elif kind in (GGML_Q4_0, GGML_Q4_1):
        # 32 values a block: a float16 scale (and for Q4_1 a float16 minimum), then 16 bytes whose
        # low nibbles are values 0-15 and high nibbles values 16-31.
        head = 2 if kind == GGML_Q4_0 else 4
        blocks = raw.reshape(-1, head + 16)
        scales = blocks[:, :2].copy().view("<f2").astype(np.float32)
        qs = blocks[:, head:]
        out = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32)
        if kind == GGML_Q4_0:
            out -= 8.0
            out *= scales
        else:
            out *= scales
            out += blocks[:, 2:4].copy().view("<f2").astype(np.float32)
    else:
        from gguf import quants
        from gguf.constants import GGMLQuantizationType

        block, type_size = _block_sizes(kind)
        rows = raw.reshape(-1, tensor.dims[0] // block * type_size)
        out = quants.dequantize(rows, GGMLQuantizationType(kind)).astype(np.float32, copy=False)
    return out.reshape(tensor.shape)


# ---- the Gemma family ------------------------------------------------------------------------

_GEMMA_BLOCK_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "attn_norm": "input_layernorm",
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


def _gemma_hf_name(arch: str, gguf_name: str) -> str | None:
    if gguf_name == "token_embd.weight":
        return "model.embed_tokens.weight"
    if gguf_name == "output_norm.weight":
        return "model.norm.weight"
    if gguf_name == "output.weight":
        return "lm_head.weight"
    parts = gguf_name.split(".")
    if len(parts) == 4 and parts[0] == "blk" and parts[3] in ("weight", "bias"):
        part = parts[2]
        # Gemma (1) has one norm before its MLP, which transformers calls post_attention_layernorm.
        target = "post_attention_layernorm" if arch == "gemma" and part == "ffn_norm" else _GEMMA_BLOCK_NAMES.get(part)
        if target is None:
            return None
        return f"model.layers.{int(parts[1])}.{target}.{parts[3]}"
    return None


def _gemma_config(
    gg: GGUFFile, vocab_size: int, eos_ids: list[int], bos_id: int, pad_id: int, unk_id: int | None
) -> Any:
    arch = gg.architecture
    heads = int(gg.arch_value("attention.head_count"))
    hidden = int(gg.arch_value("embedding_length"))
    head_dim = int(gg.arch_value("attention.key_length", hidden // heads))
    layers = int(gg.arch_value("block_count"))
    kv_heads = int(gg.arch_value("attention.head_count_kv", heads))
    if isinstance(gg.arch_value("attention.head_count_kv"), np.ndarray):
        kv_heads = int(np.max(gg.arch_value("attention.head_count_kv")))
    common: dict[str, Any] = {
        "vocab_size": vocab_size,
        "hidden_size": hidden,
        "intermediate_size": int(gg.arch_value("feed_forward_length")),
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "rms_norm_eps": float(gg.arch_value("attention.layer_norm_rms_epsilon", 1e-6)),
        "max_position_embeddings": int(gg.arch_value("context_length", 8192)),
        "bos_token_id": bos_id,
        "eos_token_id": eos_ids[0] if len(eos_ids) == 1 else eos_ids,
        "pad_token_id": pad_id,
        "unk_token_id": unk_id,
        "tie_word_embeddings": gg.tensor("output.weight") is None,
    }
    rope_theta = float(gg.arch_value("rope.freq_base", 10000.0))
    if arch == "gemma":
        from transformers import GemmaConfig

        return GemmaConfig(rope_theta=rope_theta, hidden_activation="gelu_pytorch_tanh", **common)
    # llama.cpp scales queries by 1/sqrt(n_embd/n_head) for the 27B models (62 and 46 layers), by
    # 1/sqrt(head_dim) otherwise; transformers calls the square of that query_pre_attn_scalar.
    scalar = hidden // heads if layers in (46, 62) else head_dim
    softcap_final = gg.arch_value("final_logit_softcapping")
    softcap_attn = gg.arch_value("attn_logit_softcapping")
    if arch == "gemma2":
        from transformers import Gemma2Config

        return Gemma2Config(
            rope_theta=rope_theta,
            sliding_window=int(gg.arch_value("attention.sliding_window", 4096)),
            query_pre_attn_scalar=scalar,
            final_logit_softcapping=float(softcap_final) if softcap_final is not None else 30.0,
            attn_logit_softcapping=float(softcap_attn) if softcap_attn is not None else 50.0,
            **common,
        )
    from transformers import Gemma3TextConfig

    extra: dict[str, Any] = {}
    scaling_type = gg.arch_value("rope.scaling.type")
    scaling_factor = gg.arch_value("rope.scaling.factor")
    if scaling_type == "linear" and scaling_factor:
        extra["rope_scaling"] = {"rope_type": "linear", "factor": float(scaling_factor)}
    return Gemma3TextConfig(
        rope_theta=rope_theta,
        rope_local_base_freq=10000.0,
        sliding_window=int(gg.arch_value("attention.sliding_window", 512)),
        query_pre_attn_scalar=scalar,
        final_logit_softcapping=float(softcap_final) if softcap_final is not None else None,
        attn_logit_softcapping=float(softcap_attn) if softcap_attn is not None else None,
        **extra,
        **common,
    )


def _gemma_merges(tokens: list[str], skip: set[int]) -> list[tuple[str, str]]:
    """BPE merges implied by a SentencePiece-BPE vocabulary whose order is its merge order.

    Every token that can be cut into two tokens of the vocabulary is the result of merging them; a
    token earlier in the vocabulary was merged earlier, so the merges are ranked by the position
    of the token they make (ties: the longer left piece first).
    """
    index: dict[str, int] = {}
    for i, tok in enumerate(tokens):
        if i not in skip:
            index.setdefault(tok, i)
    ranked: list[tuple[int, int, str, str]] = []
    append = ranked.append
    get = index.get
    for tok, i in index.items():
        n = len(tok)
        if n < 2:
            continue
        for cut in range(n - 1, 0, -1):
            left = tok[:cut]
            if left in index:
                right = tok[cut:]
                if get(right) is not None:
                    append((i, n - cut, left, right))
    ranked.sort(key=lambda r: (r[0], r[1]))
    return [(r[2], r[3]) for r in ranked]


def _gemma_tokenizer(gg: GGUFFile) -> tuple[Any, dict[str, Any]]:
    """A ``tokenizers.Tokenizer`` equivalent to the model's SentencePiece one, and its config."""
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE

    tokens = list(gg.metadata["tokenizer.ggml.tokens"])
    types = gg.metadata.get("tokenizer.ggml.token_type")
    types = [int(t) for t in types] if types is not None else [TOKEN_NORMAL] * len(tokens)
    # llama.cpp stores tokens of two or more blanks as real spaces; the model's own vocabulary
    # spells them with the SentencePiece space mark.
    tokens = ["\u2581" * len(t) if " " in t and not t.strip() else t for t in tokens]
    special = {i for i, t in enumerate(types) if t == TOKEN_CONTROL}
    vocab: dict[str, int] = {}
    for i, tok in enumerate(tokens):
        vocab.setdefault(tok, i)
    merges = _gemma_merges(tokens, skip=set())

    def token_of(key: str, default: str) -> str:
        idx = gg.metadata.get(f"tokenizer.ggml.{key}")
        return tokens[int(idx)] if idx is not None and 0 <= int(idx) < len(tokens) else default

    unk = token_of("unknown_token_id", "<unk>")
    bos = token_of("bos_token_id", "<bos>")
    eos = token_of("eos_token_id", "<eos>")
    pad = token_of("padding_token_id", "<pad>")

    tok = Tokenizer(BPE(vocab=vocab, merges=merges, unk_token=unk, fuse_unk=True, byte_fallback=True, dropout=None))
    tok.normalizer = normalizers.Replace(" ", "\u2581")
    tok.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False) for i in sorted(special)])
    user_defined = [
        AddedToken(tokens[i], special=False, normalized=False)
        for i, t in enumerate(types)
        if t == TOKEN_USER_DEFINED and vocab.get(tokens[i]) == i
    ]
    if user_defined:
        tok.add_tokens(user_defined)
    add_bos = bool(gg.metadata.get("tokenizer.ggml.add_bos_token", True))
    config = _tokenizer_config(gg, tok, vocab, (bos, eos, unk, pad), add_bos=add_bos and bos in vocab,
                               context=8192)
    return tok, config


# ---- Llama with a byte-level BPE vocabulary ---------------------------------------------------

_LLAMA_BLOCK_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


def _llama_hf_name(gguf_name: str) -> str | None:
    if gguf_name == "token_embd.weight":
        return "model.embed_tokens.weight"
    if gguf_name == "output_norm.weight":
        return "model.norm.weight"
    if gguf_name == "output.weight":
        return "lm_head.weight"
    parts = gguf_name.split(".")
    if len(parts) == 4 and parts[0] == "blk" and parts[3] == "weight":
        target = _LLAMA_BLOCK_NAMES.get(parts[2])
        if target is None:
            return None
        return f"model.layers.{int(parts[1])}.{target}.weight"
    return None


def _unpermute_rope_rows(weight: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's reordering of query/key rows: within each head it stores the two halves of
    the rotary pairs interleaved (rows 0, d/2, 1, d/2+1, ...); transformers keeps them as halves."""
    rows = weight.shape[0]
    half = rows // heads // 2
    return weight.reshape(heads, half, 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def _llama_fast_path(gg: GGUFFile) -> bool:
    """True for a plain Llama (no biases, no extra rotary tables, no experts) with a byte-level BPE
    vocabulary whose pre-tokenizer this module reproduces."""
    if gg.metadata.get("tokenizer.ggml.model") != "gpt2" or "tokenizer.ggml.merges" not in gg.metadata:
        return False
    if str(gg.metadata.get("tokenizer.ggml.pre", "default")) not in BPE_PRE_GPT2 + BPE_PRE_DIGITS:
        return False
    if gg.arch_value("expert_count") or gg.arch_value("rope.scaling.type") not in (None, "none"):
        return False
    heads = (gg.arch_value("attention.head_count"), gg.arch_value("attention.head_count_kv"))
    if any(isinstance(h, (np.ndarray, list)) for h in heads):
        return False  # a different number of heads per layer
    return all(_llama_hf_name(t.name) is not None for t in gg.tensors)


def _llama_config(gg: GGUFFile, vocab_size: int, eos_ids: list[int], bos_id: int | None, pad_id: int) -> Any:
    from transformers import LlamaConfig

    heads = int(gg.arch_value("attention.head_count"))
    hidden = int(gg.arch_value("embedding_length"))
    head_dim = int(gg.arch_value("attention.key_length", gg.arch_value("rope.dimension_count", hidden // heads)))
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=int(gg.arch_value("feed_forward_length")),
        num_hidden_layers=int(gg.arch_value("block_count")),
        num_attention_heads=heads,
        num_key_value_heads=int(gg.arch_value("attention.head_count_kv", heads)),
        head_dim=head_dim,
        rms_norm_eps=float(gg.arch_value("attention.layer_norm_rms_epsilon", 1e-5)),
        max_position_embeddings=int(gg.arch_value("context_length", 4096)),
        rope_theta=float(gg.arch_value("rope.freq_base", 10000.0)),
        bos_token_id=bos_id,
        eos_token_id=eos_ids[0] if len(eos_ids) == 1 else eos_ids,
        pad_token_id=pad_id,
        tie_word_embeddings=gg.tensor("output.weight") is None,
        attention_bias=False,
        mlp_bias=False,
    )


def _bpe_tokenizer(gg: GGUFFile) -> tuple[Any, dict[str, Any]]:
    """A byte-level BPE ``tokenizers.Tokenizer`` (GPT-2 style) from the GGUF vocabulary and merges."""
    from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import BPE

    tokens = list(gg.metadata["tokenizer.ggml.tokens"])
    types = gg.metadata.get("tokenizer.ggml.token_type")
    types = [int(t) for t in types] if types is not None else [TOKEN_NORMAL] * len(tokens)
    vocab: dict[str, int] = {}
    for i, tok in enumerate(tokens):
        vocab.setdefault(tok, i)
    merges = [tuple(m.split(" ", 1)) for m in gg.metadata["tokenizer.ggml.merges"] if " " in m]
    bpe = Tokenizer(BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False, dropout=None))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if str(gg.metadata.get("tokenizer.ggml.pre", "default")) in BPE_PRE_DIGITS:
        bpe.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    else:
        bpe.pre_tokenizer = byte_level
    bpe.decoder = decoders.ByteLevel()
    special = [AddedToken(tokens[i], special=True, normalized=False) for i, t in enumerate(types) if t == TOKEN_CONTROL]
    if special:
        bpe.add_special_tokens(special)
    user_defined = [
        AddedToken(tokens[i], special=False, normalized=False)
        for i, t in enumerate(types)
        if t == TOKEN_USER_DEFINED and vocab.get(tokens[i]) == i
    ]
    if user_defined:
        bpe.add_tokens(user_defined)

    def token_of(key: str) -> str | None:
        idx = gg.metadata.get(f"tokenizer.ggml.{key}")
        return tokens[int(idx)] if idx is not None and 0 <= int(idx) < len(tokens) else None

    bos, eos, unk, pad = (token_of(k) for k in ("bos_token_id", "eos_token_id", "unknown_token_id", "padding_token_id"))
    add_bos = bool(gg.metadata.get("tokenizer.ggml.add_bos_token", False))
    config = _tokenizer_config(gg, bpe, vocab, (bos, eos, unk, pad or eos), add_bos=add_bos and bos is not None,
                               context=4096)
    return bpe, {k: v for k, v in config.items() if v is not None}


def _tokenizer_config(gg: GGUFFile, tok: Any, vocab: dict[str, int], specials: tuple[Any, Any, Any, Any], *,
                      add_bos: bool, context: int) -> dict[str, Any]:
    """The tokenizer_config.json of a converted tokenizer (``specials``: bos, eos, unk, pad); with
    ``add_bos`` the BOS token is put before every text by ``tok``'s post-processor."""
    from tokenizers import processors

    bos, eos, unk, pad = specials
    if add_bos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, vocab[bos])]
        )
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": bos,
        "eos_token": eos,
        "unk_token": unk,
        "pad_token": pad,
        "add_bos_token": add_bos,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": int(gg.arch_value("context_length", context)),
        "padding_side": "left",
    }
    if gg.chat_template:
        config["chat_template"] = gg.chat_template
    return config


def _eos_ids(gg: GGUFFile, vocab: dict[str, int] | None = None) -> list[int]:
    ids: list[int] = []
    eos = gg.metadata.get("tokenizer.ggml.eos_token_id")
    if eos is not None:
        ids.append(int(eos))
    eot = gg.metadata.get("tokenizer.ggml.eot_token_id")
    if eot is not None and int(eot) not in ids:
        ids.append(int(eot))
    if vocab is not None and gg.chat_template and "<end_of_turn>" in gg.chat_template:
        turn = vocab.get("<end_of_turn>")
        if turn is not None and turn not in ids:
            ids.append(turn)
    return ids or [1]


def _set_dtype(config: Any, dtype: str) -> None:
    import transformers

    major = int(str(transformers.__version__).split(".")[0])
    if major >= 5:
        config.dtype = dtype
    else:
        config.torch_dtype = dtype


def total_share(gg: GGUFFile) -> int:
    """Progress units given to building the tokenizer, and to writing the weights."""
    return max(1, sum(t.nbytes for t in gg.tensors) // 6)


def _convert_fast(
    gg: GGUFFile,
    dest: Path,
    *,
    dtype: str,
    progress: Progress | None,
    status: Status | None,
    cancel: CancelCheck | None,
) -> None:
    total = sum(t.nbytes for t in gg.tensors)
    # Progress units: tensor bytes, plus a share for the tokenizer and for writing the weights.
    share = total_share(gg)
    grand = total + 2 * share
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(min(done, grand), grand)
        if cancel is not None and cancel():
            raise Cancelled()

    tick(0)
    # The tokenizer (pure Python, holding the GIL) is built on a thread while the tensors are
    # dequantized (numpy, which releases it): the two overlap on a two-core machine.
    failure: list[BaseException] = []

    def build_tokenizer() -> None:
        try:
            t0 = time.perf_counter()
            tok, tok_config = _bpe_tokenizer(gg) if gg.architecture == "llama" else _gemma_tokenizer(gg)
            tok.save(str(dest / "tokenizer.json"))
            (dest / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2), encoding="utf-8")
            special_map = {
                k: tok_config[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token") if tok_config.get(k)
            }
            (dest / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2), encoding="utf-8")
            log.info("GGUF tokenizer built in %.1f s", time.perf_counter() - t0)
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=build_tokenizer, name="gguf-tokenizer", daemon=True)
    worker.start()
    try:
        _write_weights(gg, dest, dtype=dtype, tick=tick)
    finally:
        worker.join()
    if failure:
        raise failure[0]
    tick(share)


def _write_weights(gg: GGUFFile, dest: Path, *, dtype: str, tick: Callable[[int], None]) -> None:
    from safetensors.numpy import save_file

    tokens = gg.metadata["tokenizer.ggml.tokens"]
    vocab = {"<end_of_turn>": tokens.index("<end_of_turn>")} if "<end_of_turn>" in tokens else {}
    t0 = time.perf_counter()
    # numpy has no bfloat16: 16-bit weights are written as float16 (norms stay float32).
    out_dtype = np.float16 if dtype in ("float16", "bfloat16") else np.float32
    weights: dict[str, np.ndarray] = {}
    arch = gg.architecture
    llama = arch == "llama"
    heads = int(gg.arch_value("attention.head_count", 1)) if llama else 1
    kv_heads = int(gg.arch_value("attention.head_count_kv", heads)) if llama else 1
    with gg.path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        for t in gg.tensors:
            hf = _llama_hf_name(t.name) if llama else _gemma_hf_name(arch, t.name)
            if hf is None:
                log.info("GGUF tensor %s has no transformers counterpart; skipped", t.name)
                tick(t.nbytes)
                continue
            values = dequantize(mm, t)
            if t.name.endswith("norm.weight"):
                if not llama:
                    # llama.cpp stores Gemma's RMSNorm scale as 1 + w.
                    values = values - 1.0
                weights[hf] = np.ascontiguousarray(values, dtype=np.float32)
                tick(t.nbytes)
                continue
            if llama and t.name.endswith(".attn_q.weight"):
                values = _unpermute_rope_rows(values, heads)
            elif llama and t.name.endswith(".attn_k.weight"):
                values = _unpermute_rope_rows(values, kv_heads)
            weights[hf] = np.ascontiguousarray(values.astype(out_dtype, copy=False))
            tick(t.nbytes)
    log.info("GGUF tensors dequantized in %.1f s", time.perf_counter() - t0)
    t0 = time.perf_counter()
    save_file(weights, str(dest / "model.safetensors"), metadata={"format": "pt"})
    log.info("safetensors written in %.1f s", time.perf_counter() - t0)
    del weights
    # The config needs transformers, whose import is slow: it comes last, after the numpy work
    # that overlaps with the tokenizer thread.
    embd = gg.tensor("token_embd.weight")
    vocab_size = embd.shape[0] if embd is not None else len(tokens)
    eos_ids = _eos_ids(gg, vocab)
    unk = gg.metadata.get("tokenizer.ggml.unknown_token_id")
    unk_id = int(unk) if unk is not None else None
    if llama:
        bos = gg.metadata.get("tokenizer.ggml.bos_token_id")
        bos_id: int | None = int(bos) if bos is not None else None
        pad_id = int(gg.metadata.get("tokenizer.ggml.padding_token_id", eos_ids[0]))
        config = _llama_config(gg, vocab_size, eos_ids, bos_id, pad_id)
        config.architectures = ["LlamaForCausalLM"]
    else:
        bos_id = int(gg.metadata.get("tokenizer.ggml.bos_token_id", 2))
        pad_id = int(gg.metadata.get("tokenizer.ggml.padding_token_id", 0))
        config = _gemma_config(gg, vocab_size, eos_ids, bos_id, pad_id, unk_id)
        config.architectures = [
            {"gemma": "GemmaForCausalLM", "gemma2": "Gemma2ForCausalLM", "gemma3": "Gemma3ForCausalLM"}[arch]
        ]
    _set_dtype(config, "float16" if dtype in ("float16", "bfloat16") else "float32")
    config.save_pretrained(dest)
    generation = {
        "bos_token_id": bos_id,
        "eos_token_id": eos_ids if len(eos_ids) > 1 else eos_ids[0],
        "pad_token_id": pad_id,
    }
    (dest / "generation_config.json").write_text(json.dumps(generation, indent=2), encoding="utf-8")

    tick(total_share(gg))


def _convert_with_transformers(
    gg: GGUFFile, dest: Path, *, dtype: str, status: Status | None, cancel: CancelCheck | None
) -> None:
    """Any architecture transformers can read from GGUF: load it once, then save a plain folder."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch_dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}.get(dtype, torch.float32)
    folder, name = str(gg.path.parent), gg.path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        if cancel is not None and cancel():
            raise Cancelled()
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch_dtype)
    except (Cancelled, UserError):
        raise
    except Exception as exc:
        log.warning("transformers could not read %s", gg.path, exc_info=True)
        raise UserError(
            f"{gg.path.name} (architecture {gg.architecture or 'unknown'}) cannot be converted without llama.cpp: "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}. Install llama-cpp-python "
            "(pip install llama-cpp-python) or use a transformers model folder."
        ) from None
    if cancel is not None and cancel():
        raise Cancelled()
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict.pop("_name_or_path", None)
    model_type = config_dict.pop("model_type")
    config = AutoConfig.for_model(model_type, **config_dict)
    with torch.device("meta"):
        fresh = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    fresh.load_state_dict(loaded.state_dict(), assign=True, strict=False)
    fresh.tie_weights()
    fresh.save_pretrained(dest, safe_serialization=True)
    tokenizer.save_pretrained(dest)
    del loaded, fresh


def convert_gguf(
    gguf_path: str | Path,
    dest: str | Path,
    *,
    dtype: str = "auto",
    progress: Progress | None = None,
    status: Status | None = None,
    cancel: CancelCheck | None = None,
) -> Path:
    """Write a transformers folder for a GGUF model into ``dest`` (an empty or new folder).

    ``dtype`` "auto": float32 for small models (the fastest on CPUs, and exact), 16 bits for
    files over :data:`FLOAT32_LIMIT` bytes (a 3B model would need 12 GB in float32).
    """
    gguf_path, dest = Path(gguf_path), Path(dest)
    gg = read_gguf(gguf_path)
    if dtype == "auto":
        dtype = "float32" if gg.size <= FLOAT32_LIMIT else "bfloat16"
    if "tokenizer.ggml.tokens" not in gg.metadata:
        raise UserError(f"{gguf_path.name} has no tokenizer inside; it cannot be used as a language model.")
    dest.mkdir(parents=True, exist_ok=True)
    arch = gg.architecture
    if arch in FAST_ARCHITECTURES and (
        _llama_fast_path(gg) if arch == "llama" else gg.metadata.get("tokenizer.ggml.model") == "llama"
    ):
        _convert_fast(gg, dest, dtype=dtype, progress=progress, status=status, cancel=cancel)
    else:
        _convert_with_transformers(gg, dest, dtype=dtype, status=status, cancel=cancel)
    return dest


# ---- the converted folder in the store -------------------------------------------------------


def converted_dir(store_root: str | Path, gguf_path: str | Path) -> Path:
    """Where the converted folder of a GGUF file lives in the store."""
    gguf_path = Path(gguf_path)
    stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in gguf_path.stem)[:80]
    return Path(store_root) / CONVERTED_DIR / f"{stem}-{file_key(gguf_path)}"


def _marker_ok(folder: Path) -> bool:
    """True when a converted folder is complete: its marker lists every file with its size."""
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        if data.get("version") != CONVERTER_VERSION:
            return False
        files = data.get("files") or {}
        if "config.json" not in files:
            return False
        return all((folder / name).is_file() and (folder / name).stat().st_size == size for name, size in files.items())
    except (OSError, ValueError, AttributeError, TypeError):
        return False


def is_converted(folder: str | Path) -> bool:
    return _marker_ok(Path(folder))


def _write_marker(folder: Path, source: Path, seconds: float) -> None:
    files = {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file() and p.name != MARKER}
    data = {
        "version": CONVERTER_VERSION,
        "source": source.name,
        "source_size": source.stat().st_size,
        "seconds": round(seconds, 2),
        "files": files,
    }
    (folder / MARKER).write_text(json.dumps(data, indent=2), encoding="utf-8")


def _remove_tree(path: Path) -> None:
    """Move a folder aside, then delete it (a half-deleted folder never keeps the real name)."""
    if not path.exists():
        return
    trash = path.with_name(f".trash-{path.name}-{os.getpid()}-{time.monotonic_ns()}")
    try:
        path.rename(trash)
    except OSError:
        trash = path
    shutil.rmtree(trash, ignore_errors=True)


#: Temporary folders older than this are left over from an interrupted conversion.
STALE_SECONDS = 3600


def _remove_stale(parent: Path, name: str) -> None:
    """Delete what an interrupted conversion of ``name`` left behind (not one still running)."""
    if not parent.is_dir():
        return
    now = time.time()
    for p in parent.iterdir():
        if p.name.startswith((f".tmp-{name}-", f".trash-{name}-")):
            try:
                if now - p.stat().st_mtime > STALE_SECONDS or p.name.startswith(".trash-"):
                    shutil.rmtree(p, ignore_errors=True)
            except OSError:
                pass


def ensure_converted(
    gguf_path: str | Path,
    store_root: str | Path,
    *,
    dtype: str = "auto",
    progress: Progress | None = None,
    status: Status | None = None,
    cancel: CancelCheck | None = None,
    force: bool = False,
) -> Path:
    """The converted folder of a GGUF file, converting it first if needed (once)."""
    gguf_path = Path(gguf_path)
    check_gguf_file(gguf_path)
    target = converted_dir(store_root, gguf_path)
    if not force and _marker_ok(target):
        return target
    gg_name = gguf_path.name
    if status is not None:
        status(f"Preparing {gg_name} once for fast loading (this takes a few seconds)…")
    parent = target.parent
    _remove_stale(parent, target.name)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=parent))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
    except OSError as exc:
        raise UserError(f"The model store {parent} is not writable: {exc.strerror or exc}.") from None
    t0 = time.perf_counter()
    try:
        convert_gguf(gguf_path, tmp, dtype=dtype, progress=progress, status=status, cancel=cancel)
        _write_marker(tmp, gguf_path, time.perf_counter() - t0)
        if target.exists():
            if not force and _marker_ok(target):
                # Another process finished first; keep its folder.
                shutil.rmtree(tmp, ignore_errors=True)
                return target
            _remove_tree(target)
        os.replace(tmp, target)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, MemoryError):
            raise UserError("Not enough memory to prepare the model; close other programs and try again.") from None
        if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError):
            if getattr(exc, "errno", None) == 28:
                raise UserError("The disk is full; free some space so that the model can be prepared.") from None
            raise UserError(f"The model could not be prepared in {parent}: {exc.strerror or exc}.") from None
        raise
    log.info("converted %s into %s in %.1f s", gguf_path, target, time.perf_counter() - t0)
    return target


def iter_converted(store_root: str | Path) -> Iterator[Path]:
    """The converted folders in a store (for clean-up views)."""
    base = Path(store_root) / CONVERTED_DIR
    if base.is_dir():
        for p in sorted(base.iterdir()):
            if p.is_dir() and not p.name.startswith("."):
                yield p
