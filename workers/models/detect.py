"""Which tool a model file or folder is for, told from the file itself.

:func:`detect_model` first checks that the path is a model at all (a picture or a text file renamed
``.onnx`` is refused with one sentence, as is a checkpoint holding code), then reads just enough of it
to tell what it does:

- ONNX: its graph's inputs, outputs and initializers, read straight from the protobuf without loading
  the weights: an image in and a one-channel mask out is a background-removal model; an image and a
  512-value face embedding in is an inswapper-style face swapper; a face image in and the same size
  out is a face enhancer (GFPGAN, GPEN, CodeFormer); a detector or recogniser of faces goes with the
  face swap too; an ``.onnx`` with its ``.onnx.json`` beside it is a Piper voice.
- PyTorch (``.pth``, ``.pt``, ``.ckpt``, ``.bin``) and ``.safetensors``: the names its pickle or header
  holds (read without running anything): an RVC export, a so-vits-svc generator (with the
  ``config.json`` beside it), a content encoder; a language model's layers.
- GGUF: a language model for the assistant. A folder: a transformers model (by its config.json: a
  language model, Whisper, Bark, or a HuBERT/ContentVec encoder), a CTranslate2 Whisper model, a Piper
  voice, a so-vits-svc or RVC voice, an InsightFace pack.

Nothing is loaded into a model runtime, and nothing here imports one: it is cheap enough to run as
soon as the user picks the file. No Qt here.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import pickletools
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from workers.errors import UserError
from workers.models.manifest import TOOL_NAMES
from workers.models.safety import _Bounded, _pickle_streams
from workers.models.store import sniff_model

log = logging.getLogger(__name__)

#: How many names of a checkpoint's pickle are looked at, at most.
MAX_PICKLE_STRINGS = 200_000
#: The largest safetensors header read (real ones are a few hundred kilobytes).
MAX_SAFETENSORS_HEADER = 64 * 1024 * 1024
#: The size of a face embedding (ArcFace) that an inswapper-style swapper takes.
EMBEDDING_SIZE = 512
_GENERATOR = re.compile(r"^G_\d+$")


@dataclass(frozen=True)
class Detection:
    """What a model file or folder was found to be."""

    path: Path
    #: The tool it is for (a key of :data:`~workers.models.manifest.TOOL_NAMES`), or None when the file
    #: does not say (the user chooses).
    tool: str | None
    #: The store's kind for it (onnx, piper-voice, torch, safetensors, gguf, transformers, ctranslate2...).
    kind: str
    #: A few words on what it is: "a background-removal model (an image in, a mask out)".
    role: str
    #: A name to offer for it.
    name: str
    #: Files that must travel with it (a Piper voice's .onnx.json, a so-vits-svc config.json).
    companions: tuple[Path, ...] = field(default=())

    def summary(self) -> str:
        """One sentence for the confirmation: what it is and which tool it goes to."""
        if self.tool is None:
            return f"{self.path.name} is {self.role}; the file does not say which tool it is for."
        return f"{self.path.name} is {self.role}, for {TOOL_NAMES[self.tool]}."


# ---- ONNX, read straight from its protobuf ------------------------------------------------------------


@dataclass
class OnnxTensor:
    name: str
    #: Each dimension: an int, or None when it is symbolic ("batch", "height") or unknown.
    dims: tuple[int | None, ...] = ()


@dataclass
class OnnxGraph:
    """What :func:`read_onnx_graph` finds: the graph's real inputs (initializers left out), outputs,
    initializers, operator counts, and the model's metadata."""

    inputs: list[OnnxTensor] = field(default_factory=list)
    outputs: list[OnnxTensor] = field(default_factory=list)
    initializers: list[OnnxTensor] = field(default_factory=list)
    ops: dict[str, int] = field(default_factory=dict)
    producer: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


class _Damaged(Exception):
    pass


