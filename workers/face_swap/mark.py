"""The visible and the embedded marks that say a picture was made by the face swap.

Every swapped frame carries a small "AI-generated" label in its bottom-right corner (unless the
user turns it off), and every saved image says in its metadata that it was generated: a PNG text
chunk, JPEG EXIF and a JPEG comment, WebP XMP. Videos get :data:`GENERATED_METADATA` as container
tags. Light module: numpy, OpenCV and Pillow only, so the dock may import it on the UI thread.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from xml.sax.saxutils import escape

import cv2
import numpy as np

from workers.errors import UserError
from workers.files import save_bytes

log = logging.getLogger(__name__)

MARK_TEXT = "AI-generated"
SOFTWARE = "SnowAI Studio"
DESCRIPTION = "AI-generated image: a face in it was swapped by SnowAI Studio face swap."

#: Container tags for swapped videos (mp4/mov/mkv ``comment``/``description``).
GENERATED_METADATA: dict[str, str] = {
    "comment": DESCRIPTION.replace("image", "video", 1),
    "description": DESCRIPTION.replace("image", "video", 1),
    "software": SOFTWARE,
    "ai_generated": "true",
}

#: Formats :func:`save_marked_image` can label, by suffix.
MARKED_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_EXIF_IMAGE_DESCRIPTION = 0x010E
_EXIF_SOFTWARE = 0x0131


def mark_geometry(width: int, height: int) -> tuple[int, int, int, int]:
    """The label's box (x1, y1, x2, y2) for a frame of this size: bottom right, a few % of the frame."""
    scale, thickness, pad = _mark_style(width, height)
    (tw, th), base = cv2.getTextSize(MARK_TEXT, _FONT, scale, thickness)
    box_w, box_h = tw + 2 * pad, th + base + 2 * pad
    margin = max(2, pad)
    x2, y2 = width - margin, height - margin
    return max(0, x2 - box_w), max(0, y2 - box_h), x2, y2


def _mark_style(width: int, height: int) -> tuple[float, int, int]:
    short = max(1, min(width, height))
    # Letters about 2.8 % of the short side, never under 10 px: readable at 320x240 and at 4K.
    text_px = max(10.0, short * 0.028)
    scale = text_px / 22.0  # Hershey simplex capitals are about 22 px tall at scale 1
    thickness = max(1, round(text_px / 14))
    pad = max(3, round(text_px * 0.4))
    return scale, thickness, pad


def draw_mark(bgr: np.ndarray, *, inplace: bool = False) -> np.ndarray:
    """The frame with a small semi-transparent "AI-generated" label in its bottom-right corner.

    Works on BGR, BGRA and greyscale uint8 frames; only the label's corner is touched. Returns a
    copy unless ``inplace`` (the live path draws into the frame it already owns).
    """
    out = bgr if inplace else bgr.copy()
    height, width = out.shape[:2]
    if width < 16 or height < 16:
        return out
    x1, y1, x2, y2 = mark_geometry(width, height)
    scale, thickness, pad = _mark_style(width, height)
    roi = out[y1:y2, x1:x2]
    colour_roi = roi if roi.ndim == 2 else roi[..., :3]
    # A darkened box, then white text at 90 % over it, blended only inside the box.
    panel = (colour_roi.astype(np.float32) * 0.45).astype(np.uint8)
    text = panel.copy()
    (_tw, th), _base = cv2.getTextSize(MARK_TEXT, _FONT, scale, thickness)
    white = 255 if panel.ndim == 2 else (255, 255, 255)
    cv2.putText(text, MARK_TEXT, (pad, pad + th), _FONT, scale, white, thickness, cv2.LINE_AA)
    blended = cv2.addWeighted(text, 0.9, panel, 0.1, 0)
    colour_roi[...] = blended
    if roi.ndim == 3 and roi.shape[2] == 4:
        roi[..., 3] = 255
    return out


def _xmp_packet(description: str) -> bytes:
    text = escape(description)
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/">'
        f"<xmp:CreatorTool>{escape(SOFTWARE)}</xmp:CreatorTool>"
        "<Iptc4xmpExt:DigitalSourceType>"
        "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
        "</Iptc4xmpExt:DigitalSourceType>"
        f'<dc:description><rdf:Alt><rdf:li xml:lang="x-default">{text}</rdf:li></rdf:Alt></dc:description>'
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    ).encode()


