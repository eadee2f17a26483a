"""Property tests (hypothesis) on the studio's own parsers and decoders.

Each reader, given random or mutated input, either returns a value or raises a
:class:`~workers.errors.UserError` sentence: never another exception, never a huge allocation,
never code run from a pickle. The example counts are small and the runs derandomised, so the file
takes well under a minute and gives the same result every time.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import math
import os
import pickle
import re
import struct
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workers.errors import UserError

pytestmark = pytest.mark.timeout(120)

FUZZ = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


class Slot:
    """One file that each example overwrites (hypothesis runs the examples one after another)."""

    def __init__(self, folder: Path, name: str) -> None:
        self.path = folder / name

    def write(self, data: bytes) -> Path:
        self.path.write_bytes(data)
        return self.path


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    """``data`` with bytes replaced at relative positions (0..9999 of its length), then cut short."""
    out = bytearray(data)
    for where, value in edits:
        if out:
            out[where * len(out) // 10_000] = value
    if cut is not None:
        out = out[: cut * len(out) // 10_000]
    return bytes(out)


EDITS = st.lists(st.tuples(st.integers(0, 9999), st.integers(0, 255)), max_size=8)
CUTS = st.none() | st.integers(0, 9999)


def _peak_mb(fn: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``fn``; its result (or the UserError it raised) and the peak of Python/numpy allocations in MB."""
    tracemalloc.start()
    try:
        try:
            result: Any = fn()
        except UserError as exc:
            result = exc
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak / 1e6


# ---- GGUF ------------------------------------------------------------------------------------------------------------
_U32, _I32, _F32, _BOOL, _STR, _ARR, _U64 = 4, 5, 6, 7, 8, 9, 10


def _gguf_string(text: bytes) -> bytes:
    return struct.pack("<Q", len(text)) + text


def _gguf_value(draw: Any, depth: int = 0) -> tuple[int, bytes]:
    kind = draw(st.sampled_from([_U32, _I32, _F32, _BOOL, _STR, _ARR, _U64, 12, 99]))
    if kind == _STR:
        return kind, _gguf_string(draw(st.binary(max_size=12)))
    if kind == _ARR:
        item = draw(st.sampled_from([_U32, _F32, _STR, _ARR, 77]))
        count = draw(st.sampled_from([0, 1, 2, 3, 2**31, 2**63]))
        body = b""
        for _ in range(min(count, 3)):
            if item == _ARR and depth < 3:
                sub_kind, sub = _gguf_value(draw, depth + 1)
                body += struct.pack("<I", sub_kind) + sub if sub_kind == _ARR else sub
            elif item == _STR:
                body += _gguf_string(b"tok")
            else:
                body += b"\x01\x00\x00\x00"
        return kind, struct.pack("<IQ", item, count) + body
    if kind in (_U64,):
        return kind, struct.pack("<Q", draw(st.integers(0, 2**64 - 1)))
    if kind == 12:
        return kind, struct.pack("<d", draw(st.floats(allow_nan=True)))
    return kind, struct.pack("<I", draw(st.integers(0, 2**32 - 1)))


@st.composite
def gguf_files(draw: Any) -> bytes:
    """GGUF-looking files: a real header layout filled with random, often absurd, values."""
    version = draw(st.sampled_from([1, 2, 3, 3, 3, 4, 2**32 - 1]))
    kvs = draw(st.integers(0, 4))
    tensors = draw(st.integers(0, 3))
    claimed_kv = draw(st.sampled_from([kvs, kvs, kvs + 1, 2**40, 2**64 - 1]))
    claimed_tensors = draw(st.sampled_from([tensors, tensors, 2**50]))
    out = io.BytesIO()
    out.write(b"GGUF" + struct.pack("<IQQ", version, claimed_tensors, claimed_kv))
    for i in range(kvs):
        key = draw(st.sampled_from([b"general.alignment", b"general.architecture", f"k{i}".encode()]))
        kind, value = _gguf_value(draw)
        out.write(_gguf_string(key) + struct.pack("<I", kind) + value)
    for i in range(tensors):
        dims = draw(st.lists(st.sampled_from([0, 1, 32, 2**20, 2**62]), max_size=5))
        n_dims = draw(st.sampled_from([len(dims), len(dims), 9, 2**31]))
        out.write(_gguf_string(f"t{i}".encode()) + struct.pack("<I", n_dims))
        out.write(b"".join(struct.pack("<Q", d) for d in dims))
        out.write(struct.pack("<IQ", draw(st.sampled_from([0, 1, 8, 30, 255])), draw(st.sampled_from([0, 32, 2**60]))))
    out.write(draw(st.binary(max_size=64)))
    return out.getvalue()


