"""A model is told from the file itself: which tool it is for, what travels with it, and one sentence
for anything that is not a model (before anything is asked or copied)."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from face_fixtures import build_arcface_like, build_enhancer_like, build_inswapper_like, build_scrfd_like
from matting_fixtures import build_u2net_like

from workers.errors import UserError
from workers.models.detect import detect_model, read_onnx_graph
from workers.models.manifest import parse_manifest
from workers.models.store import ModelStore


def _onnx(path: Path, inputs: list[tuple[str, list]], outputs: list[tuple[str, list]]) -> Path:
    """A small ONNX graph with these inputs and outputs (Identity-like, never run)."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Identity", [inputs[0][0]], [name]) for name, _ in outputs]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, d) for n, d in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, d) for n, d in outputs],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _piper(path: Path, with_json: bool = True) -> Path:
    _onnx(path, [("input", ["b", "t"]), ("input_lengths", ["b"]), ("scales", [3])], [("output", ["b", 1, 1, "t"])])
    if with_json:
        Path(f"{path}.json").write_text(json.dumps({"audio": {"sample_rate": 22050}}))
    return path


def _safetensors(path: Path, keys: list[str]) -> Path:
    header = {k: {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]} for i, k in enumerate(keys)}
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(4 * len(keys)))
    return path


def _torch_like(path: Path, obj: object) -> Path:
    """A plain-pickle checkpoint of dicts, strings and numbers (no tensors: no code either)."""
    path.write_bytes(pickle.dumps(obj, protocol=2))
    return path


# ---- ONNX ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("build", "tool", "words"),
    [
        (lambda p: build_u2net_like(p / "u2net.onnx", size=64), "matting", "background-removal"),
        (lambda p: build_inswapper_like(p / "inswapper_128.onnx"), "face_swap", "face swapper"),
        (lambda p: build_enhancer_like(p / "GFPGANv1.4.onnx", size=64), "face_swap", "face enhancer"),
        (lambda p: build_scrfd_like(p / "det_10g.onnx"), "face_swap", "face detector"),
        (lambda p: build_arcface_like(p / "w600k_r50.onnx"), "face_swap", "face recogniser"),
        (lambda p: _piper(p / "en_US-amy-low.onnx"), "assistant", "Piper voice"),
    ],
)
def test_onnx_models_are_told_apart_by_their_graph(tmp_path: Path, build, tool: str, words: str) -> None:
    path = build(tmp_path)
    found = detect_model(path)
    assert found.tool == tool and words in found.role, found
    assert found.path == path and found.name == path.name.removesuffix(".onnx")
    assert words in found.summary() and path.name in found.summary()


def test_a_matting_model_is_not_taken_for_a_face_swapper(tmp_path: Path) -> None:
    """The old import preselected Face swap for everything; a matting ONNX now says what it is."""
    isnet = _onnx(tmp_path / "isnet.onnx", [("input", [1, 3, 1024, 1024])], [("mask", [1, 1, 1024, 1024])])
    assert detect_model(isnet).tool == "matting"
    nhwc = _onnx(tmp_path / "nhwc.onnx", [("image", ["n", 320, 320, 3])], [("alpha", ["n", 320, 320, 1])])
    assert detect_model(nhwc).tool == "matting"


def test_a_piper_voice_travels_with_its_settings(tmp_path: Path) -> None:
    voice = _piper(tmp_path / "en_US-amy-low.onnx")
    found = detect_model(voice)
    assert found.kind == "piper-voice" and found.companions == (Path(f"{voice}.json"),)
    store = ModelStore(tmp_path / "store", parse_manifest({"model": []}))
    model = store.import_file(voice, found.tool, found.name, kind=found.kind, companions=found.companions)
    assert model.kind == "piper-voice" and model.folder
    folder = store.path_of(model.id)
    assert {"en_US-amy-low.onnx", "en_US-amy-low.onnx.json"} <= {p.name for p in folder.iterdir()}
    assert store.verify(model.id).ok
    from workers.assistant.tts import _resolve_piper

    assert _resolve_piper(model.id, store)[0].name == "en_US-amy-low.onnx"  # the assistant finds the voice

    (tmp_path / "alone").mkdir()
    lonely = _piper(tmp_path / "alone" / "voice.onnx", with_json=False)
    with pytest.raises(UserError, match=r"Piper voice without its settings file: put voice\.onnx\.json beside it"):
        detect_model(lonely)


def test_an_onnx_model_that_says_nothing_leaves_the_choice(tmp_path: Path) -> None:
    odd = _onnx(tmp_path / "tabular.onnx", [("x", [1, 16])], [("y", [1, 2])])
    found = detect_model(odd)
    assert found.tool is None and "does not say which tool" in found.summary()


def test_the_graph_reader_agrees_with_onnx(tmp_path: Path) -> None:
    import onnx

    path = build_inswapper_like(tmp_path / "swap.onnx")
    graph = read_onnx_graph(path)
    model = onnx.load(str(path))
    constants = {i.name for i in model.graph.initializer}
    assert [t.name for t in graph.inputs] == [i.name for i in model.graph.input if i.name not in constants]
    assert [t.name for t in graph.outputs] == [o.name for o in model.graph.output]
    assert [t.name for t in graph.initializers] == [i.name for i in model.graph.initializer]
    assert graph.initializers[-1].dims == (512, 512)  # the emap
    assert graph.inputs[0].dims == (1, 3, 128, 128) and graph.inputs[1].dims == (1, 512)