def _varint(fh: IO[bytes]) -> int:
    shift = result = 0
    while True:
        byte = fh.read(1)
        if not byte:
            raise _Damaged("the file ends inside a number")
        result |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return result
        shift += 7
        if shift > 70:
            raise _Damaged("a number that never ends")


def _fields(fh: IO[bytes], end: int) -> Iterator[tuple[int, int, int]]:
    """(field number, wire type, value) of a message up to ``end``; for a length-delimited field the
    value is its length and the reader stands at its start (the caller reads or skips it)."""
    while fh.tell() < end:
        key = _varint(fh)
        number, wire = key >> 3, key & 7
        if wire == 0:
            yield number, wire, _varint(fh)
        elif wire == 1:
            fh.seek(8, io.SEEK_CUR)
        elif wire == 5:
            fh.seek(4, io.SEEK_CUR)
        elif wire == 2:
            length = _varint(fh)
            start = fh.tell()
            if start + length > end:
                raise _Damaged("a field longer than the message that holds it")
            yield number, wire, length
            fh.seek(start + length)
        else:
            raise _Damaged(f"wire type {wire}")


def _string(fh: IO[bytes], length: int, limit: int = 4096) -> str:
    return fh.read(min(length, limit)).decode("utf-8", "replace")


def _dims_of_type(fh: IO[bytes], end: int) -> tuple[int | None, ...]:
    """The shape in a TypeProto (tensor_type.shape.dim[])."""
    dims: list[int | None] = []
    for number, wire, length in _fields(fh, end):
        if number == 1 and wire == 2:  # tensor_type
            for n2, w2, l2 in _fields(fh, fh.tell() + length):
                if n2 == 2 and w2 == 2:  # shape
                    for n3, w3, l3 in _fields(fh, fh.tell() + l2):
                        if n3 == 1 and w3 == 2:  # dim
                            value: int | None = None
                            for n4, w4, v4 in _fields(fh, fh.tell() + l3):
                                if n4 == 1 and w4 == 0:
                                    value = v4
                            dims.append(value)
    return tuple(dims)


def _value_info(fh: IO[bytes], end: int) -> OnnxTensor:
    tensor = OnnxTensor("")
    for number, wire, length in _fields(fh, end):
        if number == 1 and wire == 2:
            tensor.name = _string(fh, length)
        elif number == 2 and wire == 2:
            tensor.dims = _dims_of_type(fh, fh.tell() + length)
    return tensor


def _initializer(fh: IO[bytes], end: int) -> OnnxTensor:
    tensor = OnnxTensor("")
    dims: list[int | None] = []
    for number, wire, length in _fields(fh, end):
        if number == 1 and wire == 0:
            dims.append(length)
        elif number == 1 and wire == 2:  # packed dims
            stop = fh.tell() + length
            while fh.tell() < stop:
                dims.append(_varint(fh))
        elif number == 8 and wire == 2:
            tensor.name = _string(fh, length)
    tensor.dims = tuple(dims)
    return tensor


def read_onnx_graph(path: Path) -> OnnxGraph:
    """The inputs, outputs, initializers and operators of an ONNX model, read from its protobuf with
    every weight skipped (a 500 MB model is read in milliseconds). UserError when it is damaged."""
    graph = OnnxGraph()
    path = Path(path)
    size = path.stat().st_size
    try:
        with path.open("rb") as fh:
            for number, wire, length in _fields(fh, size):
                if number == 2 and wire == 2:
                    graph.producer = _string(fh, length)
                elif number == 14 and wire == 2:  # metadata_props
                    key = value = ""
                    for n2, w2, l2 in _fields(fh, fh.tell() + length):
                        if n2 == 1 and w2 == 2:
                            key = _string(fh, l2)
                        elif n2 == 2 and w2 == 2:
                            value = _string(fh, l2)
                    graph.metadata[key] = value
                elif number == 7 and wire == 2:  # graph
                    for n2, w2, l2 in _fields(fh, fh.tell() + length):
                        if w2 != 2:
                            continue
                        stop = fh.tell() + l2
                        if n2 == 1:  # node
                            for n3, w3, l3 in _fields(fh, stop):
                                if n3 == 4 and w3 == 2:
                                    op = _string(fh, l3, 256)
                                    graph.ops[op] = graph.ops.get(op, 0) + 1
                        elif n2 == 5:
                            graph.initializers.append(_initializer(fh, stop))
                        elif n2 == 11:
                            graph.inputs.append(_value_info(fh, stop))
                        elif n2 == 12:
                            graph.outputs.append(_value_info(fh, stop))
    except (_Damaged, OSError, ValueError) as exc:
        log.info("reading the ONNX graph of %s failed: %s", path, exc)
        raise UserError(f"{path.name} is a damaged or incomplete ONNX model; it could not be read.") from None
    constants = {t.name for t in graph.initializers}
    graph.inputs = [t for t in graph.inputs if t.name not in constants]
    if not graph.inputs and not graph.outputs:
        raise UserError(f"{path.name} is a damaged or incomplete ONNX model: it has no inputs or outputs.")
    return graph


