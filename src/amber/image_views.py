"""Views of an image that let PDQ catch altered copies.

PDQ survives resizing, re-encoding and colour changes, and dihedral matching covers
quarter turns, but it is brittle to geometry: on amber's benchmark photos a crop of 3%
from one side, a shift of 2% of the width or a turn of 2° moves most hashes past the
match threshold of 31 bits, while hashes of different photos stay more than 70 bits
apart. So amber hashes *views*. A query matches a bank entry when any query view, in
any of the 8 dihedral orientations, is within the bank's threshold of any bank view.

- ``query_views`` undoes what can be undone from the copy alone: solid borders,
  letterbox bars, meme caption bars with their text, screenshot chrome and the blurred
  backdrop of a story (``"trimmed"``), and a small turn whose uncovered corners were
  filled with one colour (``"straightened"``).
- ``bank_views`` covers what cannot be undone, because pixels were lost or the copy
  gives no sign of the edit: a mirror image (PDQ's dihedral shortcut is 6-30 bits off
  the hash of actually mirrored pixels), central crops from 95% to 65%, and the photo
  turned 5° either way and cropped to fill (a photo editor's "straighten").

Crops that are off centre are not covered: PDQ tolerates a shift of about 1% of a side,
so no handful of views can cover them. ``benchmarks/robustness.py`` measures all of this
(``docs/robustness.md``).

Both functions are pure and deterministic: the same pixels give the same views, so a
hash stored at bank time can be computed again. View names are stable lowercase
strings, stored with each hash as its variant (see ``SignalValue.variant``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

#: No view derived here is smaller than this on either side: PDQ needs some pixels.
MIN_VIEW_SIDE = 32

#: Central crops kept for banked images (share of each side). PDQ tolerates about ±2%
#: of scale around each, so these cover zoomed copies from about 97% to 63%.
BANK_CROPS = (0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65)

#: Turns (degrees, counter-clockwise) banked as straightened crops. A copy turned and
#: cropped to fill its frame has no corners to detect; PDQ tolerates about ±1° around each.
BANK_TURNS = (-5.0, 5.0)

#: Bars and turns are found on a copy at most this size (longest side).
_WORK_SIDE = 512

#: A pixel belongs to a bar when every channel is within this of the bar's colour.
#: Wide enough for JPEG noise at quality 30, narrow enough to stop at most photo content.
_COLOUR_TOLERANCE = 14

#: Placing a cut to the pixel, JPEG's ringing next to the edge still counts as bar.
_CUT_TOLERANCE = 40

#: A row is part of a bar when at least this share of it has the bar's colour; the rest
#: may be caption text, icons or the ringing JPEG leaves around them.
_BAR_SHARE = 0.5

#: The outermost row of a bar is plain: almost all of it has the bar's colour.
_EDGE_SHARE = 0.9

#: Rows of text in a bar can fall under ``_BAR_SHARE``; a run of such rows up to this
#: share of the side is bridged when bar rows follow it.
_TEXT_GAP = 0.06

#: A bar ends at a step: the share of bar-coloured pixels falls at least this much from
#: the last bar rows to the first photo rows. A smooth sky or a vignette fades instead.
_EDGE_STEP = 0.45

#: A blurred backdrop is smooth: along its rows brightness (of 255) changes by less than
#: this from pixel to pixel on average, where photo rows, even skies, change more.
_SMOOTH = 2.5

#: The photo's edge on a backdrop: brightness jumps by more than ``_STEP_LEVEL`` from one
#: row to the next across at least ``_STEP_SHARE`` of the width.
_STEP_LEVEL = 8
_STEP_SHARE = 0.6

#: Bars never cover more than this share of a side in one pass.
_MAX_BAR = 0.8

#: A trim smaller than this share of a side is not worth a view: PDQ absorbs it.
_MIN_TRIM = 0.01

#: Turns smaller than this (degrees) are absorbed by PDQ; larger than ``_MAX_TURN`` are
#: not small turns.
_MIN_TURN = 0.6
_MAX_TURN = 20.0

_Edges = tuple[int, int, int, int]
_SIDES = ("top", "bottom", "left", "right")


@dataclass(frozen=True, slots=True)
class Box:
    """A rectangle of pixels: ``left``/``top`` inclusive, ``right``/``bottom`` exclusive."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        """Width in pixels."""
        return self.right - self.left

    @property
    def height(self) -> int:
        """Height in pixels."""
        return self.bottom - self.top

    def as_tuple(self) -> tuple[int, int, int, int]:
        """``(left, top, right, bottom)``, the form ``PIL.Image.crop`` takes."""
        return (self.left, self.top, self.right, self.bottom)


def query_views(image: Image.Image) -> list[tuple[str, Image.Image]]:
    """Views of a query image to hash: ``"original"`` first, then views that undo edits.

    ``"trimmed"``: borders, letterbox bars, caption bars, screenshot chrome or a story's
    blurred backdrop cut away. ``"straightened"``: a copy turned a little, with filled
    corners, turned back. Each appears only when detected, so most queries have one view.
    """
    return [("original", image), *_restored(image)]


def bank_views(image: Image.Image) -> list[tuple[str, Image.Image]]:
    """Views of a banked image to hash: ``"original"`` first, at most 12 in all.

    ``"mirror"``; ``"trimmed"`` or ``"straightened"`` when the banked image is a meme, a
    screenshot or a turned copy (as in ``query_views``), so that the bare photo matches
    it; then, cut from the photo (that view when there is one, else the image):
    ``"crop95"`` ... ``"crop65"``, central crops (``BANK_CROPS``), and ``"turn-5"`` and
    ``"turn+5"``, turned and cropped to fill (``BANK_TURNS``). An image smaller than
    ``MIN_VIEW_SIDE`` has only its original.
    """
    views: list[tuple[str, Image.Image]] = [("original", image)]
    if min(image.size) < MIN_VIEW_SIDE:
        return views
    views.append(("mirror", ImageOps.mirror(image)))
    # One restored view at most: a straightened photo is already cut out of its fill.
    restored = _restored(image)[-1:]
    views.extend(restored)
    photo = restored[0][1] if restored else image
    for scale in BANK_CROPS:
        crop = _central_crop(photo, scale)
        if crop is not None:
            views.append((f"crop{round(scale * 100)}", crop))
    for degrees in BANK_TURNS:
        turned = _turn_and_fill(photo, degrees)
        if turned is not None:
            views.append((f"turn{degrees:+.0f}", turned))
    return views


def content_box(image: Image.Image) -> Box | None:
    """Where the photo is inside bars or a blurred backdrop; ``None`` when there are none.

    Each side is peeled repeatedly, so nested chrome (a status bar above an app header
    above the photo) comes off in turn. Bars are found on a copy at most ``_WORK_SIDE``
    on its longest side, then each cut is placed to the pixel on ``image`` itself: PDQ
    notices a cut that is 1% off. ``None`` also when the trim is too small to matter or
    would leave less than ``MIN_VIEW_SIDE`` on a side.
    """
    width, height = image.size
    small = _working_copy(image)
    found = _peel(_pixels(small).astype(np.int16))
    if found is None:
        return None
    rough, peeled = found
    factor_x, factor_y = width / small.width, height / small.height
    box = (
        round(rough[0] * factor_x),
        round(rough[1] * factor_y),
        round(rough[2] * factor_x),
        round(rough[3] * factor_y),
    )
    pixels = _pixels(image).astype(np.int16)
    reach = math.ceil(max(factor_x, factor_y)) + 1
    for side, solid in peeled.items():
        box = (_place_cut if solid else _place_step)(pixels, box, side, reach)
    left, top, right, bottom = box
    trims = (top / height, 1 - bottom / height, left / width, 1 - right / width)
    if max(trims) < _MIN_TRIM or min(right - left, bottom - top) < MIN_VIEW_SIDE:
        return None
    return Box(left=left, top=top, right=right, bottom=bottom)


def straighten(image: Image.Image) -> Image.Image | None:
    """Turn back a copy that was turned a little with its corners filled in one colour.

    Both common ways of turning are undone: inside the photo's own frame (its corners
    are cut off; they are painted back from their neighbours) and in a frame grown to
    hold the whole photo. ``None`` when the image does not look turned: no fill of one
    colour in all four corners, edges that are not straight, or a turn outside
    ``_MIN_TURN``..``_MAX_TURN`` degrees.
    """
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    found = _turn_angle(_pixels(_working_copy(rgb)))
    if found is None:
        return None
    degrees, fill = found
    back = rgb.rotate(-degrees, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=fill)
    box = _photo_frame(_pixels(rgb), fill, degrees, back.size)
    if min(box[2] - box[0], box[3] - box[1]) < MIN_VIEW_SIDE:
        return None
    # Which pixels of the turned-back image the copy's frame covered at all.
    frame = Image.new("L", rgb.size, 255).rotate(
        -degrees, resample=Image.Resampling.NEAREST, expand=True, fillcolor=0
    )
    missing = np.asarray(frame)[box[1] : box[3], box[0] : box[2]] == 0
    return _fill_missing(back.crop(box), missing)


# --- trimming -------------------------------------------------------------------------


def _peel(pixels: np.ndarray) -> tuple[_Edges, dict[str, bool]] | None:
    """The box inside the bars of ``pixels`` (int16), and for each side peeled, whether
    its innermost bar was solid (``True``) or a blurred backdrop (``False``)."""
    height, width = pixels.shape[:2]
    box: _Edges = (0, 0, width, height)
    peeled: dict[str, bool] = {}
    for _ in range(8):
        before = box
        for side in _SIDES:
            rows = _rows_from(pixels, box, side)
            depth = _bar_depth(rows)
            solid = depth > 0
            if not solid:
                depth = _backdrop_depth(rows)
            if depth:
                box = _move(box, side, depth)
                peeled[side] = solid
        if box == before:
            break
    left, top, right, bottom = box
    trims = (top / height, 1 - bottom / height, left / width, 1 - right / width)
    if max(trims) < _MIN_TRIM:
        return None
    return box, peeled


def _bar_depth(rows: np.ndarray) -> int:
    """How many leading rows of ``rows`` (n, width, 3; int16) are a solid bar.

    The depth is 0 when the outermost row is not plain, or when the share of the bar's
    colour fades away instead of dropping at a clear edge (a sky, a vignette).
    """
    count, width = rows.shape[:2]
    if count < 8 or width < 8:
        return 0
    colour = np.median(rows[0], axis=0)
    if _colour_share(rows[:1], colour)[0] < _EDGE_SHARE:
        return 0
    limit = int(count * _MAX_BAR)
    share = _colour_share(rows[: limit + 3], colour)
    gap_allowed = max(3, round(count * _TEXT_GAP))
    # Each run of bar rows may be where the bar ends; short gaps (text) are bridged.
    ends: list[int] = []
    gap = 0
    for index in range(limit):
        if share[index] >= _BAR_SHARE:
            if gap or not ends:
                ends.append(index + 1)
            else:
                ends[-1] = index + 1
            gap = 0
        else:
            gap += 1
            if gap > gap_allowed:
                break
    # The deepest end at a clear edge wins.
    for depth in reversed(ends):
        if depth >= limit:
            continue
        inside = float(share[max(0, depth - 3) : depth].mean())
        outside = float(share[depth : depth + 3].mean())
        if inside - outside >= _EDGE_STEP and outside <= _BAR_SHARE:
            return depth
    return 0


def _backdrop_depth(rows: np.ndarray) -> int:
    """How many leading rows of ``rows`` (n, width, 3; int16) are a blurred backdrop.

    Stories and short-video reposts set the photo on a blurred, enlarged copy of itself:
    rows that are smooth along their length, ending at a step (the photo's straight
    edge) across most of the width. A smooth sky fades into what is under it instead.
    """
    count, width = rows.shape[:2]
    if count < 16 or width < 16:
        return 0
    if _roughness(_luma(rows[:1]))[0] > _SMOOTH:
        return 0  # the common case, a photo up to its edge, decided on one row
    limit = int(count * _MAX_BAR)
    luma = _luma(rows[: limit + 1])
    rough = _roughness(luma)
    steps = (np.abs(np.diff(luma, axis=0)) > _STEP_LEVEL).mean(axis=1)
    for index in range(limit):
        if rough[index] > _SMOOTH:
            return 0
        if steps[index] >= _STEP_SHARE:
            depth = index + 1
            return depth if depth >= max(3, 2 * _MIN_TRIM * count) else 0
    return 0


def _place_cut(pixels: np.ndarray, box: _Edges, side: str, reach: int) -> _Edges:
    """``box`` with its cut on ``side`` moved to the last bar row within ``reach``.

    The bar's colour is read ``reach`` rows outside the cut, where the bar surely is;
    when that row is not plain, the cut stays where it is.
    """
    window = _window(pixels, box, side, reach)
    if window is None:
        return box
    widened, rows = window
    colour = np.median(rows[0], axis=0)
    if _colour_share(rows[:1], colour)[0] < _EDGE_SHARE:
        return box
    bar = np.flatnonzero(_colour_share(rows, colour, _CUT_TOLERANCE) >= _BAR_SHARE)
    return _move(widened, side, int(bar[-1]) + 1 if bar.size else 0)


def _place_step(pixels: np.ndarray, box: _Edges, side: str, reach: int) -> _Edges:
    """``box`` with its cut on ``side`` moved to the sharpest step within ``reach``."""
    window = _window(pixels, box, side, reach)
    if window is None:
        return box
    widened, rows = window
    steps = (np.abs(np.diff(_luma(rows), axis=0)) > _STEP_LEVEL).mean(axis=1)
    return _move(widened, side, int(np.argmax(steps)) + 1)


def _window(
    pixels: np.ndarray, box: _Edges, side: str, reach: int
) -> tuple[_Edges, np.ndarray] | None:
    """``box`` widened by up to ``reach`` on ``side``, and the rows within ``reach`` of
    its cut on either side (seen from ``side``); ``None`` when there is no room."""
    height, width = pixels.shape[:2]
    room = {"top": box[1], "bottom": height - box[3], "left": box[0], "right": width - box[2]}
    outside = min(reach, room[side])
    widened = _move(box, side, -outside)
    rows = _rows_from(pixels, widened, side)[: outside + reach + 1]
    if outside == 0 or rows.shape[0] < 2 or rows.shape[1] == 0:
        return None
    return widened, rows


def _rows_from(pixels: np.ndarray, box: _Edges, side: str) -> np.ndarray:
    """The pixels inside ``box`` as rows seen from ``side``: row 0 is the outermost."""
    left, top, right, bottom = box
    region = pixels[top:bottom, left:right]
    if side == "top":
        return region
    if side == "bottom":
        return region[::-1]
    if side == "left":
        return region.transpose(1, 0, 2)
    return region.transpose(1, 0, 2)[::-1]


def _move(box: _Edges, side: str, depth: int) -> _Edges:
    """``box`` with ``side`` moved ``depth`` pixels inwards (outwards when negative)."""
    left, top, right, bottom = box
    if side == "top":
        return (left, top + depth, right, bottom)
    if side == "bottom":
        return (left, top, right, bottom - depth)
    if side == "left":
        return (left + depth, top, right, bottom)
    return (left, top, right - depth, bottom)


def _colour_share(
    rows: np.ndarray, colour: np.ndarray, tolerance: int = _COLOUR_TOLERANCE
) -> np.ndarray:
    """For each row, the share of its pixels within ``tolerance`` of ``colour``."""
    return np.asarray(_near(rows, colour, tolerance).mean(axis=1))


def _near(pixels: np.ndarray, colour: np.ndarray, tolerance: int = _COLOUR_TOLERANCE) -> np.ndarray:
    """Which pixels of ``pixels`` (..., 3) are within ``tolerance`` of ``colour``.

    Channel by channel: numpy reduces a trailing axis of 3 an order of magnitude slower.
    """
    near = np.abs(pixels[..., 0] - colour[0]) <= tolerance
    for channel in (1, 2):
        near &= np.abs(pixels[..., channel] - colour[channel]) <= tolerance
    return np.asarray(near)


def _luma(rows: np.ndarray) -> np.ndarray:
    """Brightness (ITU-R BT.601 weights) of RGB ``rows``, as float32."""
    weights = np.asarray([0.299, 0.587, 0.114], dtype=np.float32)
    return np.asarray(rows.astype(np.float32) @ weights)


def _roughness(luma: np.ndarray) -> np.ndarray:
    """For each row of ``luma``, the mean brightness change from one pixel to the next."""
    return np.asarray(np.abs(np.diff(luma, axis=1)).mean(axis=1))


# --- straightening --------------------------------------------------------------------


def _turn_angle(pixels: np.ndarray) -> tuple[float, tuple[int, int, int]] | None:
    """The counter-clockwise turn (degrees) and the fill colour of a turned copy, if any."""
    height, width = pixels.shape[:2]
    if height < MIN_VIEW_SIDE or width < MIN_VIEW_SIDE:
        return None
    corners = np.stack(
        [
            np.median(block.reshape(-1, 3), axis=0)
            for block in (pixels[:2, :2], pixels[:2, -2:], pixels[-2:, :2], pixels[-2:, -2:])
        ]
    )
    fill = np.median(corners, axis=0)
    if np.abs(corners - fill).max() > _COLOUR_TOLERANCE:
        return None
    content = ~_near(pixels.astype(np.int16), fill)
    # Where the photo starts, seen from each side. A counter-clockwise turn makes the
    # left and right edges lean one way (x grows with y) and the top and bottom edges
    # the other (y falls as x grows): signs are flipped so that all four agree.
    slopes = np.concatenate(
        [
            _edge_slopes(content),
            -_edge_slopes(content[:, ::-1]),
            -_edge_slopes(content.T),
            _edge_slopes(content.T[:, ::-1]),
        ]
    )
    angles = np.degrees(np.arctan(slopes))
    angles = angles[np.abs(angles) <= _MAX_TURN + 5]
    if angles.size < 16:
        return None
    agreeing = angles[np.abs(angles - np.median(angles)) <= 1.0]
    if agreeing.size < 0.5 * angles.size:
        return None
    degrees = float(np.mean(agreeing))
    if not _MIN_TURN <= abs(degrees) <= _MAX_TURN:
        return None
    return degrees, (int(fill[0]), int(fill[1]), int(fill[2]))


def _edge_slopes(content: np.ndarray) -> np.ndarray:
    """Slopes of the straight runs of where content starts along the rows of ``content``.

    ``content`` is a bool grid. Only rows where the content starts inside the image,
    not at its edge, count: those are where a turned photo's edge crosses a filled
    corner. Three content pixels in a row start the photo; a lone speck of noise does
    not. The starts are split into runs that move at most 2 pixels from row to row (an
    edge steeper than that is split into single rows and dropped); each run long
    enough gives slopes between rows half its length apart, so that whole-pixel steps
    do not limit the precision.
    """
    rows, cols = content.shape
    run = content[:, :-2] & content[:, 1:-1] & content[:, 2:]
    start = np.where(run.any(axis=1), run.argmax(axis=1), -1)
    index = np.flatnonzero((start > 0) & (start < cols // 2))
    if index.size < 2:
        return np.empty(0)
    jumps = (np.diff(index) > 1) | (np.abs(np.diff(start[index])) > 2)
    slopes = [np.empty(0)]
    for segment in np.split(index, np.flatnonzero(jumps) + 1):
        if segment.size < max(8, rows // 10):
            continue
        half = segment.size // 2
        x = start[segment].astype(np.float64)
        slopes.append((x[half:] - x[: segment.size - half]) / half)
    return np.concatenate(slopes)


def _photo_frame(
    pixels: np.ndarray, fill: tuple[int, int, int], degrees: float, size: tuple[int, int]
) -> _Edges:
    """Where the photo lies, centred, in the turned-back image of ``size``.

    Turned inside its own frame, the photo keeps the frame's size; turned in a frame
    grown to hold it, the copy's sides are almost all fill, and the photo's size follows
    from the frame's and the angle.
    """
    height, width = pixels.shape[:2]
    sides = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    grown = float(_near(sides.astype(np.int16), np.asarray(fill)).mean()) > 0.9
    if grown:
        radians = math.radians(abs(degrees))
        cos, sin = math.cos(radians), math.sin(radians)
        det = cos * cos - sin * sin
        width, height = (
            round((width * cos - height * sin) / det),
            round((height * cos - width * sin) / det),
        )
    left, top = (size[0] - width) // 2, (size[1] - height) // 2
    return (max(0, left), max(0, top), min(size[0], left + width), min(size[1], top + height))


def _fill_missing(image: Image.Image, missing: np.ndarray) -> Image.Image:
    """``image`` with the pixels marked in ``missing`` painted from their neighbours.

    A copy turned inside its own frame loses its corners; turned back, they are wedges of
    fill that PDQ would see as dark (or light) blocks. They are painted with the photo's
    colours averaged over ever coarser cells (normalised box filtering): a smooth guess
    at what PDQ's 64x64 view of the lost corners held.
    """
    if not missing.any():
        return image
    width, height = image.size
    # A quarter of the size is enough: the paint is smooth at that scale anyway.
    size = (max(1, width // 4), max(1, height // 4))
    known = _shrink((~missing).astype(np.float32), size)
    kept = np.asarray(image, dtype=np.float32) * (~missing)[..., None]
    sums = np.stack([_shrink(kept[..., channel], size) for channel in range(3)], axis=-1)
    paint = sums / np.maximum(known, 1e-6)[..., None]
    todo = known < 0.5
    for factor in (4, 16):
        if not todo.any():
            break
        cell = (max(1, size[0] // factor), max(1, size[1] // factor))
        weight = _spread(_shrink(known, cell), size)
        ready = todo & (weight > 0.05)
        for channel in range(3):
            coarse = _spread(_shrink(sums[..., channel], cell), size)
            paint[..., channel][ready] = coarse[ready] / weight[ready]
        todo &= ~ready
    painted = Image.fromarray(np.clip(paint, 0, 255).astype(np.uint8)).resize(
        (width, height), Image.Resampling.BILINEAR
    )
    out = np.where(missing[..., None], np.asarray(painted), np.asarray(image))
    return Image.fromarray(out.astype(np.uint8))


def _shrink(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``values`` (2-D) averaged over cells down to ``size`` (width, height)."""
    small = Image.fromarray(values.astype(np.float32), mode="F")
    return np.asarray(small.resize(size, Image.Resampling.BOX))


