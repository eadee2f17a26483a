"""A corpus of hostile and odd inputs, made at test time (nothing is downloaded).

:func:`build_corpus` writes every case into a folder and returns them as :class:`Case` objects:
images, sounds and videos that are empty, truncated, named with the wrong extension, tiny, huge
(a PNG whose header says 20000x20000 but whose file is a few kilobytes), in odd pixel and sample
formats, or fine; model files that are empty, truncated, of the wrong kind (an image renamed
``.onnx``, a pickle that would run a shell command renamed ``.pth``) or valid but meant for another
tool; folders where a file is expected, a path with unicode and spaces, a path that does not exist;
conversation files that the assistant's Load must refuse.

Each case names the readers that should accept it (:data:`Case.accepts`, a set of the reader tags
below); every other reader must refuse it with one sentence. ``expect`` is the outcome for the
readers of the case's own kind.

The whole corpus is about 2 MB and takes a few seconds to build; :func:`corpus_cases` builds it once
per test session. The names of the cases are fixed (:data:`CASE_NAMES`), so tests can be
parametrised over them before the files exist.

The pickle cases would write :data:`PICKLE_MARKER` into the corpus folder if anything ever unpickled
them; tests check that the marker never appears.
"""

from __future__ import annotations

import atexit
import io
import json
import os
import pickle
import shutil
import struct
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

# ---- reader tags: what a reader must accept ----------------------------------------------------------
IMAGE = "image"  # an image any image reader decodes
IMAGE_FOLDER = "image-folder"  # a folder that holds images (readers that take folders)
FACE = "face"  # an image with one clear face (the face-swap tool finds it)
AUDIO = "audio"  # a sound file with audio in it (the voice-conversion file reader)
SOUND = "sound"  # something with a sound track the transcriber reads (audio files, videos with sound)
VIDEO = "video"  # a video file with at least one frame
MATTING_MODEL = "matting-model"  # an ONNX model the background-removal engine runs
PIPER_VOICE = "piper-voice"
WHISPER_MODEL = "whisper-model"
LLM_MODEL = "llm-model"
SVC_MODEL = "svc-model"  # a so-vits-svc / RVC voice model
SVC_CONFIG = "svc-config"  # the so-vits-svc config.json that belongs to the corpus's so-vits model
SVC_INDEX = "svc-index"  # a feature index that fits the corpus's RVC model
IMPORT = "import"  # a file or folder the model store imports
CONVERSATION = "conversation"

KINDS = ("image", "audio", "video", "model", "text", "conversation", "path")

#: Written by the pickle cases' payload if anything ever unpickled them (it must never appear).
PICKLE_MARKER = "PICKLE-PAYLOAD-RAN"


@dataclass(frozen=True)
class Case:
    """One input of the corpus."""

    name: str
    kind: str
    path: Path
    #: Reader tags (the constants above) of the readers that must accept this input.
    accepts: frozenset[str]
    #: What it is, in a few words.
    note: str = ""

    @property
    def expect(self) -> str:
        """ "accept" or "reject": the outcome for the readers of the case's own kind."""
        own = {
            "image": IMAGE,
            "audio": AUDIO,
            "video": VIDEO,
            "conversation": CONVERSATION,
        }.get(self.kind)
        if own is None:
            return "accept" if self.accepts else "reject"
        return "accept" if own in self.accepts else "reject"

    def accepted_by(self, tag: str) -> bool:
        return tag in self.accepts

    def __str__(self) -> str:
        return self.name


# ---- small writers -------------------------------------------------------------------------------------
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A valid 1-bit greyscale PNG of ``width`` x ``height`` black pixels: a few kilobytes that decode
    to hundreds of megapixels (a decompression bomb)."""
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    comp = zlib.compressobj(9)
    parts = []
    block = row * 500
    for _ in range(height // 500):
        parts.append(comp.compress(block))
    parts.append(comp.compress(row * (height % 500)))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", b"".join(parts))
    path.write_bytes(data + _png_chunk(b"IEND", b""))
    return path


def _sample_bgr(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """A bright ellipse on a dark, noisy background (BGR uint8)."""
    import cv2

    rng = np.random.default_rng(seed)
    img = rng.integers(10, 50, size=(h, w, 3), dtype=np.uint8)
    cv2.ellipse(img, (w // 2, h // 2), (max(1, w // 5), max(1, h // 3)), 0, 0, 360, (230, 220, 210), -1)
    return img


def _pil(bgr: np.ndarray) -> Any:  # a PIL image (Pillow is imported when the corpus is built)
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(bgr[..., ::-1]))


def _face_bgr() -> np.ndarray:
    """scikit-image's bundled astronaut portrait (public domain), BGR 512x512: one clear face."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


