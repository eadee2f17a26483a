"""The background-removal engine: rembg's models on onnxruntime with a fast numpy/OpenCV pipeline.

The engine opens each model with onnxruntime itself and does the pre- and post-processing on numpy
arrays in BGR order, without PIL round trips: one OpenCV resize straight to the model's input size,
rembg's normalisation (scaled by the image's own maximum, then mean/std) in float32, one ``run``,
and one OpenCV resize of the mask back to the image. The masks equal rembg's own
``remove(..., only_mask=True)`` on the same model up to resampling differences.

Alpha matting is the studio's own closed-form solver (:mod:`workers.matting.closed_form`, numpy
and SciPy, nothing compiled on first use); rembg itself is not imported. Model files are resolved
through the :class:`~workers.models.store.ModelStore`, never downloaded. onnxruntime is imported
when the first session is built (on the worker's thread).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from workers.errors import UserError
from workers.matting.compose import cutout
from workers.matting.int8 import FOLDER as INT8_FOLDER
from workers.matting.int8 import MIN_SIDE as INT8_MIN_SIDE
from workers.matting.int8 import Copies, Verdict
from workers.matting.options import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MODEL_SPECS,
    MattingOptions,
    ModelChoice,
    ModelSpec,
    available_models,
    coerce_option,
    spec_for,
)
from workers.models.store import CONVERTED_DIR, TENSORRT_CACHE_DIR, ModelStore, sniff_file

log = logging.getLogger(__name__)

__all__ = ["MattingEngine", "ModelChoice", "available_models", "physical_cores", "post_process_mask"]

#: The session key of a model's 8-bit copy: the model's key and this.
INT8_SUFFIX = "#int8"
#: How many model sessions an engine keeps loaded (least recently used ones are dropped).
MAX_CACHED_SESSIONS = 4
#: Accelerated onnxruntime providers in order of preference (each used only when installed).
_ACCELERATORS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "DmlExecutionProvider")
_DEVICE_NAMES = {"TensorrtExecutionProvider": "tensorrt", "CUDAExecutionProvider": "cuda",
                 "DmlExecutionProvider": "directml"}


def physical_cores() -> int:
    """Physical CPU cores (hyper-threads do not speed up convolutions)."""
    try:
        import psutil

        cores = psutil.cpu_count(logical=False)
    except Exception:  # psutil missing or unable to read the CPU topology
        cores = None
    return max(1, int(cores or os.cpu_count() or 1))


@dataclass
class _Target:
    """A model resolved to a file, before its session exists."""

    key: str
    label: str
    path: Path
    spec: ModelSpec | None  # None for the user's own models and plain paths


class OnnxSession:
    """One loaded model: the onnxruntime session (``inner_session``, as rembg names it) and its file.

    The studio feeds the model itself (rembg's preprocessing, redone in OpenCV); rembg is not imported."""

    def __init__(self, inner: Any, path: Path, model_name: str = "") -> None:
        self.inner_session = inner
        self.path = path
        self.model_name = model_name


@dataclass
class _Loaded:
    """A built session and how to feed it."""

    target: _Target
    session: OnnxSession
    session_name: str
    input_name: str
    output_name: str
    size: tuple[int, int]  # (height, width) fed to the model
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    sigmoid: bool
    input_dtype: Any = np.float32
    blob: np.ndarray = field(default_factory=lambda: np.zeros((1, 3, 1, 1), np.float32))
    precision: str = "float32"  # "int8": the checked 8-bit copy

    def fill(self, image: np.ndarray, blob: np.ndarray | None = None) -> np.ndarray:
        """The model's input for a BGR image, as rembg prepares it: resized with Pillow's Lanczos filter
        (the masks of these models move with small changes of their input, so only the same resize
        gives rembg's masks), scaled by the image's own maximum, then mean/std per channel (RGB
        order). Written into ``blob`` (the session's own one when None)."""
        blob = self.blob if blob is None else blob
        mh, mw = self.size
        small = _resize_to(image, mw, mh)
        top = max(float(small.max()), 1e-6)
        for c in range(3):  # model channels are RGB; the image is BGR
            scale = 1.0 / (top * self.std[c])
            np.multiply(small[:, :, 2 - c], blob.dtype.type(scale), out=blob[0, c], casting="unsafe")
            blob[0, c] -= blob.dtype.type(self.mean[c] / self.std[c])
        return blob

    def fresh_input(self, image: np.ndarray) -> np.ndarray:
        """The model's input for a BGR image in a new array (safe on another thread)."""
        return self.fill(image, np.zeros_like(self.blob))


def _dims(shape: Any) -> list[int | None]:
    return [d if isinstance(d, int) and d > 0 else None for d in (shape or [])]


def _shape_text(shape: Any) -> str:
    return "x".join(str(d) if isinstance(d, int) else "?" for d in (shape or [])) or "unknown"


def post_process_mask(mask: np.ndarray) -> np.ndarray:
    """rembg's mask post-processing, in OpenCV: a morphological opening with a radius-1 disc,
    a Gaussian blur (sigma 2), then a hard threshold at 127. Smooths jagged, noisy edges."""
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    opened = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cross)
    blurred = cv2.GaussianBlur(opened.astype(np.float32), (17, 17), 2.0, borderType=cv2.BORDER_REFLECT)
    return np.where(blurred < 127, 0, 255).astype(np.uint8)


