"""The microphone a setting names: a sound device, or a sound file played like one.

``settings.devices.microphone`` holds a device name (None: the system default) or the path of a
sound file (WAV, FLAC, OGG...: anything soundfile reads), as the camera setting may hold a video
file. :func:`make_microphone` builds the source either way, unopened, for a worker to open on its
own thread; :func:`microphone_available` tells a page whether there is anything to listen to.

No Qt here.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path, PurePath
from types import TracebackType
from typing import Any, Self

import numpy as np

from workers.errors import UserError
from workers.media.audio import (
    AudioDevice,
    AudioInput,
    AudioSource,
    BlockClock,
    convert_channels,
    list_input_devices,
)
from workers.queues import StreamItem

log = logging.getLogger(__name__)

#: The suffixes the Devices dialog offers for a sound file used as the microphone.
SOUND_FILE_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".caf", ".w64")
SOUND_FILE_FILTER = "Sound files (" + " ".join(f"*{s}" for s in SOUND_FILE_SUFFIXES) + ");;All files (*)"
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,5}$")
#: Source frames decoded at a time.
_CHUNK = 4096


def is_sound_file_choice(choice: str | None) -> bool:
    """Whether a microphone setting names a file rather than a device: a path (it has a folder
    separator) ending in a file suffix. Device names never look like that."""
    if not choice:
        return False
    text = choice.strip()
    return any(sep in text for sep in "/\\") and bool(_SUFFIX.search(PurePath(text).name))


def _unreadable(name: str) -> UserError:
    return UserError(
        f"{name} cannot be used as the microphone: it is not a sound file the studio can read "
        "(choose a WAV, FLAC or OGG file in Devices)."
    )


def check_sound_file(path: str | Path) -> tuple[int, int, float]:
    """(sample rate, channels, seconds) of a sound file, or a :class:`UserError` sentence saying why
    it cannot be played as the microphone (missing, a folder, empty, not sound, damaged)."""
    import soundfile

    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"The sound file {p.name} chosen as the microphone was not found; choose another in Devices.")
    if p.is_dir():
        raise UserError(f"{p.name} is a folder; choose a sound file (WAV, FLAC, OGG) as the microphone.")
    try:
        info = soundfile.info(str(p))
    except PermissionError:
        raise UserError(f"The sound file {p.name} cannot be opened: permission denied.") from None
    except (RuntimeError, OSError, ValueError, soundfile.LibsndfileError) as exc:
        log.info("%s is not readable sound: %s", p, exc)
        raise _unreadable(p.name) from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise UserError(f"The sound file {p.name} holds no sound; choose another as the microphone.")
    return int(info.samplerate), int(info.channels), float(info.frames) / float(info.samplerate)


class FileMicrophone:
    """A sound file played as a microphone, like a device: blocks of ``blocksize`` float32 frames at
    ``samplerate`` (the file's own rate when None, resampled otherwise), mixed down to ``channels``
    (mono by default), handed out at real-time pace and looped, so it never ends by itself.

    The file is decoded a little at a time (a long recording is not loaded whole). It is checked
    when opened; a missing, empty or damaged file is a :class:`UserError` sentence.
    """

    def __init__(
        self,
        path: str | Path,
        samplerate: int | None = None,
        blocksize: int = 1024,
        channels: int = 1,
        *,
        loop: bool = True,
        paced: bool = True,
    ) -> None:
        self.path = Path(path).expanduser()
        self.requested_samplerate = samplerate
        self.samplerate = int(samplerate or 0)
        self.blocksize = int(blocksize)
        self.channels = int(channels)
        self.loop = loop
        self.paced = paced
        self.source_rate = 0
        #: How many times the file started over.
        self.loops = 0
        self.open_count = 0
        self.close_count = 0
        self._file: Any = None
        self._resampler: Any = None
        self._pending = np.zeros((0, self.channels), np.float32)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._clock = BlockClock(self._closed)
        self._seq = 0
        self._eof = False
        self._ended = False

    @property
    def label(self) -> str:
        return f"the sound file {self.path.name}"

    @property
    def ended(self) -> bool:
        return self._ended

    def open(self) -> None:
        if self._file is not None:
            return
        import soundfile

        rate, _channels, _seconds = check_sound_file(self.path)
        try:
            handle = soundfile.SoundFile(str(self.path))
        except (RuntimeError, OSError, ValueError, soundfile.LibsndfileError):
            raise _unreadable(self.path.name) from None
        self.source_rate = rate
        self.samplerate = int(self.requested_samplerate or rate)
        self._resampler = None
        if self.samplerate != rate:
            import soxr

            self._resampler = soxr.ResampleStream(rate, self.samplerate, self.channels, dtype="float32")
        self._pending = np.zeros((0, self.channels), np.float32)
        self._seq = 0
        self._clock.reset()
        self._eof = self._ended = False
        self.loops = 0
        self._closed.clear()
        self._file = handle
        self.open_count += 1
        log.info(
            "Playing %s as the microphone at %d Hz (file at %d Hz), blocks of %d",
            self.path.name,
            self.samplerate,
            rate,
            self.blocksize,
        )

    def _decode(self) -> bool:
        """Decode one chunk into the pending frames; False at the end of a file that does not loop."""
        import soundfile

        try:
            raw = self._file.read(_CHUNK, dtype="float32", always_2d=True)
        except (RuntimeError, OSError, ValueError, soundfile.LibsndfileError) as exc:
            log.info("Reading %s failed: %s", self.path, exc)
            raise UserError(f"The sound file {self.path.name} stopped playing: it is damaged or truncated.") from None
        last = False
        if len(raw) == 0:
            if self.loop:
                self._file.seek(0)
                self.loops += 1
                raw = self._file.read(_CHUNK, dtype="float32", always_2d=True)
                if len(raw) == 0:
                    raise UserError(f"The sound file {self.path.name} holds no sound; choose another in Devices.")
            else:
                last = True
        mono = convert_channels(raw, self.channels) if len(raw) else np.zeros((0, self.channels), np.float32)
        if self._resampler is not None:
            mono = np.asarray(self._resampler.resample_chunk(mono, last=last), np.float32).reshape(-1, self.channels)
        if len(mono):
            self._pending = np.concatenate([self._pending, mono])
        return not last

    def read(self, timeout: float | None = None) -> StreamItem | None:
        if self._file is None:
            raise UserError(f"The sound file {self.path.name} is not open as the microphone.")
        if self._ended or self._closed.is_set():
            return None
        if self.paced and not self._clock.wait(self._seq, self.blocksize, self.samplerate, timeout):
            return None
        with self._lock:
            if self._file is None:
                return None
            while len(self._pending) < self.blocksize and not self._eof:
                self._eof = not self._decode()
            if len(self._pending) == 0:
                self._ended = True
                return None
            block = self._pending[: self.blocksize]
            self._pending = self._pending[self.blocksize :]
        if len(block) < self.blocksize:
            block = np.concatenate([block, np.zeros((self.blocksize - len(block), self.channels), np.float32)])
        item = StreamItem(np.array(block, np.float32), time.monotonic(), self._seq, {"source": self.path.name})
        self._seq += 1
        return item

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            handle, self._file = self._file, None
            if handle is None:
                return
            try:
                handle.close()
            except Exception as exc:  # closing a file must never fail the caller
                log.info("Closing %s failed: %s", self.path, exc)
            self._resampler = None
            self._pending = np.zeros((0, self.channels), np.float32)
            self.close_count += 1

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def make_microphone(
    choice: str | None, samplerate: int | None = None, blocksize: int = 1024, channels: int = 1
) -> AudioSource:
    """The microphone a setting names, unopened: a :class:`FileMicrophone` for a sound file, else an
    :class:`~workers.media.audio.AudioInput` for the device (None: the system default)."""
    if is_sound_file_choice(choice):
        assert choice is not None
        return FileMicrophone(choice.strip(), samplerate, blocksize, channels)
    return AudioInput(choice, samplerate, blocksize, channels=channels)


def microphone_available(choice: str | None, inputs: list[AudioDevice] | None = None) -> bool:
    """Whether there is a microphone to listen to: the chosen sound file exists, or (for a device
    choice) at least one capture device is present. ``inputs`` is a device list already scanned
    (:func:`~workers.media.audio.list_input_devices` is asked otherwise). Never raises."""
    if is_sound_file_choice(choice):
        assert choice is not None
        return Path(choice.strip()).expanduser().is_file()
    try:
        return bool(inputs if inputs is not None else list_input_devices())
    except Exception as exc:  # a broken sound system means: no microphone
        log.info("Listing microphones failed: %s", exc)
        return False