@pytest.fixture(scope="module")
def small_gguf(scratch: Path) -> bytes:
    import gguf

    path = scratch / "small.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("fuzz")
    writer.add_token_list(["a", "b", "c"])
    writer.add_tensor("w", np.arange(64, dtype=np.float32).reshape(2, 32))
    writer.add_tensor("q", np.ones((1, 32), np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    from workers.assistant.gguf_convert import read_gguf

    read_gguf(path)  # what the reader imports on first use is not what the examples allocate
    return path.read_bytes()


def _read_gguf_checked(path: Path) -> None:
    from workers.assistant.gguf_convert import read_gguf

    result, peak = _peak_mb(lambda: read_gguf(path))
    assert peak < 64, f"reading a {path.stat().st_size}-byte file allocated {peak:.0f} MB"
    if not isinstance(result, UserError):
        assert result.size == path.stat().st_size
        for tensor in result.tensors:
            assert tensor.offset >= 0 and tensor.offset + tensor.nbytes <= result.size


@FUZZ
@given(data=gguf_files())
def test_gguf_reader_on_made_up_headers(scratch: Path, data: bytes) -> None:
    _read_gguf_checked(Slot(scratch, "made-up.gguf").write(data))


@FUZZ
@given(edits=EDITS, cut=CUTS)
def test_gguf_reader_on_mutated_files(scratch: Path, small_gguf: bytes, edits: Any, cut: Any) -> None:
    _read_gguf_checked(Slot(scratch, "mutated.gguf").write(mutate(small_gguf, edits, cut)))


def test_gguf_reader_regressions(scratch: Path) -> None:
    """Found by the corpus: a text alignment and deeply nested arrays were a ValueError and a RecursionError."""
    from workers.assistant.gguf_convert import read_gguf

    key = _gguf_string(b"general.alignment")
    for value in (struct.pack("<I", _STR) + _gguf_string(b"32"), struct.pack("<I", _I32) + struct.pack("<i", -8)):
        path = Slot(scratch, "alignment.gguf").write(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + key + value)
        with pytest.raises(UserError, match="alignment"):
            read_gguf(path)
    deep = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + _gguf_string(b"x") + struct.pack("<I", _ARR)
    deep += struct.pack("<IQ", _ARR, 1) * 5000 + struct.pack("<IQ", _U32, 0)
    with pytest.raises(UserError, match="nested"):
        read_gguf(Slot(scratch, "deep.gguf").write(deep))


# ---- checkpoints (pickles) -------------------------------------------------------------------------------------------
class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str]]:
        return (os.system, (f"echo ran > '{self.marker}'",))


@pytest.fixture(scope="module")
def checkpoints(scratch: Path) -> dict[str, bytes]:
    """A weights-only torch checkpoint (zip), the same as a plain pickle, and two pickles with code."""
    import torch

    marker = scratch / "PAYLOAD-RAN"
    state = {"weight": {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3)}, "config": [1, 2, 3], "f0": 1}
    zipped = io.BytesIO()
    torch.save(state, zipped)
    plain = io.BytesIO()
    torch.save(state, plain, _use_new_zipfile_serialization=False)
    evil_zip = io.BytesIO()
    torch.save({"model": _Payload(marker)}, evil_zip)
    from workers.voice_conversion.checkpoints import torch_load

    for name, data in (("warm.pth", zipped.getvalue()), ("warm-legacy.pth", plain.getvalue())):
        torch_load(Slot(scratch, name).write(data))  # first use imports more of torch
    return {
        "zip": zipped.getvalue(),
        "legacy": plain.getvalue(),
        "evil-zip": evil_zip.getvalue(),
        "evil-pickle": pickle.dumps({"weight": _Payload(marker)}, protocol=2),
    }


