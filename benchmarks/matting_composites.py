"""Photos whose true mask is known: subjects cut from scikit-image's sample photos, pasted onto other
backgrounds.

Each subject's mask is derived once, the same way every run: a hand-traced outline of the subject
(in the photo's pixels, checked by eye against the photo), then OpenCV's GrabCut decides every pixel
in a narrow band around that outline (sure subject inside the band, sure background outside), and
the largest connected part is kept. Because the composite is made by pasting the subject with that
very mask (edges softened by a fraction of a pixel), the mask is the exact truth of the composite,
whatever small error the outline has.

- astronaut: Eileen Collins in her suit, with the helmet she holds (the flag, the shuttle model and
  the grey backdrop are background);
- coffee: the cup, the spoon and the saucer (the wooden table is background);
- chelsea: the cat's head (fur edges are soft, so this one is the hardest and the least exact);
- horse: scikit-image's horse silhouette (an exact mask) filled with the fur of the cat photo.

Backgrounds come from other sample photos (the rocket's night launch pad, the Hubble deep field, the
coffee photo's table) and from grey textures tinted in colour (brick, gravel, grass), plus a smooth
studio backdrop.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: Hand-traced outlines (x, y in the photo's pixels) and the width of the band GrabCut decides.
OUTLINES: dict[str, tuple[list[tuple[int, int]], int]] = {
    "astronaut": (
        [(22, 511), (22, 330), (35, 268), (58, 238), (95, 218), (112, 205), (118, 190), (128, 170), (145, 155),
         (170, 148), (180, 140), (177, 125), (163, 110), (155, 85), (160, 55), (182, 24), (232, 13), (272, 20),
         (295, 45), (302, 90), (297, 115), (283, 132), (272, 145), (262, 160), (278, 180), (300, 207), (310, 232),
         (325, 242), (345, 270), (357, 300), (362, 332), (400, 330), (430, 328), (470, 345), (494, 380),
         (503, 440), (505, 511)],
        7,
    ),
    "coffee": (
        [(78, 240), (85, 190), (100, 150), (125, 115), (160, 90), (176, 85), (174, 70), (180, 50), (200, 33),
         (235, 22), (280, 19), (325, 22), (365, 32), (392, 50), (402, 65), (408, 66), (420, 68), (425, 80),
         (418, 100), (413, 108), (440, 125), (465, 160), (478, 210), (472, 270), (440, 320), (390, 360),
         (320, 385), (260, 390), (200, 380), (140, 350), (100, 300)],
        6,
    ),
    "chelsea": (
        [(0, 299), (0, 160), (15, 130), (25, 100), (30, 60), (38, 25), (45, 0), (392, 0), (380, 40), (362, 80),
         (362, 130), (355, 170), (342, 205), (330, 240), (322, 270), (320, 299)],
        10,
    ),
}

#: Which backgrounds each subject is pasted onto (never its own).
PAIRS = {
    "astronaut": ("launch pad", "brick", "studio"),
    "coffee": ("gravel", "deep field", "studio"),
    "chelsea": ("grass", "table", "brick"),
    "horse": ("grass", "deep field"),
}


@dataclass
class Composite:
    name: str  # "astronaut on brick"
    bgr: np.ndarray
    truth: np.ndarray  # uint8, 255 on the subject


def _sample(name: str) -> np.ndarray:
    from skimage import data

    image = getattr(data, name)()
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2BGR)


def traced_mask(image: np.ndarray, outline: list[tuple[int, int]], band: int) -> np.ndarray:
    """GrabCut in a band of ``band`` pixels either side of ``outline``; the largest part, holes filled."""
    h, w = image.shape[:2]
    inside = np.zeros((h, w), np.uint8)
    cv2.fillPoly(inside, [np.array(outline, np.int32)], 255)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    sure = cv2.erode(inside, disc, borderType=cv2.BORDER_REPLICATE)
    near = cv2.dilate(inside, disc)
    labels = np.full((h, w), cv2.GC_BGD, np.uint8)
    labels[near > 0] = cv2.GC_PR_BGD
    labels[inside > 0] = cv2.GC_PR_FGD
    labels[sure > 0] = cv2.GC_FGD
    cv2.setRNGSeed(0)
    cv2.grabCut(image, labels, None, np.zeros((1, 65)), np.zeros((1, 65)), 10, cv2.GC_INIT_WITH_MASK)
    mask = np.where((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD), 255, 0).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    count, parts, stats, _ = cv2.connectedComponentsWithStats(mask)
    if count > 1:
        mask = np.where(parts == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA])), 255, 0).astype(np.uint8)
    holes = cv2.bitwise_not(mask)
    count, parts, stats, _ = cv2.connectedComponentsWithStats(holes)
    for k in range(1, count):
        x, y, bw, bh, _ = stats[k]
        if x > 0 and y > 0 and x + bw < w and y + bh < h:
            mask[parts == k] = 255
    return mask


def subjects() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each subject's photo and its mask."""
    found = {}
    for name, (outline, band) in OUTLINES.items():
        image = _sample(name)
        found[name] = (image, traced_mask(image, outline, band))
    from skimage import data

    horse = np.where(data.horse(), 0, 255).astype(np.uint8)  # the silhouette is False, the rest True
    fur = _cover(_sample("chelsea")[0:95, 120:360], *horse.shape)  # the striped fur of the forehead
    found["horse"] = (fur, horse)
    return found


def _cover(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` scaled to cover height x width, centred and cropped."""
    h, w = image.shape[:2]
    scale = max(height / h, width / w)
    big = cv2.resize(image, (max(width, round(w * scale)), max(height, round(h * scale))),
                     interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    y0 = (big.shape[0] - height) // 2
    x0 = (big.shape[1] - width) // 2
    return np.ascontiguousarray(big[y0 : y0 + height, x0 : x0 + width])


def _tinted(name: str, colour: tuple[int, int, int]) -> np.ndarray:
    grey = _sample(name)[..., 0].astype(np.float32) / 255.0
    return np.clip(grey[..., None] * np.array(colour, np.float32), 0, 255).astype(np.uint8)


def background(name: str, height: int, width: int) -> np.ndarray:
    if name == "studio":
        y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
        x = np.linspace(-1, 1, width, dtype=np.float32)[None, :, None]
        top, bottom = np.array((150, 120, 90), np.float32), np.array((60, 45, 35), np.float32)  # BGR
        backdrop = top * (1 - y) + bottom * y
        backdrop = backdrop * (1 - 0.25 * x * x)
        return np.clip(np.broadcast_to(backdrop, (height, width, 3)), 0, 255).astype(np.uint8)
    source = {
        "launch pad": lambda: _sample("rocket"),
        "deep field": lambda: _sample("hubble_deep_field"),
        "table": lambda: _sample("coffee")[:, 430:],
        "brick": lambda: _tinted("brick", (120, 150, 230)),
        "gravel": lambda: _tinted("gravel", (200, 210, 220)),
        "grass": lambda: _tinted("grass", (90, 200, 120)),
    }[name]()
    return _cover(source, height, width)


def composites() -> list[Composite]:
    """Every subject on each of its backgrounds, with the true mask."""
    made = []
    for name, (image, mask) in subjects().items():
        h, w = mask.shape
        alpha = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), 0.7)[..., None]
        for where in PAIRS[name]:
            back = background(where, h, w).astype(np.float32)
            pasted = image.astype(np.float32) * alpha + back * (1 - alpha)
            made.append(Composite(f"{name} on {where}", np.clip(pasted + 0.5, 0, 255).astype(np.uint8), mask))
    return made