def _speech_like(seconds: float, rate: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A voiced, vowel-like sound (a 150 Hz pulse train through two resonances), float32 frames x channels."""
    n = max(1, round(seconds * rate))
    t = np.arange(n) / rate
    f0 = 150 + 20 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    tone = sum(np.sin(k * phase) / k for k in range(1, 12))
    env = np.minimum(1.0, np.minimum(t / 0.02 + 1e-9, (t[-1] - t) / 0.02 + 1e-9))
    mono = (0.25 * tone * env).astype(np.float32)
    rng = np.random.default_rng(seed)
    mono += (rng.standard_normal(n) * 0.003).astype(np.float32)
    return np.repeat(mono[:, None], channels, axis=1)


def _sf_write(path: Path, data: np.ndarray, rate: int, subtype: str | None = None, fmt: str | None = None) -> Path:
    import soundfile

    soundfile.write(str(path), data, rate, subtype=subtype, format=fmt)
    return path


def _video(
    path: Path,
    *,
    frames: int = 5,
    size: tuple[int, int] = (64, 48),
    fps: int = 10,
    audio: bool = False,
    video: bool = True,
    rotation: int = 0,
    pts_ms: list[int] | None = None,
) -> Path:
    """A small H.264 (+ AAC) file written with PyAV; ``pts_ms`` gives frame times for a variable rate,
    ``rotation`` a display matrix (counter-clockwise degrees)."""
    import av

    w, h = size
    with av.open(str(path), "w") as out:
        vs = None
        if video:
            vs = out.add_stream("libx264", rate=fps)
            vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
            if pts_ms is not None:
                vs.codec_context.time_base = Fraction(1, 1000)
            if rotation:
                vs.set_display_rotation(rotation)
        aus = None
        if audio:
            aus = out.add_stream("aac", rate=48000)
            aus.layout = "mono"
        if vs is not None:
            for i in range(frames):
                frame = av.VideoFrame.from_ndarray(_sample_bgr(h, w, seed=i), format="bgr24")
                if pts_ms is not None:
                    frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
                else:
                    frame.pts = i
                out.mux(vs.encode(frame))
            out.mux(vs.encode(None))
        if aus is not None:
            seconds = max(0.5, frames / fps)
            sound = _speech_like(seconds, 48000)[:, 0]
            for k in range(0, len(sound), 1024):
                af = av.AudioFrame.from_ndarray(sound[None, k : k + 1024], format="flt", layout="mono")
                af.sample_rate, af.pts = 48000, k
                out.mux(aus.encode(af))
            out.mux(aus.encode(None))
    return path


class _ShellPayload:
    """Unpickling this runs ``echo`` into the marker file: proof that a pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., int], tuple[str]]:
        return (os.system, (f"echo corpus-payload > '{self.marker}'",))