def _is_image(t: OnnxTensor) -> bool:
    """NCHW with 3 colour channels (or NHWC)."""
    return len(t.dims) == 4 and (t.dims[1] == 3 or t.dims[3] == 3)


def _spatial(t: OnnxTensor) -> tuple[int | None, int | None]:
    return (t.dims[2], t.dims[3]) if t.dims[1] in (1, 3) else (t.dims[1], t.dims[2])


def _channels(t: OnnxTensor) -> int | None:
    if len(t.dims) != 4:
        return None
    return t.dims[1] if t.dims[1] in (1, 3) else t.dims[3]


def classify_onnx(path: Path, graph: OnnxGraph) -> tuple[str | None, str, str]:
    """(tool, kind, role) of an ONNX model from its graph."""
    names = {t.name for t in graph.inputs}
    if Path(f"{path}.json").is_file():
        return "assistant", "piper-voice", "a Piper voice"
    if {"input", "input_lengths", "scales"} <= names:
        raise UserError(
            f"{path.name} is a Piper voice without its settings file: put {path.name}.json beside it and "
            "import it again."
        )
    if "input" in names and ("state" in names or {"h", "c"} <= names):
        return "assistant", "onnx", "a voice activity detector (Silero VAD)"
    images = [t for t in graph.inputs if _is_image(t)]
    if not images:
        return None, "onnx", "an ONNX model"
    image = images[0]
    embeddings = [t for t in graph.inputs if len(t.dims) == 2 and t.dims[1] == EMBEDDING_SIZE]
    if embeddings:
        return "face_swap", "onnx", "an inswapper-style face swapper (a face and a face embedding in)"
    outs = graph.outputs
    out_dims = [t.dims for t in outs]
    if len(outs) >= 6 and all(len(d) == 2 and d[1] in (1, 2, 4, 10) for d in out_dims):
        return "face_swap", "onnx", "a face detector (SCRFD kind)"
    if len(outs) == 1 and len(outs[0].dims) == 2 and outs[0].dims[1] == EMBEDDING_SIZE:
        return "face_swap", "onnx", "a face recogniser (ArcFace kind)"
    if len(outs) == 1 and len(outs[0].dims) == 2 and outs[0].dims[1] in (136, 212):
        return "face_swap", "onnx", "a face landmark model"
    masks = [t for t in outs if _channels(t) == 1]
    pictures = [t for t in outs if _channels(t) == 3]
    if masks and not pictures:
        return "matting", "onnx", "a background-removal model (an image in, a mask out)"
    if pictures:
        height, width = _spatial(image)
        out_h, out_w = _spatial(pictures[0])
        square = height is not None and height == width
        if square and (out_h, out_w) == (height, width):
            return "face_swap", "onnx", "a face enhancer (a face in, the same face restored out)"
        return None, "onnx", "an image-to-image ONNX model"
    return None, "onnx", "an ONNX model"


# ---- PyTorch pickles and safetensors headers ------------------------------------------------------------


