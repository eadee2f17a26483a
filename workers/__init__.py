"""Everything that runs off the UI thread: engines (no Qt), their Qt workers, media and models."""

import os as _os

# Offline by default, also inside third-party libraries (set before any of them loads; a value the user
# set wins): ONNX Runtime 1.29 and later collects usage telemetry on Linux and macOS, keeps a device id
# under ~/.cache and uploads it to Microsoft from time to time; the Hugging Face libraries look a model
# name up online when it is not a local folder. Model downloads the user asks for use the studio's own
# code (workers/models/download.py) and are not affected.
for _name, _value in (("ORT_DISABLE_TELEMETRY", "1"), ("HF_HUB_OFFLINE", "1"), ("HF_HUB_DISABLE_TELEMETRY", "1")):
    _os.environ.setdefault(_name, _value)
