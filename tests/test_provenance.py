"""Content Credentials: a manifest signed with this computer's key, embedded in images and videos,
read back by c2pa-python; face-swap exports carry them, and a file that cannot is still saved."""

from __future__ import annotations

import stat
from pathlib import Path

import cv2
import numpy as np
import pytest

from workers import provenance
from workers.errors import UserError


@pytest.fixture
def picture() -> np.ndarray:
    img = np.zeros((96, 128, 3), np.uint8)
    cv2.circle(img, (64, 48), 30, (40, 120, 220), -1)
    return img


def test_the_key_is_made_once_and_kept_private(tmp_path: Path) -> None:
    key, chain = provenance.ensure_identity(tmp_path / "cc")
    assert key.startswith(b"-----BEGIN PRIVATE KEY") and chain.count(b"BEGIN CERTIFICATE") == 2
    assert stat.S_IMODE((tmp_path / "cc" / provenance.KEY_FILE).stat().st_mode) == 0o600
    assert provenance.ensure_identity(tmp_path / "cc") == (key, chain)  # the same key every time


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_an_image_carries_credentials_that_read_back(tmp_path: Path, picture: np.ndarray, suffix: str) -> None:
    ok, encoded = cv2.imencode(suffix, picture)
    assert ok
    claim = provenance.manifest("face swap", model="hyperswap-1a-256", title=f"out{suffix}")
    signed = provenance.sign_bytes(encoded.tobytes(), provenance.mime_type(f"x{suffix}"), claim, folder=tmp_path)
    path = tmp_path / f"out{suffix}"
    path.write_bytes(signed)
    found = provenance.read_credentials(path)
    assert found is not None and found.ai_generated
    assert found.generator == "SnowAI Studio" and found.signer == "SnowAI Studio content credentials"
    assert [a["action"] for a in found.actions] == ["c2pa.created", "c2pa.edited"]
    action = found.actions[1]
    assert action["parameters"]["model"] == "hyperswap-1a-256"
    assert action["softwareAgent"]["name"] == "SnowAI Studio face swap"
    assert found.state == "Valid"  # intact; its signer is this computer's own (untrusted elsewhere)
    decoded = cv2.imdecode(np.frombuffer(signed, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == picture.shape  # still an ordinary picture
    # A changed byte in the picture is caught.
    tampered = bytearray(signed)
    tampered[len(tampered) // 2] ^= 0xFF
    path.write_bytes(bytes(tampered))
    again = provenance.read_credentials(path)
    assert again is None or again.state != "Valid"


def test_a_file_without_credentials_and_an_unsupported_one(tmp_path: Path, picture: np.ndarray) -> None:
    plain = tmp_path / "plain.png"
    cv2.imwrite(str(plain), picture)
    assert provenance.read_credentials(plain) is None
    assert provenance.read_credentials(tmp_path / "missing.png") is None
    with pytest.raises(UserError, match=r"cannot be embedded in \.gif files"):
        provenance.sign_file(tmp_path / "x.gif", provenance.manifest("face swap"))
    with pytest.raises(UserError, match="could not be added"):
        provenance.sign_bytes(b"not a png at all", "image/png", provenance.manifest("face swap"), folder=tmp_path)


def test_a_video_carries_credentials(tmp_path: Path) -> None:
    import av

    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 40, np.uint8), format="bgr24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    provenance.sign_file(path, provenance.manifest("face swap", model="inswapper-128"))
    found = provenance.read_credentials(path)
    assert found is not None and found.ai_generated and found.actions[-1]["parameters"]["model"] == "inswapper-128"
    with av.open(str(path)) as back:
        assert sum(1 for _ in back.decode(video=0)) == 5


def test_face_swap_exports_carry_credentials_next_to_the_label(tmp_path: Path, picture: np.ndarray) -> None:
    from workers.face_swap.cli import save_result
    from workers.face_swap.mark import read_generated_label

    marked = save_result(tmp_path / "swap.png", picture, marked=True, model="inswapper-128")
    assert read_generated_label(marked)  # the label is still there
    found = provenance.read_credentials(marked)
    assert found is not None and found.actions[-1]["parameters"]["model"] == "inswapper-128"
    unmarked = save_result(tmp_path / "plain.png", picture, marked=False)
    assert provenance.read_credentials(unmarked) is None