def encode_marked_image(bgr: np.ndarray, fmt: str, *, quality: int = 95, description: str = DESCRIPTION) -> bytes:
    """Encode a BGR (or BGRA, or greyscale) image with metadata saying it was generated."""
    from PIL import Image, PngImagePlugin

    if bgr.dtype != np.uint8:
        raise UserError("Only 8-bit images can be saved with the generated-image label.")
    if bgr.ndim == 2:
        image = Image.fromarray(bgr, "L")
    elif bgr.shape[2] == 4:
        image = Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGRA2RGBA), "RGBA")
    else:
        image = Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), "RGB")
    exif = Image.Exif()
    exif[_EXIF_IMAGE_DESCRIPTION] = description
    exif[_EXIF_SOFTWARE] = SOFTWARE
    buffer = io.BytesIO()
    quality = int(min(100, max(1, quality)))
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_text("Comment", description)
        info.add_text("Description", description)
        info.add_text("Software", SOFTWARE)
        image.save(buffer, "PNG", pnginfo=info, compress_level=4)
    elif fmt == "JPEG":
        if image.mode == "RGBA":
            image = image.convert("RGB")
        image.save(buffer, "JPEG", quality=quality, exif=exif.tobytes(), comment=description.encode("utf-8"))
    elif fmt == "WEBP":
        image.save(buffer, "WEBP", quality=quality, xmp=_xmp_packet(description), exif=exif.tobytes())
    elif fmt == "TIFF":
        image.save(buffer, "TIFF", tiffinfo={_EXIF_IMAGE_DESCRIPTION: description, _EXIF_SOFTWARE: SOFTWARE})
    else:
        raise UserError(f"The face swap cannot label {fmt} files; save as PNG, JPEG or WebP.")
    return buffer.getvalue()


def save_marked_image(
    path: str | os.PathLike[str], bgr: np.ndarray, *, quality: int = 95, credentials: dict | None = None
) -> Path:
    """Save a swapped image with metadata saying it was generated (written atomically).

    PNG gets ``Comment``/``Description``/``Software`` text chunks, JPEG an EXIF ImageDescription
    and Software plus a comment segment, WebP an XMP packet and EXIF, TIFF its description tags.
    With ``credentials`` (a :func:`workers.provenance.manifest`), signed Content Credentials are
    embedded too. The visible mark is :func:`draw_mark`'s job (the pipeline draws it when the option is on).
    """
    path = Path(path).expanduser()
    fmt = MARKED_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserError(
            f"{path.name}: save the swapped image as PNG, JPEG or WebP, not '{path.suffix or 'no suffix'}'."
        )
    data = encode_marked_image(bgr, fmt, quality=quality)
    if credentials is not None:
        from workers import provenance

        mime = provenance.mime_type(path)
        try:
            data = provenance.sign_bytes(data, mime, credentials) if mime else data
        except UserError as exc:  # the image is still saved, with its label; the log says why
            log.warning("%s is saved without content credentials: %s", path.name, exc)
    save_bytes(path, data)
    log.info("saved %s with the generated-image label%s", path, " and content credentials" if credentials else "")
    return path


def read_generated_label(path: str | os.PathLike[str]) -> str | None:
    """The generated-image description a file carries (PNG text, JPEG EXIF/comment, WebP XMP), or None."""
    from PIL import Image

    with Image.open(Path(path)) as image:
        info = dict(image.info)
        texts = [info.get("Comment"), info.get("Description"), info.get("comment")]
        exif = image.getexif()
        texts.append(exif.get(_EXIF_IMAGE_DESCRIPTION))
        xmp = info.get("xmp")
    for text in texts:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        if text and "generated" in str(text).lower():
            return str(text)
    if isinstance(xmp, bytes | str):
        raw = xmp.decode("utf-8", "replace") if isinstance(xmp, bytes) else xmp
        if "generated" in raw.lower():
            return DESCRIPTION if DESCRIPTION in raw else raw
    return None