def _torch_load_checked(scratch: Path, data: bytes) -> None:
    from workers.voice_conversion.checkpoints import _foreign_global, torch_load

    path = Slot(scratch, "fuzz.pth").write(data)
    assert isinstance(_foreign_global(path), str | type(None))
    result, peak = _peak_mb(lambda: torch_load(path))
    assert peak < 256, f"{peak:.0f} MB for a {len(data)}-byte checkpoint"
    assert not (scratch / "PAYLOAD-RAN").exists(), "a pickle ran code"
    if isinstance(result, UserError):
        assert "Traceback" not in str(result) and str(result).endswith(".")


@FUZZ
@given(which=st.sampled_from(["zip", "legacy", "evil-zip", "evil-pickle"]), edits=EDITS, cut=CUTS)
def test_checkpoint_reader_on_mutated_pickles(
    scratch: Path, checkpoints: dict[str, bytes], which: str, edits: Any, cut: Any
) -> None:
    _torch_load_checked(scratch, mutate(checkpoints[which], edits, cut))


@FUZZ
@given(data=st.binary(max_size=300))
def test_checkpoint_reader_on_random_bytes(scratch: Path, data: bytes) -> None:
    _torch_load_checked(scratch, b"\x80\x02" + data)


def test_checkpoint_regressions(scratch: Path, checkpoints: dict[str, bytes]) -> None:
    """Found by fuzzing: a 100-byte pickle whose string length says 2 GB made the unpickler ask the file
    for 2 GB at once; a zip whose directory overstates its pickle's size raised EOFError."""
    import zipfile

    from workers.voice_conversion.checkpoints import torch_load

    huge = b"\x80\x02}q\x00X\xff\xff\xff\x7f" + b"weight" * 10
    result, peak = _peak_mb(lambda: torch_load(Slot(scratch, "huge-length.pth").write(huge)))
    assert isinstance(result, UserError) and peak < 64, peak
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"weight": {}}, protocol=2))
    data = bytearray(buf.getvalue())
    at = data.rfind(b"PK\x01\x02")
    data[at + 20 : at + 28] = struct.pack("<II", 5000, 5000)
    with pytest.raises(UserError, match="damaged"):
        torch_load(Slot(scratch, "short-member.pth").write(bytes(data)))


def test_pickles_with_code_are_refused_by_name(scratch: Path, checkpoints: dict[str, bytes]) -> None:
    from workers.voice_conversion.checkpoints import torch_load

    for which in ("evil-zip", "evil-pickle"):
        path = Slot(scratch, f"{which}.pth").write(checkpoints[which])
        with pytest.raises(UserError, match=r"posix\.system|os\.system|nt\.system"):
            torch_load(path)
    assert not (scratch / "PAYLOAD-RAN").exists()


# ---- so-vits-svc configs ---------------------------------------------------------------------------------------------
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def sovits_config() -> dict[str, Any]:
    from svc_fixtures import sovits_config

    return sovits_config("4.1")


@FUZZ
@given(data=st.data())
def test_sovits_config_reader_on_mutated_configs(scratch: Path, sovits_config: dict[str, Any], data: Any) -> None:
    from workers.voice_conversion.checkpoints import _sovits_config

    config = json.loads(json.dumps(sovits_config))
    section = data.draw(st.sampled_from(["model", "data", "train", "spk"]))
    keys = sorted(config.get(section) or {"x": 0})
    key = data.draw(st.sampled_from(keys))
    if isinstance(config.get(section), dict):
        if data.draw(st.booleans()):
            config[section][key] = data.draw(JSON)
        else:
            config[section].pop(key, None)
    else:
        config[section] = data.draw(JSON)
    path = Slot(scratch, "config.json").write(json.dumps(config).encode())
    with contextlib.suppress(UserError):
        _sovits_config(path)