def pickle_strings(path: Path, *, limit: int = MAX_PICKLE_STRINGS) -> set[str]:
    """The strings a checkpoint's pickles hold (its dict keys, tensor names...), read with pickletools:
    nothing is executed and no tensor data is read."""
    found: set[str] = set()
    for stream in _pickle_streams(Path(path)):
        for _ in range(8):  # the legacy torch format: several pickles one after the other
            start = stream.tell()
            try:
                for _op, arg, _pos in pickletools.genops(_Bounded(stream)):  # type: ignore[arg-type]
                    if isinstance(arg, str):
                        found.add(arg)
                    elif isinstance(arg, bytes) and len(arg) < 256:
                        found.add(arg.decode("latin-1"))
                    if len(found) >= limit:
                        return found
            except Exception:  # raw tensor bytes after the pickles, or damage the loader will name
                break
            if stream.tell() == start:
                break
    return found


def safetensors_keys(path: Path) -> set[str]:
    """The tensor names in a safetensors file's header."""
    with Path(path).open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            return set()
        (length,) = struct.unpack("<Q", head)
        if length > MAX_SAFETENSORS_HEADER:
            raise UserError(f"{Path(path).name} is not a safetensors file (its header is far too large).")
        try:
            header = json.loads(fh.read(length))
        except (ValueError, UnicodeDecodeError):
            raise UserError(f"{Path(path).name} is a damaged safetensors file (its header is not JSON).") from None
    return {str(k) for k in header} - {"__metadata__"} if isinstance(header, dict) else set()


def _has_prefix(keys: set[str], *prefixes: str) -> bool:
    return any(k.startswith(prefixes) for k in keys)


def classify_weights(path: Path, keys: set[str]) -> tuple[str | None, str, tuple[Path, ...]]:
    """(tool, role, companions) of a PyTorch or safetensors file from the names it holds."""
    if {"weight", "config"} <= keys and ("f0" in keys or "version" in keys):
        version = "v2" if "v2" in keys else "v1" if "v1" in keys else ""
        return "voice_conversion", f"an RVC voice{' ' + version if version else ''}", ()
    if _has_prefix(keys, "discriminators."):
        raise UserError(
            f"{path.name} is a so-vits-svc discriminator (D_*.pth), not a voice; import the generator G_*.pth "
            "next to it."
        )
    if _has_prefix(keys, "enc_p.", "dec.", "emb_g."):
        if _has_prefix(keys, "enc_p.emb_phone."):
            return "voice_conversion", "an RVC training checkpoint", ()
        config = path.parent / "config.json"
        if not config.is_file():
            raise UserError(
                f"{path.name} is a so-vits-svc voice, which needs the config.json it was trained with: put "
                "config.json beside it and import it again."
            )
        return "voice_conversion", "a so-vits-svc voice (with its config.json)", (config,)
    if "cluster_centers_" in keys:
        return "voice_conversion", "a so-vits-svc cluster model", ()
    if _has_prefix(keys, "feature_extractor.", "encoder.layers.", "final_proj.", "feature_projection."):
        return "voice_conversion", "a speech content encoder (HuBERT or ContentVec)", ()
    if _has_prefix(keys, "model.layers.", "transformer.h.", "model.decoder.layers.", "lm_head."):
        return "assistant", "a language model's weights", ()
    return None, "a PyTorch checkpoint", ()


# ---- folders ------------------------------------------------------------------------------------------


