"""Camera and audio sources and sinks, their file-backed fakes, and device discovery.

Everything here except :mod:`workers.media.worker` is plain Python (no Qt): a source can be read
from a test, the CLI or a Qt worker alike.
"""

from workers.media.audio import (
    AudioDevice,
    AudioInput,
    AudioOutput,
    AudioSink,
    AudioSource,
    AudioStatus,
    audio_status,
    list_input_devices,
    list_output_devices,
    rms_dbfs,
    test_tone,
)
from workers.media.camera import TEST_PATTERN, CameraSource, FrameInfo, FrameSource, make_frame_source
from workers.media.devices import CameraDevice, DeviceReport, devices_summary, list_cameras, scan_devices
from workers.media.fakes import (
    ArrayMicrophone,
    FailingCamera,
    FailingMicrophone,
    GeneratedCamera,
    MemorySink,
    StallingCamera,
    StallingMicrophone,
    VideoFileCamera,
    WavMicrophone,
    WavSink,
)
from workers.media.microphone import FileMicrophone, make_microphone, microphone_available
from workers.media.watch import DeviceStalled, WatchedSource

__all__ = [
    "TEST_PATTERN",
    "ArrayMicrophone",
    "AudioDevice",
    "AudioInput",
    "AudioOutput",
    "AudioSink",
    "AudioSource",
    "AudioStatus",
    "CameraDevice",
    "CameraSource",
    "DeviceReport",
    "DeviceStalled",
    "FailingCamera",
    "FailingMicrophone",
    "FileMicrophone",
    "FrameInfo",
    "FrameSource",
    "GeneratedCamera",
    "MemorySink",
    "StallingCamera",
    "StallingMicrophone",
    "VideoFileCamera",
    "WatchedSource",
    "WavMicrophone",
    "WavSink",
    "audio_status",
    "devices_summary",
    "list_cameras",
    "list_input_devices",
    "list_output_devices",
    "make_frame_source",
    "make_microphone",
    "microphone_available",
    "rms_dbfs",
    "scan_devices",
    "test_tone",
]