# ---- the model manifest ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def manifest_text() -> str:
    from workers.models.manifest import default_manifest_path

    return default_manifest_path().read_text(encoding="utf-8")


TOML_VALUES = st.sampled_from(
    ['""', "0", "-1", "1e999", "true", "[]", "{}", '"../../etc/passwd"', '"/abs/path"', "[1, 2]", '"x"', "nan"]
)


@FUZZ
@given(data=st.data())
def test_manifest_parser_on_mutated_toml(scratch: Path, manifest_text: str, data: Any) -> None:
    from workers.models.manifest import load_manifest

    lines = manifest_text.splitlines()
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(lines) - 1))
        action = data.draw(st.sampled_from(["value", "drop", "copy", "garble"]))
        if action == "value" and "=" in lines[i]:
            lines[i] = lines[i].split("=", 1)[0] + "= " + data.draw(TOML_VALUES)
        elif action == "drop":
            del lines[i]
        elif action == "copy":
            lines.insert(i, lines[i])
        else:
            lines[i] = lines[i][: len(lines[i]) // 2]
        if not lines:
            break
    path = Slot(scratch, "models.toml").write("\n".join(lines).encode())
    try:
        manifest = load_manifest(path)
    except UserError:
        return
    for model in manifest.models:
        for spec in model.files:
            assert not Path(spec.name).is_absolute() and ".." not in Path(spec.name).parts, spec.name


# ---- conversations ---------------------------------------------------------------------------------------------------
def _load_conversation(scratch: Path, name: str, data: bytes) -> Any:
    from workers.assistant.conversation import Conversation

    try:
        return Conversation.load(Slot(scratch, name).write(data))
    except UserError as exc:
        assert "\n" not in str(exc)
        return None


@FUZZ
@given(value=JSON)
def test_conversation_loader_on_any_json(scratch: Path, value: Any) -> None:
    _load_conversation(scratch, "any.json", json.dumps(value).encode())
    _load_conversation(scratch, "turns.json", json.dumps({"turns": [value, {"user": value, "id": value}]}).encode())


TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"),
    max_size=30,
)
LINE = st.sampled_from(["## Turn 1", "## System prompt", "**User:**", "**Assistant:**", "*(interrupted)*", "",
                        "<!-- turn {} -->", '<!-- turn {"id": 1e999} -->', "## turn x", "\\## Turn 2"]) | TEXT


@FUZZ
@given(lines=st.lists(LINE, max_size=12))
def test_conversation_loader_on_markdown_pieces(scratch: Path, lines: list[str]) -> None:
    _load_conversation(scratch, "pieces.md", "\n".join(lines).encode())


@FUZZ
@given(turns=st.lists(st.tuples(TEXT, TEXT, st.booleans()), min_size=1, max_size=4), system=TEXT)
def test_conversation_survives_a_markdown_round_trip(
    scratch: Path, turns: list[tuple[str, str, bool]], system: str
) -> None:
    """Whatever was said (headings, **User:** lines and all) comes back from the Markdown file."""
    from workers.assistant.conversation import Conversation

    conversation = Conversation(system_prompt=system.strip(), turns=[])
    for user, assistant, interrupted in turns:
        turn = conversation.new_turn(user.strip(), source="text")
        turn.assistant = assistant.strip()
        turn.interrupted = interrupted
    path = conversation.save(scratch / "round-trip.md")
    loaded = Conversation.load(path)
    assert loaded.system_prompt == conversation.system_prompt or not conversation.system_prompt
    assert [(t.user, t.assistant, t.interrupted) for t in loaded.turns] == [
        (t.user, t.assistant, t.interrupted) for t in conversation.turns
    ]