def _config(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def classify_folder(folder: Path, kind: str) -> tuple[str | None, str, str]:
    """(tool, kind, role) of a model folder whose store kind (by :func:`sniff_model`) is ``kind``."""
    files = [p for p in folder.iterdir() if p.is_file()]
    suffixes = {p.suffix.lower() for p in files}
    if any(_GENERATOR.match(p.stem) for p in files if p.suffix.lower() == ".pth"):
        return "voice_conversion", "torch", "a so-vits-svc voice"
    if kind == "ctranslate2":
        return "assistant", kind, "a Whisper speech-recognition model (CTranslate2)"
    if kind == "piper-voice":
        return "assistant", kind, "a Piper voice"
    if kind == "transformers":
        config = _config(folder)
        model_type = str(config.get("model_type", "")).lower()
        architectures = " ".join(str(a) for a in config.get("architectures", []) or [])
        if model_type in ("hubert", "wav2vec2", "contentvec") or "Hubert" in architectures:
            return "voice_conversion", kind, "a speech content encoder (HuBERT or ContentVec)"
        if model_type == "whisper":
            return "assistant", kind, "a Whisper speech-recognition model (transformers)"
        if model_type == "bark":
            return "assistant", kind, "a Bark text-to-speech model"
        return "assistant", kind, "a language model (transformers)"
    if ".gguf" in suffixes:
        return "assistant", kind, "a GGUF language model"
    onnx = sorted(p for p in files if p.suffix.lower() == ".onnx")
    if len(onnx) > 1:
        tools = {classify_onnx(p, read_onnx_graph(p))[0] for p in onnx}
        if tools == {"face_swap"}:
            return "face_swap", kind, "a pack of face models (InsightFace kind)"
    if len(onnx) == 1:
        tool, _kind, role = classify_onnx(onnx[0], read_onnx_graph(onnx[0]))
        return tool, kind, role
    weights = sorted(p for p in files if p.suffix.lower() in (".pth", ".pt", ".ckpt", ".safetensors"))
    for weight in weights:
        try:
            tool, role, _ = classify_weights(weight, _names(weight))
        except UserError:  # a discriminator or a voice without its config, beside the real thing
            continue
        if tool == "voice_conversion":
            return tool, "torch", role
    return None, kind, "a folder of model files"


def _names(path: Path) -> set[str]:
    if path.suffix.lower() == ".safetensors":
        return safetensors_keys(path)
    return pickle_strings(path)


def _suggested_name(path: Path, kind: str) -> str:
    stem = path.name if path.is_dir() else path.stem
    if kind == "piper-voice" and stem.endswith(".onnx"):
        stem = stem[: -len(".onnx")]
    if path.is_file() and _GENERATOR.match(stem) and path.parent.name:
        stem = path.parent.name  # G_1000.pth says nothing; its folder names the voice
    return stem


# ---- the entry point ------------------------------------------------------------------------------------


def detect_model(path: str | Path) -> Detection:
    """Check that ``path`` is a model and tell which tool it is for.

    Raises :class:`UserError` (one sentence) for anything that is not a model the studio can import: a
    missing path, a picture or a text file under a model's suffix, a checkpoint holding code, a damaged
    file, a Piper voice without its settings, a so-vits-svc voice without its config.json.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"{path.name or path} was not found.")
    if path.is_file() and path.stat().st_size == 0:
        raise UserError(f"{path.name} is empty (0 bytes); it is not a model.")
    kind = sniff_model(path)  # the one-sentence refusal for anything that is not a model file
    companions: tuple[Path, ...] = ()
    if path.is_dir():
        tool, kind, role = classify_folder(path, kind)
    elif kind == "onnx":
        tool, kind, role = classify_onnx(path, read_onnx_graph(path))
        if kind == "piper-voice":
            companions = (Path(f"{path}.json"),)
    elif kind in ("torch", "safetensors"):
        try:
            keys = _names(path)
        except UserError:
            raise
        except Exception as exc:  # a checkpoint damaged in a way its header did not show
            log.info("reading the names in %s failed: %s", path, exc)
            keys = set()
        tool, role, companions = classify_weights(path, keys)
    elif kind == "gguf":
        tool, role = "assistant", "a GGUF language model"
    elif kind == "ctranslate2":
        tool, role = "assistant", "a CTranslate2 model file"
    else:
        tool, role = None, "a model"
    with contextlib.suppress(OSError):
        companions = tuple(p for p in companions if p.is_file())
    detection = Detection(path, tool, kind, role, _suggested_name(path, kind), companions)
    log.info("%s", detection.summary())
    return detection
