"""Content Credentials (C2PA) on what the studio exports: a signed manifest, embedded in the file,
that says it was made or changed with AI, by which tool and model (no Qt).

The manifest holds one ``c2pa.actions`` assertion: ``c2pa.created`` (a picture made by a model), then
for a picture changed by one (a face swap) ``c2pa.edited``, with the IPTC digital source type for AI
media, the tool as the software agent and the model as a parameter. It is signed with a key
this computer makes on first use and keeps in the config folder (``content-credentials/``): an
ES256 key and a certificate issued by a local root certificate made at the same time. That root is
self-signed and known to no one else, so readers (c2pa-python, the Content Authenticity Initiative's
tools) report the manifest as intact and its signer as untrusted: the credentials show what was done,
and that the file was not changed since, not who did it.

Any tool's export can use :func:`sign_bytes` (an encoded file in memory) or :func:`sign_file` (a file
on disk, such as a video, replaced atomically); :func:`read_credentials` reads them back.
"""

from __future__ import annotations

import datetime
import io
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers import paths
from workers.errors import UserError

log = logging.getLogger(__name__)

FOLDER = "content-credentials"
KEY_FILE = "signing-key.pem"
CHAIN_FILE = "certificate-chain.pem"
AI_SOURCE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
AI_COMPOSITE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
#: File suffixes the credentials can be embedded in, with their MIME types.
MIME_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".mp4": "video/mp4",
    ".m4v": "video/x-m4v",
    ".mov": "video/quicktime",
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".flac": "audio/flac",
}
_lock = threading.Lock()


@dataclass(frozen=True)
class Credentials:
    """What a file's active manifest says, read back."""

    generator: str
    actions: list[dict[str, Any]]
    signer: str
    #: "Valid" (intact; the signer is this computer's own, so untrusted elsewhere), "Invalid"...
    state: str

    @property
    def ai_generated(self) -> bool:
        return any(a.get("digitalSourceType") in (AI_SOURCE, AI_COMPOSITE) for a in self.actions)


def mime_type(path: str | os.PathLike[str]) -> str | None:
    return MIME_TYPES.get(Path(path).suffix.lower())


def manifest(tool: str, *, action: str = "c2pa.edited", model: str = "", title: str = "") -> dict[str, Any]:
    """The manifest for a file ``tool`` made (``c2pa.created``) or changed (``c2pa.edited``)."""
    __version__ = _version()
    entry: dict[str, Any] = {
        "action": action,
        "digitalSourceType": AI_SOURCE if action == "c2pa.created" else AI_COMPOSITE,
        "softwareAgent": {"name": f"SnowAI Studio {tool}", "version": __version__},
        "description": f"Made with AI by SnowAI Studio's {tool}" + (f" ({model})" if model else "") + ".",
    }
    if model:
        entry["parameters"] = {"model": model}
    actions = [entry]
    if action != "c2pa.created":  # a manifest starts with its file's creation: this export, then the edit
        created = {k: v for k, v in entry.items() if k not in ("parameters", "description")}
        actions = [{**created, "action": "c2pa.created"}, entry]
    return {
        "claim_generator_info": [{"name": "SnowAI Studio", "version": __version__}],
        "title": title or "SnowAI Studio export",
        "assertions": [{"label": "c2pa.actions", "data": {"actions": actions}}],
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("snowai-studio")
    except PackageNotFoundError:
        return "0"


def _folder() -> Path:
    return paths.config_dir() / FOLDER


def ensure_identity(folder: Path | None = None) -> tuple[bytes, bytes]:
    """This computer's signing key and certificate chain (PEM), made on first use."""
    folder = folder or _folder()
    key_path, chain_path = folder / KEY_FILE, folder / CHAIN_FILE
    with _lock:
        if key_path.is_file() and chain_path.is_file():
            return key_path.read_bytes(), chain_path.read_bytes()
        key, chain = _make_identity()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            from workers.files import write_atomic

            write_atomic(chain_path, chain)
            write_atomic(key_path, key)
            os.chmod(key_path, 0o600)
        except OSError as exc:
            reason = exc.strerror or exc
            raise UserError(f"The content-credentials key could not be saved in {folder} ({reason}).") from exc
        log.info("made this computer's content-credentials key in %s", folder)
        return key, chain


def _make_identity() -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    org = x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SnowAI Studio (this computer)")
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SnowAI Studio local root"), org])
    usage = dict.fromkeys(
        ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement", "encipher_only",
         "decipher_only"), False)  # fmt: skip
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=False, key_cert_sign=True, crl_sign=True, **usage), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SnowAI Studio content credentials"), org])
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(root_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, **usage), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    chain = leaf.public_bytes(pem) + root.public_bytes(pem)
    private = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return private, chain


def _signer(folder: Path | None = None) -> Any:
    import c2pa

    key, chain = ensure_identity(folder)
    return c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, key, None))


def sign_bytes(data: bytes, mime: str, claim: dict[str, Any], *, folder: Path | None = None) -> bytes:
    """``data`` (an encoded file of type ``mime``) with the signed manifest ``claim`` embedded."""
    try:
        import c2pa
    except ImportError as exc:  # pragma: no cover - a dependency of the studio
        raise UserError("Content credentials need the c2pa-python package.") from exc
    signer = _signer(folder)
    builder = c2pa.Builder(json.dumps(claim))
    out = io.BytesIO()
    try:
        builder.sign(signer, mime, io.BytesIO(data), out)
    except Exception as exc:
        raise UserError(f"Content credentials could not be added to this {mime} file ({_short(exc)}).") from exc
    finally:
        builder.close()
        signer.close()
    return out.getvalue()


def sign_file(path: str | os.PathLike[str], claim: dict[str, Any], *, folder: Path | None = None) -> Path:
    """Embed the signed manifest in the file at ``path`` (written to a temporary file, then renamed)."""
    path = Path(path)
    mime = mime_type(path)
    if mime is None:
        raise UserError(f"Content credentials cannot be embedded in {path.suffix or 'this kind of'} files.")
    from workers.files import save_bytes

    signed = sign_bytes(path.read_bytes(), mime, claim, folder=folder)
    save_bytes(path, signed)
    return path


def read_credentials(path: str | os.PathLike[str]) -> Credentials | None:
    """The credentials a file carries, or None when it has none."""
    path = Path(path)
    mime = mime_type(path)
    if mime is None or not path.is_file():
        return None
    import c2pa

    try:
        with path.open("rb") as fh:
            reader = c2pa.Reader(mime, fh)
            try:
                active = reader.get_active_manifest() or {}
                state = reader.get_validation_state() or ""
            finally:
                reader.close()
    except Exception as exc:  # no manifest in the file, or one that cannot be read
        log.debug("no content credentials in %s: %s", path, exc)
        return None
    actions: list[dict[str, Any]] = []
    for assertion in active.get("assertions", []):
        if str(assertion.get("label", "")).startswith("c2pa.actions"):
            actions.extend(assertion.get("data", {}).get("actions", []))
    generator = ", ".join(str(g.get("name", "")) for g in active.get("claim_generator_info", []))
    signer = str(active.get("signature_info", {}).get("common_name", ""))
    return Credentials(generator, actions, signer, state)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]