def test_conversation_loader_regressions(scratch: Path) -> None:
    """Found by the corpus: deep nesting was a RecursionError, 1e400 / 10**400 an OverflowError."""
    deep = b'{"turns": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    assert _load_conversation(scratch, "deep.json", deep) is None
    huge = b'{"turns": [{"id": 1e400, "user": "a", "timings": {"x": 1' + b"0" * 400 + b', "y": 5}}]}'
    loaded = _load_conversation(scratch, "huge.json", huge)
    assert loaded is not None and loaded.turns[0].id == 1 and loaded.turns[0].timings == {"y": 5.0}
    assert _load_conversation(scratch, "empty.md", b"   \n") is None


# ---- the sentence splitter -------------------------------------------------------------------------------------------
SPEECHY = st.lists(
    st.sampled_from([*"abc XYZ.!?…,;:\n\t\"')”»-12", "Dr.", "e.g.", "3.14", " ", "...", "\u00a0", "\u3000"]),
    max_size=60,
).map("".join)


@FUZZ
@given(text=SPEECHY | st.text(max_size=120), cuts=st.lists(st.integers(0, 120), max_size=10),
       soft=st.sampled_from([0, 20, 160]))
def test_sentence_splitter_never_loses_or_repeats_text(text: str, cuts: list[int], soft: int) -> None:
    from workers.assistant.sentences import SentenceSplitter, speakable

    splitter = SentenceSplitter(soft_limit=soft)
    bounds = sorted({0, len(text), *(min(c, len(text)) for c in cuts)})
    out: list[str] = []
    for a, b in itertools.pairwise(bounds):
        out += splitter.feed(text[a:b])
    out += splitter.flush()
    assert " ".join(out) == " ".join(text.split())
    assert all(s and s == s.strip() for s in out)
    for sentence in out:
        spoken = speakable(sentence)
        assert spoken == spoken.strip()


# ---- images ----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def images(scratch: Path) -> dict[str, bytes]:
    from PIL import Image

    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8))
    out = {}
    for fmt, kwargs in [("PNG", {}), ("JPEG", {"quality": 80}), ("GIF", {}), ("TIFF", {}), ("WEBP", {}), ("BMP", {})]:
        buf = io.BytesIO()
        (rgb.convert("P") if fmt == "GIF" else rgb).save(buf, fmt, **kwargs)
        out[fmt] = buf.getvalue()
    buf = io.BytesIO()
    rgb.convert("RGBA").save(buf, "PNG")
    out["RGBA"] = buf.getvalue()
    from workers.media.imageio import load_image

    for fmt, data in out.items():  # Pillow imports its format plugins on first use
        load_image(Slot(scratch, f"warm.{fmt.lower()}").write(data))
    return out


@FUZZ
@given(fmt=st.sampled_from(["PNG", "JPEG", "GIF", "TIFF", "WEBP", "BMP", "RGBA"]), edits=EDITS, cut=CUTS)
def test_image_reader_on_mutated_files(scratch: Path, images: dict[str, bytes], fmt: str, edits: Any, cut: Any) -> None:
    from workers.media.imageio import load_image

    path = Slot(scratch, f"fuzz.{fmt.lower()}").write(mutate(images[fmt], edits, cut))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result, peak = _peak_mb(lambda: load_image(path))
    assert not caught, [str(w.message) for w in caught]  # a terminal would show them under the one sentence
    assert peak < 256, f"{peak:.0f} MB"
    if isinstance(result, UserError):
        assert str(result).startswith(path.name) and str(result).endswith(".")
    else:
        assert result.bgr.dtype == np.uint8 and result.bgr.ndim == 3 and result.bgr.shape[2] == 3
        assert result.alpha is None or result.alpha.shape == result.bgr.shape[:2]


# ---- sounds ----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sounds(scratch: Path) -> dict[str, bytes]:
    import soundfile

    t = np.arange(4000) / 8000
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)[:, None]
    out = {}
    for name, fmt, subtype in [("wav", "WAV", "PCM_16"), ("float.wav", "WAV", "FLOAT"), ("flac", "FLAC", "PCM_16"),
                               ("ogg", "OGG", "VORBIS"), ("mp3", "MP3", "MPEG_LAYER_III")]:
        buf = io.BytesIO()
        soundfile.write(buf, tone, 8000, format=fmt, subtype=subtype)
        out[name] = buf.getvalue()
    from workers.assistant.asr import read_audio_16k
    from workers.voice_conversion.files import read_audio

    for name, data in out.items():  # the decoders load on first use
        path = Slot(scratch, f"warm.{name}").write(data)
        read_audio(path)
        read_audio_16k(path)
    return out


