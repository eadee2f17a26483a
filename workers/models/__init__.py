"""The model manager: a manifest of known models, the local store, verified downloads.

- :mod:`workers.models.manifest`: ``resources/models.toml`` loaded and validated;
- :mod:`workers.models.store`: :class:`ModelStore`, status, paths, verify, import, remove;
- :mod:`workers.models.download`: resumable, checksum-verified downloads (only on request);
- :mod:`workers.models.shipped`: models that ship inside installed Python packages;
- :mod:`workers.models.cli`: the ``models`` command line;
- :mod:`workers.models.worker`: the Qt worker (the only module here that imports Qt).

Importing this package touches neither Qt nor the network.
"""

from workers.models.manifest import Manifest, ManifestError, Model, ModelFile, Source, load_manifest
from workers.models.store import ModelState, ModelStore, Status, VerifyReport

__all__ = [
    "Manifest",
    "ManifestError",
    "Model",
    "ModelFile",
    "ModelState",
    "ModelStore",
    "Source",
    "Status",
    "VerifyReport",
    "load_manifest",
]