def _half(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


# ---- the cases -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Spec:
    name: str
    kind: str
    file: str  # the path inside the corpus folder (may hold folders, unicode, spaces)
    accepts: frozenset[str]
    note: str
    build: Callable[[Path, _Shared], None]


class _Shared:
    """Things several builders need, made once per corpus."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.scratch = root / ".scratch"
        self.scratch.mkdir(parents=True, exist_ok=True)
        self._cache: dict[str, Path] = {}

    def once(self, key: str, make: Callable[[Path], Path]) -> Path:
        if key not in self._cache:
            self._cache[key] = make(self.scratch / key)
        return self._cache[key]

    def png(self) -> Path:
        return self.once("sample.png", lambda p: (_pil(_sample_bgr()).save(p), p)[1])

    def jpeg(self) -> Path:
        return self.once("sample.jpg", lambda p: (_pil(_sample_bgr()).save(p, quality=90), p)[1])

    def wav(self) -> Path:
        return self.once("sample.wav", lambda p: _sf_write(p, _speech_like(0.6, 16000), 16000, "PCM_16"))

    def mp3(self) -> Path:
        return self.once("sample.mp3", lambda p: _sf_write(p, _speech_like(0.6, 22050), 22050, fmt="MP3"))

    def mp4(self) -> Path:
        return self.once("sample.mp4", lambda p: _video(p, audio=True))

    def onnx(self) -> Path:
        from matting_fixtures import build_u2net_like

        return self.once("matting.onnx", lambda p: build_u2net_like(p, size=64))

    def rvc(self) -> Path:
        from svc_fixtures import make_rvc_checkpoint

        return self.once("rvc.pth", lambda p: make_rvc_checkpoint(p, version="v2"))

    def sovits(self) -> Path:
        """A so-vits-svc 4.1 folder (G_0.pth as released, without optimizer state, and config.json)."""
        from svc_fixtures import make_sovits_checkpoint

        def make(p: Path) -> Path:
            make_sovits_checkpoint(p, version="4.1", release=True)
            return p

        return self.once("sovits", make)

    def gguf(self) -> Path:
        from llm_fixtures import make_tiny_gemma3_gguf

        return self.once("tiny.gguf", lambda p: make_tiny_gemma3_gguf(p))

    def piper_json(self) -> Path:
        """The settings file of the Piper voice that ships with the studio."""
        from workers.assistant.tts import DEFAULT_VOICE_ID
        from workers.models.store import ModelStore

        def make(p: Path) -> Path:
            voice = Path(ModelStore(self.scratch / "store").path_of(DEFAULT_VOICE_ID))
            onnx = voice if voice.suffix == ".onnx" else next(voice.glob("*.onnx"))
            shutil.copyfile(f"{onnx}.json", p)
            return p

        return self.once("voice.onnx.json", make)


_SPECS: list[_Spec] = []


def _case(
    name: str, kind: str, file: str, accepts: set[str] | frozenset[str], note: str
) -> Callable[[Callable[[Path, _Shared], None]], Callable[[Path, _Shared], None]]:
    """Register a builder ``build(path, shared)`` as a corpus case."""

    def register(build: Callable[[Path, _Shared], None]) -> Callable[[Path, _Shared], None]:
        assert kind in KINDS and not any(s.name == name for s in _SPECS), name
        _SPECS.append(_Spec(name, kind, file, frozenset(accepts), note, build))
        return build

    return register


def _bytes(data: bytes) -> Callable[[Path, _Shared], None]:
    def build(path: Path, _shared: _Shared) -> None:
        path.write_bytes(data)

    return build


def _copy(source: Callable[[_Shared], Path]) -> Callable[[Path, _Shared], None]:
    def build(path: Path, shared: _Shared) -> None:
        shutil.copyfile(source(shared), path)

    return build


def _halved(source: Callable[[_Shared], Path]) -> Callable[[Path, _Shared], None]:
    def build(path: Path, shared: _Shared) -> None:
        _half(source(shared), path)

    return build


def _register(
    name: str, kind: str, file: str, accepts: set[str], note: str, build: Callable[[Path, _Shared], None]
) -> None:
    _case(name, kind, file, accepts, note)(build)


TEXT = b"This is a plain text file, not what its name says.\n"
PICTURE = {IMAGE}
SOUND_FILE = {AUDIO, SOUND}

# ---- images ----
_register("img-zero", "image", "img-zero.png", set(), "a zero-byte PNG", _bytes(b""))
_register("img-truncated-png", "image", "img-truncated.png", set(), "the first half of a PNG",
          _halved(lambda s: s.png()))
_register("img-truncated-jpg", "image", "img-truncated.jpg", set(), "the first half of a JPEG",
          _halved(lambda s: s.jpeg()))
_register("img-text", "image", "img-text.png", set(), "a text file named .png", _bytes(TEXT))
_register("img-wav", "image", "img-sound.jpg", SOUND_FILE, "a WAV file named .jpg", _copy(lambda s: s.wav()))
_register("img-png-named-jpg", "image", "img-png-named.jpg", PICTURE, "a PNG named .jpg", _copy(lambda s: s.png()))
_register("img-magic-only", "image", "img-magic-only.png", set(), "just the PNG signature",
          _bytes(b"\x89PNG\r\n\x1a\n"))


@_case("img-bad-crc", "image", "img-bad-crc.png", set(), "a PNG whose image data fails its checksum")
def _bad_crc(path: Path, shared: _Shared) -> None:
    data = bytearray(shared.png().read_bytes())
    at = data.find(b"IDAT") + 8
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


@_case("img-zero-size", "image", "img-zero-size.png", set(), "a PNG header saying 0x0 pixels")
def _zero_size(path: Path, _shared: _Shared) -> None:
    ihdr = struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"")
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")
    )


_register("img-1x1", "image", "img-1x1.png", PICTURE, "a single pixel",
          lambda p, s: _pil(np.full((1, 1, 3), 200, np.uint8)).save(p))
_register("img-strip", "image", "img-strip.png", PICTURE, "a 3000x1 strip",
          lambda p, s: _pil(np.full((1, 3000, 3), 120, np.uint8)).save(p))
_register("img-bomb", "image", "img-bomb-20000.png", set(), "a 20000x20000 PNG in a few kilobytes",
          lambda p, s: bomb_png(p) and None)
_register("img-cmyk", "image", "img-cmyk.jpg", PICTURE, "a CMYK JPEG",
          lambda p, s: _pil(_sample_bgr()).convert("CMYK").save(p, quality=90))


@_case("img-16bit", "image", "img-16bit.png", PICTURE, "a 16-bit RGB PNG")
def _png16(path: Path, _shared: _Shared) -> None:
    import cv2

    cv2.imwrite(str(path), _sample_bgr().astype(np.uint16) * 257)


@_case("img-16bit-grey", "image", "img-16bit-grey.png", PICTURE, "a 16-bit greyscale PNG")
def _png16g(path: Path, _shared: _Shared) -> None:
    from PIL import Image

    grey = (_sample_bgr()[..., 1].astype(np.uint16) * 257).astype(np.uint16)
    Image.fromarray(grey).save(path)


@_case("img-palette", "image", "img-palette.png", PICTURE, "a palette PNG with a transparent colour")
def _palette(path: Path, _shared: _Shared) -> None:
    img = _pil(_sample_bgr()).convert("P", palette=1, colors=16)  # adaptive palette
    img.info["transparency"] = 0
    img.save(path, transparency=0)


_register("img-grey-alpha", "image", "img-grey-alpha.png", PICTURE, "greyscale with alpha (LA)",
          lambda p, s: _pil(_sample_bgr()).convert("LA").save(p))
_register("img-rgba", "image", "img-rgba.png", PICTURE, "RGBA with a transparent half",
          lambda p, s: _rgba(p))
_register("img-1bit", "image", "img-1bit.png", PICTURE, "a 1-bit black-and-white PNG",
          lambda p, s: _pil(_sample_bgr()).convert("1").save(p))


def _rgba(path: Path) -> None:
    img = _pil(_sample_bgr()).convert("RGBA")
    arr = np.asarray(img).copy()
    arr[:, : arr.shape[1] // 2, 3] = 0
    from PIL import Image

    Image.fromarray(arr, "RGBA").save(path)


@_case("img-gif-animated", "image", "img-animated.gif", PICTURE, "an animated GIF (3 frames)")
def _gif(path: Path, _shared: _Shared) -> None:
    frames = [_pil(_sample_bgr(seed=i)).convert("P") for i in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)


@_case("img-tiff-pages", "image", "img-pages.tif", PICTURE, "a TIFF with three pages")
def _tiff(path: Path, _shared: _Shared) -> None:
    pages = [_pil(_sample_bgr(seed=i)) for i in range(3)]
    pages[0].save(path, save_all=True, append_images=pages[1:])


@_case("img-float-tiff", "image", "img-float.tif", PICTURE, "a 32-bit float greyscale TIFF")
def _ftiff(path: Path, _shared: _Shared) -> None:
    from PIL import Image

    Image.fromarray(_sample_bgr()[..., 0].astype(np.float32) / 255.0, mode="F").save(path)


@_case("img-exif-rotated", "image", "img-exif-rotated.jpg", PICTURE, "a JPEG with EXIF orientation 6")
def _exif(path: Path, _shared: _Shared) -> None:
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6
    _pil(_sample_bgr()).save(path, exif=exif.tobytes(), quality=90)


@_case("img-trailing-junk", "image", "img-trailing-junk.png", PICTURE, "a PNG with junk after its end")
def _junk(path: Path, shared: _Shared) -> None:
    path.write_bytes(shared.png().read_bytes() + os.urandom(512))


_register("img-unicode", "image", "fotos ünïcødé/mein bild 写真 (1).png", PICTURE,
          "a fine image under a path with unicode and spaces", _copy(lambda s: s.png()))
_register("face-jpg", "image", "face.jpg", {IMAGE, FACE}, "a portrait with one clear face",
          lambda p, s: _pil(_face_bgr()).save(p, quality=92))
_register("face-cmyk", "image", "face-cmyk.jpg", {IMAGE, FACE}, "the portrait as a CMYK JPEG",
          lambda p, s: _pil(_face_bgr()).convert("CMYK").save(p, quality=92))


@_case("face-16bit", "image", "face-16bit.png", {IMAGE, FACE}, "the portrait as a 16-bit PNG")
def _face16(path: Path, _shared: _Shared) -> None:
    import cv2

    cv2.imwrite(str(path), _face_bgr().astype(np.uint16) * 257)


@_case("face-exif-rotated", "image", "face-exif-rotated.jpg", {IMAGE, FACE},
       "the portrait stored sideways with EXIF orientation 8")
def _face_exif(path: Path, _shared: _Shared) -> None:
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 8  # the viewer turns it 90° clockwise
    stored = np.ascontiguousarray(np.rot90(_face_bgr(), k=-1))  # turned the other way in the file
    _pil(stored).save(path, exif=exif.tobytes(), quality=92)


# ---- sounds ----
_register("aud-zero", "audio", "aud-zero.wav", set(), "a zero-byte WAV", _bytes(b""))
_register("aud-truncated-header", "audio", "aud-truncated-header.wav", set(), "the first 20 bytes of a WAV",
          lambda p, s: p.write_bytes(s.wav().read_bytes()[:20]))
_register("aud-truncated", "audio", "aud-truncated.wav", SOUND_FILE, "a WAV cut in the middle of its data",
          _halved(lambda s: s.wav()))
_register("aud-truncated-mp3", "audio", "aud-truncated.mp3", SOUND_FILE, "an MP3 cut in the middle",
          _halved(lambda s: s.mp3()))
_register("aud-text", "audio", "aud-text.wav", set(), "a text file named .wav", _bytes(TEXT))
_register("aud-png", "audio", "aud-picture.flac", PICTURE, "a PNG named .flac", _copy(lambda s: s.png()))
_register("aud-mp3-named-wav", "audio", "aud-mp3-named.wav", SOUND_FILE, "an MP3 named .wav",
          _copy(lambda s: s.mp3()))
_register("aud-header-only", "audio", "aud-header-only.wav", set(), "a WAV header with no samples",
          lambda p, s: _sf_write(p, np.zeros((0, 1), np.float32), 16000, "PCM_16") and None)
_register("aud-silent", "audio", "aud-silent.wav", SOUND_FILE, "one second of digital silence",
          lambda p, s: _sf_write(p, np.zeros((16000, 1), np.float32), 16000, "PCM_16") and None)
_register("aud-clipped", "audio", "aud-clipped.wav", SOUND_FILE, "a square wave at full scale",
          lambda p, s: _sf_write(p, np.sign(np.sin(np.arange(16000) / 16000 * 2 * np.pi * 200))[:, None]
                                 .astype(np.float32), 16000, "PCM_16") and None)


@_case("aud-nan", "audio", "aud-nan.wav", SOUND_FILE, "a float WAV with NaN, infinite and huge samples")
def _nan(path: Path, _shared: _Shared) -> None:
    data = _speech_like(0.5, 16000)
    data[100:200] = np.nan
    data[300] = np.inf
    data[301] = -np.inf
    data[400:410] = 1e30
    _sf_write(path, data, 16000, "FLOAT")


_register("aud-8k-mono", "audio", "aud-8k-mono.wav", SOUND_FILE, "8 kHz mono",
          lambda p, s: _sf_write(p, _speech_like(0.6, 8000), 8000, "PCM_16") and None)
_register("aud-96k-6ch", "audio", "aud-96k-6ch.wav", SOUND_FILE, "96 kHz, six channels",
          lambda p, s: _sf_write(p, _speech_like(0.4, 96000, channels=6), 96000, "PCM_16") and None)
_register("aud-10ms", "audio", "aud-10ms.wav", SOUND_FILE, "a 0.01 s clip",
          lambda p, s: _sf_write(p, _speech_like(0.01, 48000), 48000, "PCM_16") and None)
_register("aud-one-sample", "audio", "aud-one-sample.wav", SOUND_FILE, "a single sample",
          lambda p, s: _sf_write(p, np.full((1, 1), 0.5, np.float32), 16000, "PCM_16") and None)
_register("aud-24bit", "audio", "aud-24bit.wav", SOUND_FILE, "24-bit PCM",
          lambda p, s: _sf_write(p, _speech_like(0.6, 44100), 44100, "PCM_24") and None)
_register("aud-u8", "audio", "aud-u8.wav", SOUND_FILE, "8-bit unsigned PCM",
          lambda p, s: _sf_write(p, _speech_like(0.6, 11025), 11025, "PCM_U8") and None)
_register("aud-mp3", "audio", "aud.mp3", SOUND_FILE, "MP3", _copy(lambda s: s.mp3()))
_register("aud-ogg", "audio", "aud.ogg", SOUND_FILE, "Ogg Vorbis",
          lambda p, s: _sf_write(p, _speech_like(0.6, 24000, channels=2), 24000, fmt="OGG") and None)
_register("aud-flac", "audio", "aud.flac", SOUND_FILE, "FLAC, 32 kHz stereo",
          lambda p, s: _sf_write(p, _speech_like(0.6, 32000, channels=2), 32000, "PCM_16") and None)
_register("aud-unicode", "audio", "töne ünïcødé/aufnahme 声 1.wav", SOUND_FILE,
          "a fine WAV under a path with unicode and spaces", _copy(lambda s: s.wav()))

# ---- videos ----
_register("vid-zero", "video", "vid-zero.mp4", set(), "a zero-byte MP4", _bytes(b""))
_register("vid-truncated", "video", "vid-truncated.mp4", set(), "the first half of an MP4 (no index)",
          _halved(lambda s: s.mp4()))
_register("vid-text", "video", "vid-text.mp4", set(), "a text file named .mp4", _bytes(TEXT))
_register("vid-with-audio", "video", "vid-with-audio.mp4", {VIDEO, SOUND}, "5 frames with a sound track",
          _copy(lambda s: s.mp4()))
_register("vid-no-audio", "video", "vid-no-audio.mp4", {VIDEO}, "5 frames, no sound track",
          lambda p, s: _video(p) and None)
_register("vid-vfr", "video", "vid-vfr.mp4", {VIDEO, SOUND}, "a variable frame rate with sound",
          lambda p, s: _video(p, frames=6, audio=True, pts_ms=[0, 40, 200, 230, 600, 610]) and None)
_register("vid-rotated", "video", "vid-rotated.mp4", {VIDEO}, "a stream with a 90° display matrix",
          lambda p, s: _video(p, rotation=90) and None)
_register("vid-one-frame", "video", "vid-one-frame.mp4", {VIDEO}, "a single frame",
          lambda p, s: _video(p, frames=1) and None)
@_case("vid-zero-frames", "video", "vid-zero-frames.mp4", set(), "an MP4 with a video track but no samples")
def _no_samples(path: Path, _shared: _Shared) -> None:
    import av

    out = av.open(str(path), "w")
    vs = out.add_stream("libx264", rate=10)
    vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
    out.start_encoding()
    out.close()


@_case("vid-undecodable", "video", "vid-undecodable.mp4", set(), "an MP4 whose frame data is zeroed")
def _undecodable(path: Path, shared: _Shared) -> None:
    data = bytearray(_video(shared.scratch / "plain.mp4", audio=False).read_bytes())
    at = data.find(b"mdat")
    size = struct.unpack(">I", data[at - 4 : at])[0]
    data[at + 4 : at - 4 + size] = bytes(size - 8)
    path.write_bytes(bytes(data))
_register("vid-audio-only", "video", "vid-audio-only.mp4", {SOUND}, "an MP4 with only a sound track",
          lambda p, s: _video(p, video=False, audio=True) and None)
_register("vid-png-named-mp4", "video", "vid-picture.mp4", {IMAGE}, "a PNG named .mp4", _copy(lambda s: s.png()))

# ---- models ----
_register("mdl-empty-onnx", "model", "mdl-empty.onnx", set(), "a zero-byte .onnx", _bytes(b""))
_register("mdl-empty-pth", "model", "mdl-empty.pth", set(), "a zero-byte .pth", _bytes(b""))
_register("mdl-empty-gguf", "model", "mdl-empty.gguf", set(), "a zero-byte .gguf", _bytes(b""))
_register("mdl-truncated-onnx", "model", "mdl-truncated.onnx", {IMPORT}, "the first half of an ONNX model",
          _halved(lambda s: s.onnx()))
_register("mdl-truncated-pth", "model", "mdl-truncated.pth", {IMPORT}, "the first half of an RVC model",
          _halved(lambda s: s.rvc()))
_register("mdl-truncated-gguf", "model", "mdl-truncated.gguf", {IMPORT}, "the first half of a GGUF model",
          _halved(lambda s: s.gguf()))
_register("mdl-image-onnx", "model", "mdl-picture.onnx", PICTURE, "a PNG renamed .onnx", _copy(lambda s: s.png()))
_register("mdl-image-pth", "model", "mdl-picture.pth", PICTURE, "a JPEG renamed .pth", _copy(lambda s: s.jpeg()))
_register("mdl-text-gguf", "model", "mdl-text.gguf", set(), "a text file named .gguf", _bytes(TEXT))
_register("mdl-text-onnx", "model", "mdl-text.onnx", set(), "a text file named .onnx", _bytes(TEXT))


@_case("mdl-pickle-code", "model", "mdl-pickle-code.pth", set(), "a plain pickle that would run a shell command")
def _pickle_code(path: Path, shared: _Shared) -> None:
    path.write_bytes(pickle.dumps({"weight": _ShellPayload(shared.root / PICKLE_MARKER)}, protocol=2))


@_case("mdl-pickle-code-zip", "model", "G_100.pth", set(),
       "a torch zip checkpoint whose pickle would run a shell command")
def _pickle_zip(path: Path, shared: _Shared) -> None:
    import torch

    torch.save({"model": _ShellPayload(shared.root / PICKLE_MARKER), "iteration": 1}, path)


@_case("mdl-matting-wrong-shape", "model", "mdl-classifier.onnx", {IMPORT},
       "a valid ONNX model that is not a matting model (1x3x32x32 in, 1x10 out)")
def _classifier(path: Path, _shared: _Shared) -> None:
    import onnx
    from onnx import TensorProto, helper

    weight = np.full((10, 3 * 32 * 32), 0.001, np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["input"], ["flat"]),
            helper.make_node("Gemm", ["flat", "w"], ["scores"], transB=1),
        ],
        "classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 10])],
        initializer=[helper.make_tensor("w", TensorProto.FLOAT, weight.shape, weight.flatten())],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


_register("mdl-matting", "model", "mdl-matting.onnx", {MATTING_MODEL, IMPORT}, "a small U²-Net-shaped matting model",
          _copy(lambda s: s.onnx()))
_register("mdl-rvc", "model", "mdl-rvc-v2.pth", {SVC_MODEL, IMPORT}, "a small RVC v2 voice model",
          _copy(lambda s: s.rvc()))


@_case("mdl-sovits-folder", "model", "mdl-sovits", {SVC_MODEL, IMPORT}, "a so-vits-svc 4.1 folder")
def _sovits_folder(path: Path, shared: _Shared) -> None:
    shutil.copytree(shared.sovits(), path)


@_case("mdl-damaged-zip", "model", "mdl-damaged-zip.pth", set(),
       "a torch zip checkpoint whose first member's local header is damaged")
def _damaged_zip(path: Path, shared: _Shared) -> None:
    data = bytearray(shared.rvc().read_bytes())
    assert data[:4] == b"PK\x03\x04"
    data[26] = 6  # the length of the first member's name: the header no longer matches the directory
    path.write_bytes(bytes(data))


@_case("mdl-zip-short-member", "model", "mdl-zip-short-member.pth", set(),
       "a zip checkpoint whose directory says its pickle runs past the end of the file")
def _short_member(path: Path, _shared: _Shared) -> None:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"weight": {}}, protocol=2))
    data = bytearray(buf.getvalue())
    at = data.rfind(b"PK\x01\x02")  # the central directory entry: compressed and full size
    data[at + 20 : at + 28] = struct.pack("<II", 5000, 5000)
    path.write_bytes(bytes(data))


@_case("mdl-rvc-nan", "model", "mdl-rvc-nan.pth", {IMPORT}, "an RVC model whose weights hold NaN")
def _rvc_nan(path: Path, shared: _Shared) -> None:
    import torch

    obj = torch.load(shared.rvc(), map_location="cpu", weights_only=True)
    key = next(iter(obj["weight"]))
    obj["weight"][key] = torch.full_like(obj["weight"][key], float("nan"))
    torch.save(obj, path)


@_case("mdl-tensor-list", "model", "mdl-tensor-list.pth", {IMPORT}, "a weights-only checkpoint that holds a list")
def _tensor_list(path: Path, _shared: _Shared) -> None:
    import torch

    torch.save([torch.zeros(3), torch.ones(2)], path)


@_case("mdl-sovits-config-as-pth", "model", "mdl-config.pth", {SVC_CONFIG}, "a so-vits-svc config.json renamed .pth")
def _config_pth(path: Path, shared: _Shared) -> None:
    shutil.copyfile(shared.sovits() / "config.json", path)


@_case("mdl-gguf-huge-count", "model", "mdl-huge-count.gguf", {IMPORT},
       "a GGUF header that claims 2^62 tensors and metadata entries")
def _gguf_huge(path: Path, _shared: _Shared) -> None:
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 2**62, 2**62) + b"\x00" * 64)


@_case("mdl-gguf-deep-array", "model", "mdl-deep-array.gguf", {IMPORT},
       "a GGUF whose metadata nests arrays 20000 deep")
def _gguf_deep(path: Path, _shared: _Shared) -> None:
    key = b"general.deep"
    out = io.BytesIO()
    out.write(b"GGUF" + struct.pack("<IQQ", 3, 0, 1))
    out.write(struct.pack("<Q", len(key)) + key + struct.pack("<I", 9))  # type 9: array
    for _ in range(20000):
        out.write(struct.pack("<IQ", 9, 1))  # an array of one array...
    out.write(struct.pack("<IQ", 4, 0))  # ... of no uint32
    path.write_bytes(out.getvalue())


@_case("mdl-gguf-bad-alignment", "model", "mdl-bad-alignment.gguf", {IMPORT},
       "a GGUF whose general.alignment is a string")
def _gguf_alignment(path: Path, _shared: _Shared) -> None:
    key, value = b"general.alignment", b"thirty-two"
    path.write_bytes(
        b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key + struct.pack("<I", 8)
        + struct.pack("<Q", len(value)) + value
    )


@_case("mdl-piper-no-json", "model", "mdl-voice-alone.onnx", {IMPORT, MATTING_MODEL},
       "an ONNX voice without its .onnx.json")
def _piper_alone(path: Path, shared: _Shared) -> None:
    shutil.copyfile(shared.onnx(), path)


@_case("mdl-piper-wrong-model", "model", "mdl-not-a-voice.onnx", {IMPORT, MATTING_MODEL},
       "a matting model with a Piper voice's .onnx.json next to it")
def _piper_wrong(path: Path, shared: _Shared) -> None:
    shutil.copyfile(shared.onnx(), path)
    shutil.copyfile(shared.piper_json(), f"{path}.json")


@_case("mdl-piper-bad-json", "model", "mdl-voice-bad-json.onnx", {IMPORT, MATTING_MODEL},
       "an ONNX voice whose .onnx.json is not JSON")
def _piper_bad_json(path: Path, shared: _Shared) -> None:
    shutil.copyfile(shared.onnx(), path)
    Path(f"{path}.json").write_text('{"audio": {"sample_rate": 22050,', encoding="utf-8")


@_case("mdl-whisper-broken", "model", "mdl-whisper-broken", {IMPORT},
       "a Whisper folder with config.json and tokenizer.json but a damaged model.bin")
def _whisper_broken(path: Path, _shared: _Shared) -> None:
    path.mkdir()
    (path / "config.json").write_text("{}", encoding="utf-8")
    (path / "tokenizer.json").write_text("{}", encoding="utf-8")
    (path / "model.bin").write_bytes(struct.pack("<I", 6) + os.urandom(2000))


@_case("mdl-whisper-no-tokenizer", "model", "mdl-whisper-no-tokenizer", {IMPORT},
       "a Whisper folder without tokenizer files")
def _whisper_no_tok(path: Path, _shared: _Shared) -> None:
    path.mkdir()
    (path / "config.json").write_text("{}", encoding="utf-8")
    (path / "model.bin").write_bytes(struct.pack("<I", 6) + b"\x00" * 100)


@_case("mdl-llm-broken", "model", "mdl-llm-broken", {IMPORT},
       "a transformers folder whose weights are not safetensors")
def _llm_broken(path: Path, _shared: _Shared) -> None:
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"model_type": "llama", "vocab_size": 10}), encoding="utf-8")
    (path / "tokenizer.json").write_text("{}", encoding="utf-8")
    (path / "model.safetensors").write_bytes(struct.pack("<Q", 20) + b'{"broken": [1, 2' + b"\x00" * 100)


@_case("mdl-llm-no-type", "model", "mdl-llm-no-type", {IMPORT}, "a folder whose config.json names no model type")
def _llm_no_type(path: Path, _shared: _Shared) -> None:
    path.mkdir()
    (path / "config.json").write_text("[1, 2, 3]", encoding="utf-8")
    (path / "model.safetensors").write_bytes(struct.pack("<Q", 2) + b"{}")


_register("mdl-gguf-renamed-bin", "model", "mdl-gguf.bin", {LLM_MODEL}, "a GGUF model renamed .bin",
          _copy(lambda s: s.gguf()))


@_case("idx-valid", "model", "idx-valid.index", {SVC_INDEX}, "a faiss index of 768-d features")
def _index_valid(path: Path, _shared: _Shared) -> None:
    import faiss

    index = faiss.IndexFlatL2(768)
    index.add(np.random.default_rng(0).standard_normal((64, 768)).astype(np.float32))
    faiss.write_index(index, str(path))


@_case("idx-wrong-dim", "model", "idx-wrong-dim.index", set(), "a faiss index of 10-d features")
def _index_dim(path: Path, _shared: _Shared) -> None:
    import faiss

    index = faiss.IndexFlatL2(10)
    index.add(np.random.default_rng(0).standard_normal((8, 10)).astype(np.float32))
    faiss.write_index(index, str(path))


@_case("idx-empty-index", "model", "idx-no-vectors.index", {VIDEO},
       "a faiss index with no vectors (FFmpeg takes these 45 bytes for CD+G karaoke graphics)")
def _index_empty(path: Path, _shared: _Shared) -> None:
    import faiss

    faiss.write_index(faiss.IndexFlatL2(768), str(path))


@_case("idx-truncated", "model", "idx-truncated.index", set(), "the first half of a faiss index")
def _index_truncated(path: Path, shared: _Shared) -> None:
    import faiss

    full = shared.scratch / "full.index"
    index = faiss.IndexFlatL2(768)
    index.add(np.random.default_rng(1).standard_normal((32, 768)).astype(np.float32))
    faiss.write_index(index, str(full))
    _half(full, path)


_register("idx-garbage", "model", "idx-garbage.index", set(), "random bytes named .index",
          lambda p, s: p.write_bytes(np.random.default_rng(3).bytes(4096)))

# ---- so-vits-svc configs (for --config) ----
_register("cfg-good", "model", "cfg-good/config.json", {SVC_CONFIG}, "the config of the corpus's so-vits model",
          _copy(lambda s: s.sovits() / "config.json"))
_register("cfg-broken-json", "model", "cfg-broken.json", set(), "a config.json cut short",
          lambda p, s: p.write_text('{"model": {"ssl_dim": 768,', encoding="utf-8"))
_register("cfg-no-sections", "model", "cfg-no-sections.json", set(), "JSON without model and data sections",
          lambda p, s: p.write_text('{"train": {}}', encoding="utf-8"))


@_case("cfg-mismatch", "model", "cfg-mismatch.json", set(), "a so-vits config of another model size")
def _cfg_mismatch(path: Path, shared: _Shared) -> None:
    data = json.loads((shared.sovits() / "config.json").read_text(encoding="utf-8"))
    data["model"]["hidden_channels"] = 48
    data["model"]["filter_channels"] = 96
    path.write_text(json.dumps(data), encoding="utf-8")


@_case("cfg-wrong-types", "model", "cfg-wrong-types.json", set(), "a so-vits config with text where numbers go")
def _cfg_types(path: Path, shared: _Shared) -> None:
    data = json.loads((shared.sovits() / "config.json").read_text(encoding="utf-8"))
    data["model"]["hidden_channels"] = "lots"
    data["data"]["sampling_rate"] = [44100]
    path.write_text(json.dumps(data), encoding="utf-8")


@_case("cfg-rvc-list", "model", "cfg-rvc.json", set(), "an RVC-style config list where a so-vits config goes")
def _cfg_rvc(path: Path, _shared: _Shared) -> None:
    from svc_fixtures import rvc_config

    path.write_text(json.dumps(rvc_config("40k")), encoding="utf-8")


# ---- text and paths ----
_register("txt-plain", "text", "notes.txt", set(), "a plain text file", _bytes(TEXT))
_register("txt-binary", "text", "random.bin", set(), "4 KB of random bytes",
          lambda p, s: p.write_bytes(np.random.default_rng(4).bytes(4096)))
_register("path-folder", "path", "folder.png", set(), "an empty folder named like an image",
          lambda p, s: p.mkdir())
_register("path-folder-images", "path", "a folder of images", {IMAGE_FOLDER},
          "a folder that holds an image (where a file is expected)",
          lambda p, s: _folder_with_image(p, s))


def _folder_with_image(path: Path, shared: _Shared) -> None:
    path.mkdir()
    shutil.copyfile(shared.png(), path / "inside.png")

_register("path-missing", "path", "does-not-exist/missing.wav", set(), "a path that does not exist",
          lambda p, s: p.parent.rmdir())

# ---- conversations (the assistant's Load) ----
_GOOD_CONVERSATION = {
    "format": "snowai-conversation",
    "version": 1,
    "created": "2024-05-01T10:00:00+00:00",
    "system_prompt": "Be brief.",
    "turns": [
        {"id": 1, "user": "Hello?", "assistant": "Hi there.", "interrupted": False, "source": "text",
         "timings": {"first_token_ms": 120.0}, "created": "2024-05-01T10:00:01+00:00"},
    ],
}


def _json_case(name: str, file: str, accepts: set[str], note: str, value: object) -> None:
    text = value if isinstance(value, str) else json.dumps(value)
    _register(name, "conversation", file, accepts, note, lambda p, s: p.write_text(text, encoding="utf-8") and None)


_json_case("conv-good-json", "conv-good.json", {CONVERSATION}, "a saved conversation", _GOOD_CONVERSATION)
_register("conv-good-md", "conversation", "conv-good.md", {CONVERSATION}, "a saved conversation in Markdown",
          lambda p, s: _markdown(p))
_register("conv-empty", "conversation", "conv-empty.json", set(), "a zero-byte .json", _bytes(b""))
_json_case("conv-truncated", "conv-truncated.json", set(), "a conversation cut short",
           json.dumps(_GOOD_CONVERSATION)[:60])
_json_case("conv-list", "conv-list.json", set(), "a JSON list", [1, 2, 3])
_json_case("conv-null", "conv-null.json", set(), "JSON null", "null")
_json_case("conv-other-format", "conv-other.json", set(), "another program's JSON",
           {"format": "chat-export", "turns": []})
_json_case("conv-turn-types", "conv-turn-types.json", set(), "a turn whose text is a number",
           {**_GOOD_CONVERSATION, "turns": [{"id": 1, "user": 42, "assistant": None}]})
_json_case("conv-huge-numbers", "conv-huge-numbers.json", {CONVERSATION},
           "a turn id of 1e400 and a timing of 10^400",
           '{"turns": [{"id": 1e400, "user": "a", "assistant": "b", "timings": {"x": '
           + "1" + "0" * 400 + "}}]}")
_json_case("conv-deep", "conv-deep.json", set(), "JSON nested 100000 deep",
           '{"turns": ' + "[" * 100000 + "]" * 100000 + "}")
_register("conv-bom", "conversation", "conv-bom.json", {CONVERSATION}, "a conversation with a UTF-8 byte order mark",
          lambda p, s: p.write_bytes(b"\xef\xbb\xbf" + json.dumps(_GOOD_CONVERSATION).encode()))
_register("conv-latin1", "conversation", "conv-latin1.md", set(), "Markdown in Latin-1, not UTF-8",
          lambda p, s: p.write_bytes("## Turn 1\n\n**User:**\n\nGrüße aus Köln\n".encode("latin-1")))
_register("conv-md-no-turns", "conversation", "conv-no-turns.md", set(), "Markdown without turns",
          lambda p, s: p.write_text("# Shopping list\n\n- milk\n- bread\n", encoding="utf-8") and None)
_register("conv-md-no-user", "conversation", "conv-no-user.md", set(), "a Markdown turn without its User part",
          lambda p, s: p.write_text("## Turn 1\n\n**Assistant:**\n\nHello.\n", encoding="utf-8") and None)


@_case("conv-md-bad-meta", "conversation", "conv-bad-meta.md", {CONVERSATION},
       "a Markdown turn whose details comment holds odd JSON")
def _md_bad_meta(path: Path, _shared: _Shared) -> None:
    deep = "[" * 50000 + "]" * 50000
    path.write_text(
        f"## Turn 1\n\n<!-- turn {deep} -->\n\n**User:**\n\nHi\n\n**Assistant:**\n\nHello.\n\n"
        '## Turn 2\n\n<!-- turn {"id": 1e999, "timings": {"a": 1e999}} -->\n\n**User:**\n\nAgain\n',
        encoding="utf-8",
    )


_register("conv-image", "conversation", "conv-picture.json", PICTURE, "a PNG named .json", _copy(lambda s: s.png()))


def _markdown(path: Path) -> None:
    from workers.assistant.conversation import Conversation

    path.write_text(Conversation.from_json(json.dumps(_GOOD_CONVERSATION)).to_markdown(), encoding="utf-8")


#: The names of every case, in order (fixed at import, for test parametrisation).
CASE_NAMES: tuple[str, ...] = tuple(s.name for s in _SPECS)


def build_corpus(folder: str | os.PathLike[str]) -> list[Case]:
    """Write every case into ``folder`` and return them (about 2 MB, a few seconds)."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    shared = _Shared(root)
    cases = []
    for spec in _SPECS:
        path = root / spec.file
        path.parent.mkdir(parents=True, exist_ok=True)
        spec.build(path, shared)
        cases.append(Case(spec.name, spec.kind, path, spec.accepts, spec.note))
    shutil.rmtree(shared.scratch, ignore_errors=True)
    return cases


_BUILT: dict[str, Any] = {}


def corpus_cases() -> dict[str, Case]:
    """The corpus, built once per test session in a temporary folder: case name -> case."""
    if "cases" not in _BUILT:
        folder = Path(tempfile.mkdtemp(prefix="snowai-corpus-"))
        atexit.register(shutil.rmtree, folder, True)
        _BUILT["cases"] = {c.name: c for c in build_corpus(folder)}
        _BUILT["root"] = folder
    return dict(_BUILT["cases"])


def corpus_root() -> Path:
    """The folder the session's corpus lives in."""
    corpus_cases()
    return Path(_BUILT["root"])


def fingerprint(path: Path) -> tuple[object, ...]:
    """What a case's file or folder is now (to prove that a reader left it untouched)."""
    import hashlib

    if not path.exists():
        return ("missing",)
    if path.is_dir():
        return ("dir", tuple(sorted((p.relative_to(path).as_posix(), fingerprint(p)) for p in path.iterdir())))
    st = path.stat()
    return ("file", st.st_size, st.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())


def counts() -> dict[str, int]:
    """How many cases there are of each kind."""
    out: dict[str, int] = {}
    for spec in _SPECS:
        out[spec.kind] = out.get(spec.kind, 0) + 1
    return out