@FUZZ
@given(kind=st.sampled_from(["wav", "float.wav", "flac", "ogg", "mp3"]), edits=EDITS, cut=CUTS)
def test_audio_readers_on_mutated_files(
    scratch: Path, sounds: dict[str, bytes], kind: str, edits: Any, cut: Any
) -> None:
    from workers.assistant.asr import read_audio_16k
    from workers.voice_conversion.files import read_audio

    path = Slot(scratch, f"fuzz.{kind}").write(mutate(sounds[kind], edits, cut))
    result, peak = _peak_mb(lambda: read_audio(path))
    assert peak < 256
    if not isinstance(result, UserError):
        data, rate = result
        assert data.ndim == 2 and data.shape[0] > 0 and rate > 0 and np.isfinite(data).all()
    result, peak = _peak_mb(lambda: read_audio_16k(path))
    assert peak < 256
    if not isinstance(result, UserError):
        assert result.ndim == 1 and np.isfinite(result).all() and np.abs(result).max(initial=0) <= 1.0


def test_audio_reader_regressions(scratch: Path) -> None:
    """Found by the corpus: NaN, infinite and huge float samples reached Whisper (one 0.5 s file took 40 s)."""
    import soundfile

    from workers.assistant.asr import read_audio_16k
    from workers.voice_conversion.files import read_audio

    data = np.full((8000, 1), 0.1, np.float32)
    data[10:20], data[30], data[40], data[50:60] = np.nan, np.inf, -np.inf, 1e30
    path = scratch / "nan.wav"
    soundfile.write(str(path), data, 16000, subtype="FLOAT")
    audio = read_audio_16k(path)
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 1.0
    assert np.isfinite(read_audio(path)[0]).all()
    with pytest.raises(UserError, match="empty"):
        read_audio(Slot(scratch, "empty.wav").write(b""))


# ---- subtitles -------------------------------------------------------------------------------------------------------
TIMES = st.floats(min_value=-5, max_value=1e6) | st.sampled_from([math.nan, math.inf, -math.inf])
_CUE_TIME = r"\d{2,}:\d\d:\d\d[,.]\d\d\d"


@FUZZ
@given(segments=st.lists(st.tuples(TIMES, TIMES, st.text(max_size=40)), max_size=6))
def test_subtitle_writers(segments: list[tuple[float, float, str]]) -> None:
    from workers.assistant.asr import Segment, Transcript, format_transcript

    transcript = Transcript(" ".join(s[2] for s in segments), [Segment(*s) for s in segments], duration=10.0)
    spoken = [re.sub(r"--+>", "->", " ".join(s[2].split())) for s in segments if s[2].strip()]
    srt = format_transcript(transcript, "srt")
    blocks = [b for b in srt.split("\n\n") if b.strip()]
    assert len(blocks) == len(spoken), srt
    for number, (block, text) in enumerate(zip(blocks, spoken, strict=True), 1):
        lines = block.strip("\n").split("\n")
        assert lines[0] == str(number)
        assert re.fullmatch(rf"{_CUE_TIME} --> {_CUE_TIME}", lines[1]), lines[1]
        assert " ".join(" ".join(lines[2:]).split()) == text
    vtt = format_transcript(transcript, "vtt")
    assert vtt.startswith("WEBVTT\n\n")
    cues = [b for b in vtt[len("WEBVTT\n\n") :].split("\n\n") if b.strip()]
    assert len(cues) == len(spoken)
    for cue in cues:
        first, *rest = cue.strip("\n").split("\n")
        assert re.fullmatch(rf"{_CUE_TIME} --> {_CUE_TIME}", first)
        assert "-->" not in " ".join(rest)