def _spread(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``values`` (2-D) enlarged smoothly to ``size`` (width, height)."""
    big = Image.fromarray(values.astype(np.float32), mode="F")
    return np.asarray(big.resize(size, Image.Resampling.BILINEAR))


# --- bank views and shared helpers ----------------------------------------------------


def _restored(image: Image.Image) -> list[tuple[str, Image.Image]]:
    """The ``"trimmed"`` and ``"straightened"`` views of ``image`` that apply."""
    views: list[tuple[str, Image.Image]] = []
    box = content_box(image)
    if box is not None:
        views.append(("trimmed", image.crop(box.as_tuple())))
    straight = straighten(image)
    if straight is not None:
        views.append(("straightened", straight))
    return views


def _central_crop(image: Image.Image, scale: float) -> Image.Image | None:
    """The central ``scale`` share of each side of ``image``; ``None`` if too small."""
    width, height = image.size
    crop_w, crop_h = round(width * scale), round(height * scale)
    if crop_w < MIN_VIEW_SIDE or crop_h < MIN_VIEW_SIDE:
        return None
    left, top = (width - crop_w) // 2, (height - crop_h) // 2
    return image.crop((left, top, left + crop_w, top + crop_h))


def _turn_and_fill(image: Image.Image, degrees: float) -> Image.Image | None:
    """``image`` turned counter-clockwise by ``degrees`` and cropped to fill its frame.

    The crop is the largest centred rectangle of the image's proportions that holds no
    uncovered corner, as a photo editor's "straighten" tool makes it.
    """
    width, height = image.size
    radians = math.radians(abs(degrees))
    cos, sin = math.cos(radians), math.sin(radians)
    # The centred (s*w, s*h) rectangle fits inside the turned photo for this s.
    scale = min(width / (width * cos + height * sin), height / (width * sin + height * cos))
    return _central_crop(image.convert("RGB").rotate(degrees, Image.Resampling.BICUBIC), scale)


def _working_copy(image: Image.Image) -> Image.Image:
    """``image`` reduced to at most ``_WORK_SIDE`` on its longest side (box filter)."""
    longest = max(image.size)
    if longest <= _WORK_SIDE:
        return image
    factor = _WORK_SIDE / longest
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return image.resize(size, Image.Resampling.BOX)


def _pixels(image: Image.Image) -> np.ndarray:
    """The image as an RGB uint8 array (height, width, 3)."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    return np.asarray(rgb)