# ---- checkpoints -------------------------------------------------------------------------------------------
def test_voice_checkpoints(tmp_path: Path) -> None:
    import svc_fixtures

    rvc = svc_fixtures.make_rvc_checkpoint(tmp_path / "rvc" / "singer.pth")
    found = detect_model(rvc)
    assert found.tool == "voice_conversion" and "RVC voice v2" in found.role and found.kind == "torch"

    generator, config = svc_fixtures.make_sovits_checkpoint(tmp_path / "alice")
    found = detect_model(generator)
    assert found.tool == "voice_conversion" and "so-vits-svc" in found.role
    assert found.companions == (config,) and found.name == "alice"  # G_100 says nothing
    folder = detect_model(tmp_path / "alice")
    assert folder.tool == "voice_conversion" and folder.kind == "torch"

    store = ModelStore(tmp_path / "store", parse_manifest({"model": []}))
    model = store.import_file(generator, found.tool, found.name, kind=found.kind, companions=found.companions)
    copied = store.path_of(model.id)
    assert (copied / "G_100.pth").is_file() and (copied / "config.json").read_bytes() == config.read_bytes()

    config.unlink()
    with pytest.raises(UserError, match=r"needs the config\.json it was trained with"):
        detect_model(generator)


def test_checkpoints_by_the_names_they_hold(tmp_path: Path) -> None:
    discriminator = _torch_like(tmp_path / "D_100.pth", {"model": {"discriminators.0.convs.0.bias": 0}})
    with pytest.raises(UserError, match="discriminator"):
        detect_model(discriminator)
    encoder = _torch_like(tmp_path / "hubert.pt", {"feature_extractor.conv_layers.0.conv.weight": 0})
    assert detect_model(encoder).tool == "voice_conversion"
    llm = _safetensors(tmp_path / "model.safetensors", ["model.layers.0.mlp.up_proj.weight", "lm_head.weight"])
    assert detect_model(llm).tool == "assistant"
    sovits = _safetensors(tmp_path / "voice.safetensors", ["enc_p.proj.weight", "dec.conv_pre.weight"])
    with pytest.raises(UserError, match=r"config\.json"):
        detect_model(sovits)
    unknown = _torch_like(tmp_path / "thing.pth", {"backbone.conv1.weight": 0})
    assert detect_model(unknown).tool is None


def test_assistant_models(tmp_path: Path) -> None:
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF" + bytes(64))
    assert detect_model(gguf).tool == "assistant" and detect_model(gguf).kind == "gguf"

    llm = tmp_path / "tiny-llm"
    llm.mkdir()
    (llm / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    _safetensors(llm / "model.safetensors", ["model.layers.0.self_attn.q_proj.weight"])
    found = detect_model(llm)
    assert (found.tool, found.kind) == ("assistant", "transformers") and "language model" in found.role

    whisper = tmp_path / "faster-whisper-tiny"
    whisper.mkdir()
    (whisper / "config.json").write_text(json.dumps({"suppress_ids": [1]}))
    (whisper / "model.bin").write_bytes(struct.pack("<I", 6) + bytes(64))
    found = detect_model(whisper)
    assert (found.tool, found.kind) == ("assistant", "ctranslate2") and "Whisper" in found.role

    hubert = tmp_path / "contentvec"
    hubert.mkdir()
    (hubert / "config.json").write_text(json.dumps({"model_type": "hubert"}))
    _safetensors(hubert / "model.safetensors", ["encoder.layers.0.attention.k_proj.weight"])
    assert detect_model(hubert).tool == "voice_conversion"


# ---- not models ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "data", "words"),
    [
        ("photo.jpg", b"just some text, not a photo", "not a model file the studio can import"),
        ("notes.txt", b"hello", "not a model file the studio can import"),
        ("photo.onnx", b"\x89PNG\r\n\x1a\n" + bytes(32), "PNG image, not a model"),
        ("empty.onnx", b"", "empty"),
        ("cut.onnx", b"\x08\x07" + bytes(64), "damaged or incomplete ONNX model"),
        ("code.pth", pickle.dumps(print, protocol=2), "holds Python objects or code"),
    ],
)
def test_what_is_not_a_model_is_one_sentence(tmp_path: Path, name: str, data: bytes, words: str) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(UserError) as caught:
        detect_model(path)
    message = str(caught.value)
    assert words in message and "\n" not in message and "Traceback" not in message


def test_detection_of_a_large_model_reads_no_weights(tmp_path: Path) -> None:
    """A model whose weights are large is judged from its graph alone (the weights are skipped)."""
    import time

    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.zeros((64, 1024, 1024), np.float32), "w")  # 256 MB
    graph = helper.make_graph(
        [helper.make_node("Add", ["input", "b"], ["mask"])],
        "big",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 320, 320])],
        [helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, 320, 320])],
        initializer=[weights, numpy_helper.from_array(np.zeros(1, np.float32), "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "big.onnx"
    onnx.save(model, str(path))
    del model, weights
    start = time.perf_counter()
    assert detect_model(path).tool == "matting"
    assert time.perf_counter() - start < 0.5