class MattingEngine:
    """Background removal on BGR uint8 images: ``predict_mask`` gives the alpha, ``process`` the cutout."""

    name = "Background removal"

    def __init__(
        self,
        store: ModelStore,
        options: MattingOptions | None = None,
        *,
        device: str = "auto",
        threads: int | None = None,
        make_int8: bool = True,
    ) -> None:
        """``make_int8``: with ``options.int8``, a model without a checked 8-bit copy gets one made in
        the background (False: a copy made earlier is used, none is made; a short command line run)."""
        self.store = store
        self.make_int8 = make_int8
        self.options = options.copy() if options is not None else MattingOptions()
        self.device = (device or "auto").lower()
        if self.device not in ("auto", "cpu", "cuda", "gpu"):
            raise UserError(f"Unknown compute device {device!r}; choose auto, cpu or cuda.")
        self.threads = int(threads) if threads else physical_cores()
        #: Whether onnxruntime's idle threads spin (None: onnxruntime's default).
        self.spin: bool | None = False
        self._sessions: OrderedDict[str, _Loaded] = OrderedDict()
        self._targets: dict[str, _Target] = {}
        self._lock = threading.RLock()
        self._ort: Any = None
        self._copies = Copies.acquire(store.root / CONVERTED_DIR / INT8_FOLDER)
        self._closed = False
        self._cpu_only: bool | None = None  # whether the sessions run on the CPU alone (8-bit copies)
        #: Milliseconds spent in each stage of the last image: "pre", "model", "post", "matting".
        self.timings: dict[str, float] = {}

    # ---- Engine protocol -------------------------------------------------------------------
    def load(self) -> None:
        """Build (or reuse) the session of the current model. Raises UserError sentences."""
        self._current()

    def set_param(self, name: str, value: Any) -> None:
        """Change one :class:`MattingOptions` field live; a new model is loaded on next use."""
        value = coerce_option(name, value)
        # One attribute store: safe from any thread, and never waits for an image in progress.
        setattr(self.options, name, value)

    def process(self, bgr: np.ndarray) -> np.ndarray:
        """The BGRA cutout of a BGR image, or the mask as a 3-channel image when ``mask_only``."""
        alpha, foreground = self.predict(bgr)
        if self.options.mask_only:
            return cv2.cvtColor(alpha, cv2.COLOR_GRAY2BGR)
        return cutout(foreground if foreground is not None else _bgr(bgr), alpha)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._copies.release()
        with self._lock:
            self._sessions.clear()
            self._targets.clear()

    # ---- masks -----------------------------------------------------------------------------
    def predict_mask(self, bgr: np.ndarray, model: str | None = None) -> np.ndarray:
        """HxW uint8 alpha for a BGR uint8 image: the model, then post-processing and alpha matting
        as the options ask. ``model`` runs another model than the options' for this image (live uses
        a faster one while jobs keep the chosen one); its session stays loaded beside the others."""
        return self.predict(bgr, model)[0]

    def predict(self, bgr: np.ndarray, model: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """The alpha and, when alpha matting ran, the foreground colours it estimated (BGR), else None."""
        image = _bgr(bgr)
        with self._lock:
            opts = self.options.copy()
            loaded = self._current(model)
            mask = self._infer(loaded, image)
        t0 = time.perf_counter()
        if opts.post_process:
            mask = post_process_mask(mask)
        t1 = time.perf_counter()
        self.timings["post"] += (t1 - t0) * 1000
        foreground = None
        if opts.alpha_matting:
            mask, foreground = self._alpha_matting(image, mask, opts)
            self.timings["matting"] = (time.perf_counter() - t1) * 1000
        return mask, foreground

    def raw_mask(self, bgr: np.ndarray, model: str | None = None) -> np.ndarray:
        """The model's mask alone (no post-processing, no alpha matting)."""
        with self._lock:
            return self._infer(self._current(model), _bgr(bgr))

    # ---- information -----------------------------------------------------------------------
    @property
    def providers(self) -> list[str]:
        """The onnxruntime providers of the current session (or the ones it would ask for)."""
        loaded = self._loaded_of(self.options.model)
        if loaded is not None:
            with contextlib.suppress(Exception):
                return list(loaded.session.inner_session.get_providers())
        return self._provider_names()

    @property
    def model_label(self) -> str:
        """A readable name of the current model ("… (8-bit copy)" while its copy serves)."""
        label = self.label_of(self.options.model)
        return f"{label} (8-bit copy)" if self.precision == "int8" else label

    def label_of(self, model: str) -> str:
        """A readable name of any model the engine may run (its id when it cannot be resolved)."""
        target = self._targets.get(model)
        if target is not None:
            return target.label
        spec = spec_for(model)
        with contextlib.suppress(UserError):
            return self.store.get(spec.manifest_id if spec else model).name
        return Path(model).name if model.lower().endswith(".onnx") else model

    def model_file(self, model: str) -> Path:
        """The file a model id, import id or path resolves to (a UserError sentence when it cannot)."""
        with self._lock:
            target = self._targets.get(model)
            if target is None:
                target = self._targets[model] = self._resolve(model)
            return target.path

    @property
    def compute_device(self) -> str:
        """Where the models run: "cpu", or the accelerator onnxruntime uses ("cuda", "tensorrt",
        "directml"): the current session's when one is loaded, else the one it would ask for."""
        first = (self.providers or ["CPUExecutionProvider"])[0]
        return _DEVICE_NAMES.get(first, "cpu")

    @property
    def model_path(self) -> Path | None:
        """The file of the chosen model, once it has been resolved (None before)."""
        target = self._targets.get(self.options.model)
        return target.path if target else None

    @property
    def input_size(self) -> tuple[int, int] | None:
        """(height, width) the current model is fed, once loaded."""
        loaded = self._loaded_of(self.options.model)
        return loaded.size if loaded else None

    @property
    def precision(self) -> str:
        """"int8" when the current model runs from its checked 8-bit copy, else "float32"."""
        loaded = self._loaded_of(self.options.model)
        return loaded.precision if loaded else "float32"

    def int8_verdict(self, model: str | None = None) -> Verdict | None:
        """What the check of a model's 8-bit copy found (None before it ran, or for small models)."""
        target = self._targets.get(model or self.options.model)
        return self._copies.verdict(target.path) if target else None

    def wait_int8(self, timeout: float | None = None) -> None:
        """Wait until the 8-bit copies being made and checked are done."""
        self._copies.wait(timeout)

    def _loaded_of(self, model: str) -> _Loaded | None:
        target = self._targets.get(model)
        if target is None:
            return None
        keys = [target.key + INT8_SUFFIX, target.key] if self.options.int8 else [target.key]
        return next((self._sessions[k] for k in keys if k in self._sessions), None)

    def session(self) -> OnnxSession:
        """The session of the current model (loading it if needed)."""
        with self._lock:
            return self._current().session

    # ---- resolution ------------------------------------------------------------------------
    def _resolve(self, model: str) -> _Target:
        """Turn a model id, user-import id or path into a file on disk, or a UserError sentence."""
        spec = spec_for(model)
        if spec is not None:
            if spec.manifest_id not in self.store.manifest:
                raise UserError(f"The model {model} is not in the studio's model list.")
            path = self.store.path_of(spec.manifest_id)  # UserError: not installed, download it
            return _Target(spec.key, self.store.get(spec.manifest_id).name, Path(path), spec)
        known = {m.id: m for m in self.store.models()}
        if model in known:
            entry = known[model]
            if entry.tool != "matting":
                raise UserError(f"{entry.name} is a model for another tool, not a background-removal model.")
            path = Path(self.store.path_of(entry.id))
            if path.is_dir():
                onnx_files = sorted(path.rglob("*.onnx"))
                if len(onnx_files) != 1:
                    raise UserError(f"{entry.name} should hold exactly one .onnx file; it holds {len(onnx_files)}.")
                path = onnx_files[0]
            return _Target(entry.id, entry.name, path, None)
        path = Path(model).expanduser()
        looks_like_path = path.suffix.lower() == ".onnx" or os.sep in model or "/" in model or path.exists()
        if not looks_like_path:
            names = ", ".join(MODEL_SPECS)
            raise UserError(
                f"There is no background-removal model called {model!r}; choose one of {names}, "
                "a model you imported in Models, or the path of an .onnx file."
            )
        if not path.is_file():
            raise UserError(f"The model file {path} does not exist.")
        if path.suffix.lower() != ".onnx":
            raise UserError(f"{path.name} is not an ONNX model file; choose a file ending in .onnx.")
        path = path.resolve()
        return _Target(str(path), path.name, path, None)

    def _current(self, model: str | None = None) -> _Loaded:
        model = model or self.options.model
        target = self._targets.get(model)
        if target is None:
            target = self._resolve(model)
        copy = self._int8_copy(target)
        key = target.key + (INT8_SUFFIX if copy is not None else "")
        loaded = self._sessions.get(key)
        if loaded is None:
            loaded = self._build(target, copy)
            self._sessions[key] = loaded
            if copy is not None:
                self._sessions.pop(target.key, None)  # the float32 session is not needed any more
            while len(self._sessions) > MAX_CACHED_SESSIONS:
                dropped, _ = self._sessions.popitem(last=False)
                log.info("dropped the session of %s", dropped)
        else:
            self._sessions.move_to_end(key)
        self._targets[model] = target
        if copy is None and self.make_int8 and self._int8_wanted(loaded):
            self._copies.start(target.path, loaded.fresh_input, self.threads)
        return loaded

    def _int8_wanted(self, loaded: _Loaded | None = None) -> bool:
        """Whether 8-bit copies are asked for and fit: on the CPU, for models of INT8_MIN_SIDE pixels
        or more (``loaded`` None: before the size is known)."""
        if not self.options.int8:
            return False
        if self._cpu_only is None:  # once: it is asked on every picture
            self._cpu_only = all(p == "CPUExecutionProvider" for p in self._provider_names())
        return self._cpu_only and (loaded is None or min(loaded.size) >= INT8_MIN_SIDE)

    def _int8_copy(self, target: _Target) -> Path | None:
        if target.spec is not None and target.spec.size < INT8_MIN_SIDE:
            return None
        return self._copies.ready(target.path) if self._int8_wanted() else None

    # ---- sessions --------------------------------------------------------------------------
    def _runtime(self) -> Any:
        if self._ort is None:
            import onnxruntime as ort

            self._ort = ort
        return self._ort

    def _providers(self) -> list[Any]:
        ort = self._runtime()
        if self.device == "cpu":
            return ["CPUExecutionProvider"]
        available = set(ort.get_available_providers())
        chosen: list[Any] = []
        for name in _ACCELERATORS:
            if name not in available:
                continue
            if name == "TensorrtExecutionProvider":
                cache = self.store.root / TENSORRT_CACHE_DIR
                with contextlib.suppress(OSError):
                    cache.mkdir(parents=True, exist_ok=True)
                chosen.append((name, {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache)}))
            else:
                chosen.append(name)
        if self.device in ("cuda", "gpu") and not chosen:
            log.warning("a GPU was asked for but onnxruntime offers none here; using the CPU")
        return [*chosen, "CPUExecutionProvider"]

    def _provider_names(self) -> list[str]:
        return [p if isinstance(p, str) else p[0] for p in self._providers()]

    def _session_options(self) -> Any:
        ort = self._runtime()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        if self.spin is not None:
            # Idle intra-op threads spinning between images take the cores our own pre- and
            # post-processing needs; they sleep instead unless asked otherwise.
            opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spin else "0")
        return opts

    def _build(self, target: _Target, copy: Path | None = None) -> _Loaded:
        path = copy or target.path
        if not path.is_file():
            raise UserError(f"The model file of {target.label} is missing ({path}).")
        sniff_file(path)  # an image renamed .onnx, or anything that is not ONNX: a sentence
        ort = self._runtime()
        started = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                inner = ort.InferenceSession(str(path), sess_options=self._session_options(),
                                             providers=self._providers())
            except MemoryError:
                raise UserError(f"Not enough memory to load {target.label}; choose a smaller model.") from None
            except Exception as exc:
                log.info("could not load %s: %s", path, exc)
                raise UserError(
                    f"{target.label} could not be loaded: the file is damaged, truncated or not an ONNX model."
                ) from None
        for w in caught:
            log.warning("%s: %s", target.label, w.message)
        session = OnnxSession(inner, path)
        loaded = self._describe(target, session, target.spec.key if target.spec is not None else None)
        session.model_name = loaded.session_name
        if copy is not None:
            loaded.precision = "int8"
        log.info(
            "loaded %s (%s, %s, %dx%d) in %.0f ms on %s",
            target.label,
            loaded.session_name,
            loaded.precision,
            loaded.size[1],
            loaded.size[0],
            (time.perf_counter() - started) * 1000,
            ", ".join(inner.get_providers()),
        )
        return loaded

    def _describe(self, target: _Target, session: Any, named: str | None) -> _Loaded:
        """Check the model's input and output and pick its preprocessing."""
        inner = session.inner_session
        inputs = inner.get_inputs()
        outputs = inner.get_outputs()
        what = f"{target.label} is not a background-removal model"
        if not inputs or not outputs:
            raise UserError(f"{what}: it has no input or no output.")
        first = inputs[0]
        dims = _dims(first.shape)
        if len(dims) != 4 or dims[1] not in (3, None) or (dims[0] not in (1, None)):
            raise UserError(
                f"{what}: it takes input of shape {_shape_text(first.shape)} "
                "where an image of shape 1x3xHxW is expected."
            )
        dtypes = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}
        if first.type not in dtypes:
            raise UserError(f"{what}: it takes {first.type} input where floating-point pixels are expected.")
        out_dims = _dims(outputs[0].shape)
        if outputs[0].shape and (
            len(out_dims) not in (2, 3, 4) or (len(out_dims) == 4 and out_dims[1] not in (1, None))
        ):
            raise UserError(f"{what}: its output of shape {_shape_text(outputs[0].shape)} is not a one-channel mask.")
        spatial = list(out_dims)
        while len(spatial) > 2 and spatial[0] == 1:
            spatial.pop(0)
        if outputs[0].shape and (len(spatial) != 2 or any(d is not None and d < 2 for d in spatial)):
            # e.g. a classifier's 1x10 scores: not a picture-shaped mask
            raise UserError(f"{what}: its output of shape {_shape_text(outputs[0].shape)} is not a mask.")
        height, width = dims[2], dims[3]
        spec = target.spec
        if spec is not None:
            if (height not in (None, spec.size)) or (width not in (None, spec.size)):
                raise UserError(
                    f"{target.label} takes {width}x{height} images, not {spec.size}x{spec.size}: "
                    "the file is not the model it is named after; download it again in Models."
                )
            size = (spec.size, spec.size)
            mean, std, sigmoid = spec.mean, spec.std, spec.sigmoid
            session_name = named or spec.key
        else:
            size = (height or 320, width or 320)
            if size == (1024, 1024):
                # IS-Net-like input: rembg's dis_custom preprocessing (mean 0.5, std 1).
                session_name, mean, std = "dis_custom", (0.5, 0.5, 0.5), (1.0, 1.0, 1.0)
            else:
                session_name, mean, std = "u2net_custom", IMAGENET_MEAN, IMAGENET_STD
            sigmoid = False
        dtype = dtypes[first.type]
        blob = np.zeros((1, 3, size[0], size[1]), dtype)
        return _Loaded(
            target, session, session_name, first.name, outputs[0].name, size, mean, std, sigmoid, dtype, blob
        )

    # ---- the fast path ---------------------------------------------------------------------
    def _infer(self, loaded: _Loaded, image: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        h0, w0 = image.shape[:2]
        blob = loaded.fill(image)
        t1 = time.perf_counter()
        try:
            outs = loaded.session.inner_session.run([loaded.output_name], {loaded.input_name: blob})
        except Exception as exc:
            log.info("inference failed on %s: %s", loaded.target.label, exc)
            raise UserError(
                f"{loaded.target.label} failed on this image; the model file may not be a background-removal model."
            ) from None
        t2 = time.perf_counter()
        pred = np.asarray(outs[0], dtype=np.float32)
        while pred.ndim > 2 and pred.shape[0] == 1:
            pred = pred[0]
        if pred.ndim != 2 or min(pred.shape) < 2:
            raise UserError(f"{loaded.target.label} gave no one-channel mask (output shape {pred.shape}).")
        if loaded.sigmoid:
            with np.errstate(over="ignore"):
                pred = 1.0 / (1.0 + np.exp(-pred))
        lo, hi = float(pred.min()), float(pred.max())
        span = hi - lo
        if not np.isfinite(span) or span <= 0:
            small_mask = np.zeros(pred.shape, np.uint8)
        else:
            # rembg: (pred - min) / (max - min) * 255, truncated to uint8.
            scaled = (pred - lo) * np.float32(255.0 / span)
            small_mask = np.clip(scaled, 0, 255).astype(np.uint8)
        ph, pw = small_mask.shape
        if (ph, pw) == (h0, w0):
            mask = small_mask
        else:
            grow = w0 >= pw and h0 >= ph
            mask = cv2.resize(small_mask, (w0, h0), interpolation=cv2.INTER_LINEAR if grow else cv2.INTER_AREA)
        t3 = time.perf_counter()
        self.timings = {"pre": (t1 - t0) * 1000, "model": (t2 - t1) * 1000, "post": (t3 - t2) * 1000}
        return mask

    def _alpha_matting(
        self, image: np.ndarray, mask: np.ndarray, opts: MattingOptions
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Closed-form alpha matting on the trimap the mask gives (rembg's thresholds and erosion),
        and the foreground colours behind the new alpha (:mod:`workers.matting.closed_form`)."""
        from workers.matting import closed_form

        trimap = closed_form.trimap_from_mask(
            mask, opts.foreground_threshold, opts.background_threshold, opts.erode_size
        )
        scaled = image.astype(np.float64) / 255.0
        try:
            alpha = closed_form.estimate_alpha(scaled, trimap)
        except closed_form.NothingToSolve as exc:
            # No unknown region or no sure foreground/background: the plain mask is the answer.
            log.info("alpha matting skipped: %s", exc)
            return mask, None
        except MemoryError as exc:
            raise UserError(
                "Alpha matting needs more free memory than there is for an image this large; "
                "turn alpha matting off or use a smaller image."
            ) from exc
        foreground = closed_form.estimate_foreground(scaled, alpha)
        # Truncated to 8 bits as rembg's cut-out is.
        alpha8 = np.clip(alpha * 255.0, 0, 255).astype(np.uint8)
        foreground8 = np.clip(foreground * 255.0, 0, 255).astype(np.uint8)
        return alpha8, foreground8


def _resize_to(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` (HxWx3 uint8, any channel order) at ``width`` x ``height``, resized as rembg resizes
    its input: Pillow's Lanczos filter (antialiased when shrinking)."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    from PIL import Image

    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((width, height), Image.Resampling.LANCZOS))


def _bgr(image: np.ndarray) -> np.ndarray:
    """A contiguous HxWx3 uint8 view of a BGR, BGRA or greyscale image."""
    if not isinstance(image, np.ndarray) or image.size == 0:
        raise UserError("There is no image to remove the background from.")
    if image.dtype != np.uint8:
        raise UserError("The image must have 8-bit samples.")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image if image.flags.c_contiguous else np.ascontiguousarray(image)
    if image.ndim == 3 and image.shape[2] == 4:
        return np.ascontiguousarray(image[..., :3])
    if image.ndim == 3 and image.shape[2] == 1:
        return cv2.cvtColor(image[..., 0], cv2.COLOR_GRAY2BGR)
    raise UserError(f"An image of shape {image.shape} cannot be processed; a colour image is expected.")
