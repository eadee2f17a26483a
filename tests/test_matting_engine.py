"""The matting engine on tiny ONNX models loaded through rembg's real session code (nothing downloaded)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from matting_fixtures import build_u2net_like, iou, subject_image

from workers.errors import UserError
from workers.matting.engine import MattingEngine, available_models, post_process_mask
from workers.matting.options import MattingOptions, spec_for
from workers.models.manifest import parse_manifest
from workers.models.store import ModelStore


@pytest.fixture(autouse=True)
def no_download(monkeypatch: pytest.MonkeyPatch) -> None:
    """rembg downloads with pooch when it misses a file: any call fails the test."""
    import pooch

    def refuse(*args: object, **kwargs: object) -> None:
        pytest.fail(f"a download was attempted: {args} {kwargs}")

    monkeypatch.setattr(pooch, "retrieve", refuse)


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "store")


def _import(store: ModelStore, tmp_path: Path, name: str, **kwargs: object) -> str:
    path = build_u2net_like(tmp_path / "src" / f"{name}.onnx", **kwargs)  # type: ignore[arg-type]
    return store.import_file(path, "matting", name=name).id


def _manifest_store(tmp_path: Path, model_id: str, file_name: str, size: int) -> ModelStore:
    """A store whose manifest lists one rembg model, installed as a tiny stand-in with the real file name."""
    src = build_u2net_like(tmp_path / "src" / file_name, size=size)
    data = src.read_bytes()
    manifest = parse_manifest(
        {
            "model": [
                {
                    "id": model_id,
                    "tool": "matting",
                    "name": f"stand-in for {model_id}",
                    "description": "test model",
                    "licence": "test",
                    "kind": "onnx",
                    "file": [
                        {
                            "name": file_name,
                            "size": len(data),
                            "sha256": hashlib.sha256(data).hexdigest(),
                            "sources": [{"url": "https://example.invalid/" + file_name}],
                        }
                    ],
                }
            ]
        }
    )
    root = tmp_path / "manifest-store"
    (root / model_id).mkdir(parents=True)
    (root / model_id / file_name).write_bytes(data)
    return ModelStore(root, manifest)


def _rembg_session(engine: MattingEngine) -> object:
    """rembg's own session for the engine's model file (the reference the engine's masks must equal)."""
    import os

    from rembg.session_factory import new_session

    ours = engine.session()
    saved = os.environ.get("U2NET_HOME")
    os.environ["U2NET_HOME"] = str(ours.path.parent)
    try:
        if ours.model_name in ("u2net_custom", "dis_custom"):
            return new_session(ours.model_name, model_path=str(ours.path))
        return new_session(ours.model_name)
    finally:
        if saved is None:
            os.environ.pop("U2NET_HOME", None)
        else:
            os.environ["U2NET_HOME"] = saved


def _rembg_mask(engine: MattingEngine, bgr: np.ndarray, **kwargs: object) -> np.ndarray:
    from rembg import remove

    session = _rembg_session(engine)
    return np.asarray(remove(np.ascontiguousarray(bgr[..., ::-1]), session=session, only_mask=True, **kwargs))


def test_the_first_cut_out_does_not_import_rembg(store: ModelStore, tmp_path: Path) -> None:
    """rembg imports pymatting, whose numba functions compile for tens of seconds on first use: the path
    to a cut-out does not import it (alpha matting is the studio's own: tests/test_matting_closed_form.py)."""
    import subprocess
    import sys

    model_id = _import(store, tmp_path, "tiny")
    script = (
        "import sys, numpy as np\n"
        "from workers.models.store import ModelStore\n"
        "from workers.matting.engine import MattingEngine\n"
        "from workers.matting.options import MattingOptions\n"
        f"engine = MattingEngine(ModelStore({str(store.root)!r}), MattingOptions(model={model_id!r}), device='cpu')\n"
        "img = np.zeros((60, 80, 3), np.uint8); img[20:40, 30:50] = 255\n"
        "assert engine.predict_mask(img).shape == (60, 80)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rembg', 'pymatting', 'numba')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_imported_model_matches_rembg_and_the_subject(store: ModelStore, tmp_path: Path) -> None:
    model_id = _import(store, tmp_path, "tiny")
    engine = MattingEngine(store, MattingOptions(model=model_id), device="cpu")
    engine.load()
    assert engine.session().model_name == "u2net_custom"
    assert type(_rembg_session(engine)).__name__ == "U2netCustomSession"
    assert engine.providers == ["CPUExecutionProvider"]
    assert engine.model_label == "tiny"
    bgr, truth = subject_image(120, 160)
    mask = engine.predict_mask(bgr)
    assert mask.shape == truth.shape and mask.dtype == np.uint8
    assert iou(mask, truth) > 0.95
    assert iou(mask, _rembg_mask(engine, bgr)) >= 0.99
    assert set(engine.timings) >= {"pre", "model", "post"}


def test_upscaled_small_image_and_odd_inputs(store: ModelStore, tmp_path: Path) -> None:
    engine = MattingEngine(store, MattingOptions(model=_import(store, tmp_path, "tiny")), device="cpu")
    bgr, truth = subject_image(60, 90)
    assert iou(engine.predict_mask(bgr), _rembg_mask(engine, bgr)) >= 0.99
    bgra = np.dstack([bgr, np.full(truth.shape, 255, np.uint8)])
    assert engine.predict_mask(bgra).shape == truth.shape
    assert engine.predict_mask(bgr[..., 0]).shape == truth.shape  # greyscale
    assert engine.predict_mask(bgr[:, ::-1]).shape == truth.shape  # not contiguous
    with pytest.raises(UserError):
        engine.predict_mask(np.zeros((0, 0, 3), np.uint8))


@pytest.mark.parametrize(
    ("model", "manifest_id", "file_name", "size", "session_class"),
    [
        ("u2netp", "rembg-u2netp", "u2netp.onnx", 320, "U2netpSession"),
        ("rembg-u2net-human-seg", "rembg-u2net-human-seg", "u2net_human_seg.onnx", 320, "U2netHumanSegSession"),
        ("isnet-general-use", "rembg-isnet-general-use", "isnet-general-use.onnx", 1024, "DisSession"),
        ("isnet-anime", "rembg-isnet-anime", "isnet-anime.onnx", 1024, "DisSession"),
        ("birefnet-general-lite", "rembg-birefnet-general-lite", "birefnet-general-lite.onnx", 1024, "Lite"),
    ],
)
def test_manifest_models_use_rembg_named_sessions(
    tmp_path: Path, model: str, manifest_id: str, file_name: str, size: int, session_class: str
) -> None:
    store = _manifest_store(tmp_path, manifest_id, file_name, size)
    engine = MattingEngine(store, MattingOptions(model=model), device="cpu")
    engine.load()
    assert engine.session().model_name == spec_for(model).key
    assert session_class in type(_rembg_session(engine)).__name__
    assert engine.input_size == (size, size)
    bgr, truth = subject_image(96, 128)
    mask = engine.predict_mask(bgr)
    assert iou(mask, _rembg_mask(engine, bgr)) >= 0.99
    assert iou(mask, truth) > 0.9


def test_imported_1024_model_uses_dis_custom(store: ModelStore, tmp_path: Path) -> None:
    model_id = _import(store, tmp_path, "big", size=1024)
    engine = MattingEngine(store, MattingOptions(model=model_id), device="cpu")
    engine.load()
    assert engine.session().model_name == "dis_custom"
    assert type(_rembg_session(engine)).__name__ == "DisCustomSession"
    bgr, _ = subject_image(96, 128)
    assert iou(engine.predict_mask(bgr), _rembg_mask(engine, bgr)) >= 0.99


def test_plain_onnx_path_outside_the_store(store: ModelStore, tmp_path: Path) -> None:
    path = build_u2net_like(tmp_path / "elsewhere" / "my model.onnx")
    engine = MattingEngine(store, MattingOptions(model=str(path)), device="cpu")
    bgr, truth = subject_image(96, 128)
    assert iou(engine.predict_mask(bgr), truth) > 0.95
    assert engine.model_label == "my model.onnx"


def test_post_process_matches_rembg(store: ModelStore, tmp_path: Path) -> None:
    engine = MattingEngine(store, MattingOptions(model=_import(store, tmp_path, "tiny"), post_process=True))
    bgr, _ = subject_image(120, 160, seed=3)
    mask = engine.predict_mask(bgr)
    assert set(np.unique(mask)) <= {0, 255}
    assert iou(mask, _rembg_mask(engine, bgr, post_process_mask=True)) >= 0.99
    from rembg.bg import post_process

    noisy = (np.random.default_rng(1).random((80, 100)) > 0.5).astype(np.uint8) * 255
    noisy[20:60, 30:70] = 255
    assert iou(post_process_mask(noisy), post_process(noisy)) >= 0.99


def test_alpha_matting_and_live_options(store: ModelStore, tmp_path: Path) -> None:
    engine = MattingEngine(store, MattingOptions(model=_import(store, tmp_path, "tiny")))
    bgr, truth = subject_image(72, 96)
    engine.set_param("alpha_matting", True)
    engine.set_param("erode_size", "4")
    assert engine.options.erode_size == 4
    alpha = engine.predict_mask(bgr)
    assert alpha.shape == truth.shape and iou(alpha, truth) > 0.9
    cut = engine.process(bgr)
    assert cut.shape == (72, 96, 4)
    np.testing.assert_array_equal(cut[..., 3], alpha)
    engine.set_param("alpha_matting", False)
    engine.set_param("mask_only", True)
    mask_image = engine.process(bgr)
    assert mask_image.shape == (72, 96, 3)
    np.testing.assert_array_equal(mask_image[..., 0], engine.predict_mask(bgr))
    with pytest.raises(UserError):
        engine.set_param("no_such_setting", 1)
    with pytest.raises(UserError):
        engine.set_param("foreground_threshold", 999)


def test_model_switching_reuses_sessions(store: ModelStore, tmp_path: Path) -> None:
    bright = _import(store, tmp_path, "bright")
    dark = _import(store, tmp_path, "dark", gain=-3.0)  # calls dark pixels foreground
    engine = MattingEngine(store, MattingOptions(model=bright))
    bgr, truth = subject_image(96, 128)
    first = engine.session()
    assert iou(engine.predict_mask(bgr), truth) > 0.95
    engine.set_param("model", dark)
    assert engine.model_label == "dark"
    assert iou(engine.predict_mask(bgr), 255 - truth) > 0.95
    assert engine.session() is not first
    engine.set_param("model", bright)
    assert engine.session() is first  # built once, reused
    engine.close()
    assert iou(engine.predict_mask(bgr), truth) > 0.95  # a closed engine loads again on use


def test_missing_model_is_a_sentence_and_nothing_downloads(store: ModelStore) -> None:
    engine = MattingEngine(store, MattingOptions(model="u2net"))
    with pytest.raises(UserError, match=r"not installed; open Models and click Download"):
        engine.load()
    assert not (store.root / "rembg-u2net").exists()
    engine.set_param("model", "no-such-model")
    with pytest.raises(UserError, match="no background-removal model called"):
        engine.predict_mask(np.zeros((8, 8, 3), np.uint8))


def test_models_of_other_tools_are_refused(tmp_path: Path, store: ModelStore) -> None:
    path = build_u2net_like(tmp_path / "voice.onnx")
    other = store.import_file(path, "assistant", name="voice").id
    with pytest.raises(UserError, match="another tool"):
        MattingEngine(store, MattingOptions(model=other)).load()


def _wrong_input_model(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["y"], axes=[1], keepdims=1)],
        "wrong",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 32, 32])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_bad_model_files_give_sentences(store: ModelStore, tmp_path: Path) -> None:
    import cv2

    png = tmp_path / "photo.onnx"
    _ok, data = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    png.write_bytes(data.tobytes())
    good = build_u2net_like(tmp_path / "good.onnx", size=64).read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(good[: len(good) * 2 // 3])
    wrong = _wrong_input_model(tmp_path / "wrong.onnx")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    cases = {
        str(png): "PNG image",
        str(truncated): "damaged, truncated or not an ONNX model",
        str(wrong): "1x4x32x32",
        str(text): "not an ONNX model file",
        str(tmp_path / "absent.onnx"): "does not exist",
    }
    for model, expected in cases.items():
        engine = MattingEngine(store, MattingOptions(model=model))
        with pytest.raises(UserError, match=expected) as info:
            engine.load()
        assert "Traceback" not in str(info.value)
    # The same files imported into the store fail the same way (the import only checks the header).
    imported = store.import_file(truncated, "matting", name="cut").id
    with pytest.raises(UserError, match="could not be loaded"):
        MattingEngine(store, MattingOptions(model=imported)).load()
    imported = store.import_file(wrong, "matting", name="wrong").id
    with pytest.raises(UserError, match="not a background-removal model"):
        MattingEngine(store, MattingOptions(model=imported)).load()


def test_available_models_lists_manifest_and_imports(store: ModelStore, tmp_path: Path) -> None:
    model_id = _import(store, tmp_path, "mine")
    choices = {c.id: c for c in available_models(store)}
    assert {"u2net", "u2netp", "isnet-general-use", "birefnet-general-lite", model_id} <= set(choices)
    # u2netp comes with the studio (taken from a wheel at setup); the full U2-Net is a download.
    assert choices["u2netp"].ready and "installed with the studio" in choices["u2netp"].note
    assert not choices["u2net"].ready and "Download" in choices["u2net"].note
    assert choices[model_id].ready and choices[model_id].name == "mine"


def test_threads_and_device_choice(store: ModelStore, tmp_path: Path) -> None:
    engine = MattingEngine(store, MattingOptions(model=_import(store, tmp_path, "tiny")), threads=1, device="cuda")
    assert engine.threads == 1
    assert engine.providers[-1] == "CPUExecutionProvider"  # CUDA is used only where onnxruntime offers it
    assert engine.predict_mask(subject_image(40, 50)[0]).shape == (40, 50)
    with pytest.raises(UserError):
        MattingEngine(store, device="tpu")


def test_provider_choice(store: ModelStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime as ort

    offered = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: offered)
    gpu = MattingEngine(store, device="auto").providers
    assert gpu == offered
    assert MattingEngine(store, device="cpu").providers == ["CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["DmlExecutionProvider", "CPUExecutionProvider"])
    assert MattingEngine(store).providers == ["DmlExecutionProvider", "CPUExecutionProvider"]
    assert MattingEngine(store, MattingOptions(model="u2net")).model_label == "U2-Net (general)"


def test_the_shipped_model_gives_rembgs_masks_on_photos(tmp_path: Path) -> None:
    """U²-Net lite's masks move with small changes of its input (one level of noise moves the rocket's
    by IoU 0.02), so the engine resizes as rembg does: on real photos its masks are rembg's."""
    import cv2
    from skimage import data

    engine = MattingEngine(ModelStore(tmp_path / "store"), MattingOptions(model="u2netp"), threads=2)
    assert engine.session().model_name == "u2netp"
    for rgb in (data.rocket(), data.chelsea(), data.astronaut()):
        h, w = rgb.shape[:2]
        bgr = cv2.resize(np.ascontiguousarray(rgb[..., ::-1]), (w * 5 // 2, h * 5 // 2), interpolation=cv2.INTER_CUBIC)
        assert iou(engine.predict_mask(bgr), _rembg_mask(engine, bgr)) >= 0.995
    engine.close()
