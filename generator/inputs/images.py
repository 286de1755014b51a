"""User images: decode one file into model input, and check the list of images to attack.

Image policy (what :func:`load_image` does to every picture, in this order):

1. Decode with Pillow, accepting only PNG, JPEG, GIF, BMP and WebP. Animated GIF/WebP/PNG
   files contribute their first frame. Files over ``MAX_IMAGE_PIXELS`` (40 megapixels) are
   refused before decoding, as are files Pillow flags as decompression bombs.
2. Apply the EXIF orientation tag, so a phone photo stands the way it was shot.
3. Flatten transparency onto white (RGBA, LA, palette images with a transparent colour).
4. Convert to the model's channels: greyscale (ITU-R 601 luma, as Pillow's ``L`` mode) for a
   one-channel model, RGB for a three-channel model. Palette and CMYK images are converted by
   Pillow without colour management (embedded ICC profiles are ignored); 16-bit greyscale keeps
   its precision (divided by 65535 instead of 255).
5. Centre-crop to the model's aspect ratio (the largest centred whole-pixel box of ratio W:H,
   at least one pixel wide and tall), then resize to (H, W) with a Lanczos filter, which
   averages over the source pixels when shrinking.
   An image already of size (W, H) is not resampled at all.
6. Return float32 (H, W, C) in [0, 1].

A file that is missing, not an image, corrupt or truncated, or too large raises
:class:`UserError` with one line naming the file.
"""

from __future__ import annotations

import re
import unicodedata
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from generator.errors import UserError, quote_value, shorten, suggest
from generator.inputs.paths import file_problem, shown_path


MAX_IMAGE_PIXELS = 40_000_000
PILLOW_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".gif", ".bmp", ".dib", ".webp"})

_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})


# --- decoding -------------------------------------------------------------------------------

def open_image(path: str | Path, shown: str | None = None) -> Image.Image:
    """Decode the first frame of an image file, EXIF-oriented, fully loaded (no lazy file handle).

    ``shown`` is how messages name the file (default: :func:`shown_path`)."""
    path = Path(path)
    shown = shown_path(shown if shown is not None else path)
    problem = file_problem(path)
    if problem:
        raise UserError(f"image {shown} {problem}")
    if path.stat().st_size == 0:
        raise UserError(f"image {shown} is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=PILLOW_FORMATS) as image:
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise UserError(
                        f"image {shown} is {width}x{height} pixels, over the limit of "
                        f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels; scale it down first")
                image.seek(0)
                image.load()
                oriented = ImageOps.exif_transpose(image)
                # exif_transpose returns a copy when it rotates; make sure we never keep the file open.
                return oriented if oriented is not image else image.copy()
    except UserError:
        raise
    except UnidentifiedImageError:
        raise UserError(f"image {shown} is not a PNG, JPEG, GIF, BMP or WebP image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(f"image {shown} is too large to decode safely (decompression bomb limit)") from None
    except PermissionError:
        raise UserError(f"image {shown} cannot be read (permission denied)") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, MemoryError) as error:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        detail = shorten(detail.replace(str(path), shown), 160)
        raise UserError(f"image {shown} cannot be decoded (corrupt or truncated?): {detail}") from None


def channels_of(image: Image.Image) -> int:
    """1 for greyscale modes, 3 for everything else (colour, palette, CMYK)."""
    if image.mode == "P":
        return 3
    return 1 if image.mode in _GREY_MODES else 3


def infer_input_shape(path: str | Path) -> tuple[int, int, int]:
    """(H, W, C) of an image file after EXIF orientation; C from its mode (1 grey, 3 colour)."""
    image = open_image(path)
    return image.height, image.width, channels_of(image)


def _flatten_alpha(image: Image.Image) -> Image.Image:
    """Composite any transparency onto white; returns a mode without alpha."""
    has_alpha = image.mode in ("RGBA", "LA", "La", "RGBa", "PA") or (
        image.mode in ("P", "L", "RGB") and "transparency" in image.info)
    if not has_alpha:
        return image
    rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _to_model_mode(image: Image.Image, channels: int) -> tuple[Image.Image, float]:
    """Convert to 'L', 'RGB' or (16-bit grey) 'F'; returns the image and the value of full white."""
    if image.mode in _SIXTEEN_BIT_MODES:
        grey = Image.fromarray(np.asarray(image, dtype=np.float32), mode="F")
        if channels == 1:
            return grey, 65535.0
        # No 16-bit RGB in Pillow: reduce to 8 bits for the colour case.
        eight_bit = np.clip(np.round(np.asarray(grey) / 257.0), 0, 255).astype(np.uint8)
        return Image.fromarray(eight_bit, mode="L").convert("RGB"), 255.0
    if image.mode == "F":
        values = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
        grey = Image.fromarray(values, mode="F")
        if channels == 1:
            return grey, 1.0
        return Image.fromarray(np.round(values * 255).astype(np.uint8), mode="L").convert("RGB"), 255.0
    image = _flatten_alpha(image)
    return image.convert("L" if channels == 1 else "RGB"), 255.0


def centre_crop_box(width: int, height: int, target_width: int, target_height: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom): the largest whole-pixel box of the target's aspect ratio centred
    in a (width x height) image, never narrower or shorter than one pixel.

    Whole pixels, so the resize filter never reads the cropped-away margins; at least one pixel,
    so an extreme strip (10000 x 1 for a square model) keeps its middle pixel instead of
    rounding to an empty box that would reach the model as black.
    """
    target_ratio = target_width / target_height
    if width / height > target_ratio:   # wider than the model: keep the full height
        crop_width = min(width, max(1, round(height * target_ratio)))
        left = (width - crop_width) // 2
        return left, 0, left + crop_width, height
    crop_height = min(height, max(1, round(width / target_ratio)))
    top = (height - crop_height) // 2
    return 0, top, width, top + crop_height


def image_to_array(image: Image.Image, input_shape: Sequence[int]) -> np.ndarray:
    """Apply the image policy to a decoded image: (H, W, C) float32 in [0, 1]."""
    height, width, channels = _check_input_shape(input_shape)
    converted, white = _to_model_mode(image, channels)
    box = centre_crop_box(converted.width, converted.height, width, height)
    cropped = converted.crop(box) if box != (0, 0, converted.width, converted.height) else converted
    resized = cropped.resize((width, height), Image.Resampling.LANCZOS)
    pixels = np.asarray(resized, dtype=np.float32) / white
    if pixels.ndim == 2:
        pixels = pixels[..., np.newaxis]
    return np.clip(pixels, 0.0, 1.0).astype(np.float32)


def load_image(path: str | Path, input_shape: Sequence[int], shown: str | None = None) -> np.ndarray:
    """Decode ``path`` and apply the image policy: (H, W, C) float32 in [0, 1]. ``shown`` is how
    messages name the file."""
    return image_to_array(open_image(path, shown), input_shape)


def _check_input_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    try:
        height, width, channels = (int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise UserError(f"input shape must be (height, width, channels), got {input_shape!r}") from None
    if height < 1 or width < 1 or channels not in (1, 3):
        raise UserError(f"input shape must be (height, width, 1 or 3) with positive sizes, got {tuple(input_shape)}")
    return height, width, channels


# --- the list of images to attack -----------------------------------------------------------

_SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
_ENTRY_KEYS = ("path", "label", "title", "caption", "id", "attack")


@dataclass
class ImageEntry:
    """One image to attack, validated.

    ``source`` is the path as the configuration wrote it (for the manifest); ``path`` the
    resolved file; ``index`` the entry's position in the configured list; ``id`` a URL-safe
    slug unique in the list; ``attack`` holds any per-image attack overrides, untouched;
    ``pixels`` the decoded (H, W, C) array when it was requested.
    """

    id: str
    source: str
    path: Path
    index: int
    label: str | None = None
    title: str = ""
    caption: str | None = None
    attack: dict[str, Any] = field(default_factory=dict)
    pixels: np.ndarray | None = field(default=None, repr=False, compare=False)


def slugify(text: str) -> str:
    """Lower-case ASCII letters, digits and single hyphens; 'image' if nothing is left."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug or "image"


class _EntryProblem(Exception):
    pass


def _describe(index: int, raw: Any) -> str:
    if isinstance(raw, dict) and isinstance(raw.get("path"), str):
        return shown_path(raw["path"])
    if isinstance(raw, (str, Path)):
        return shown_path(raw)
    return f"images[{index}]"


def _parse_entry(index: int, raw: Any, class_names: Sequence[str], base_dir: Path) -> ImageEntry:
    where = f"images[{index}]"
    if isinstance(raw, (str, Path)):
        raw = {"path": str(raw)}
    if not isinstance(raw, dict):
        raise _EntryProblem(f"{where}: expected a path or a mapping with 'path', got {type(raw).__name__}")
    source = raw.get("path")
    if not isinstance(source, str) or not source.strip():
        raise _EntryProblem(f"{where}: 'path' is missing or empty")
    shown = shown_path(source)
    path = Path(source).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    # Checked before resolving: resolving a loop of symbolic links raises, and a message must
    # say what is wrong with the file, not how Python failed to follow it.
    problem = file_problem(path)
    if problem:
        raise _EntryProblem(f"{where}: image {shown} {problem}")
    path = path.resolve()
    where = f"{where} ({shown})"
    label = raw.get("label")
    if label is not None:
        if not isinstance(label, str):
            raise _EntryProblem(f"{where}: label must be a class name, got {quote_value(label)}")
        if label not in class_names:
            raise _EntryProblem(
                f"{where}: unknown label {quote_value(label)}{suggest(label, class_names)}; "
                f"classes are: {shorten(', '.join(class_names), 300)}")
    explicit_id = raw.get("id")
    if explicit_id is not None and (not isinstance(explicit_id, str) or not _SLUG_RE.match(explicit_id)):
        raise _EntryProblem(f"{where}: id {quote_value(explicit_id)} must be lower-case letters, digits and hyphens")
    title = raw.get("title")
    caption = raw.get("caption")
    for key, value in (("title", title), ("caption", caption)):
        if value is not None and not isinstance(value, str):
            raise _EntryProblem(f"{where}: {key} must be text, got {quote_value(value)}")
    attack = raw.get("attack") or {}
    if not isinstance(attack, dict):
        raise _EntryProblem(f"{where}: attack overrides must be a mapping, got {quote_value(attack)}")
    for key in raw:
        if key not in _ENTRY_KEYS:
            raise _EntryProblem(f"{where}: unknown key {quote_value(key)}{suggest(str(key), _ENTRY_KEYS)}; "
                                f"allowed: {', '.join(_ENTRY_KEYS)}")
    return ImageEntry(id=explicit_id or "", source=source, path=path, index=index, label=label,
                      title=title or path.stem, caption=caption, attack=dict(attack))


def _walk_image_list(entries: Sequence[Any], class_names: Sequence[str], base_dir: str | Path,
                     input_shape: Sequence[int] | None, stop_on_first: bool
                     ) -> tuple[list[ImageEntry], list[dict[str, str]]]:
    base_dir = Path(base_dir)
    if input_shape is not None:
        _check_input_shape(input_shape)
    accepted: list[ImageEntry] = []
    failures: list[dict[str, str]] = []
    seen_paths: dict[Path, int] = {}
    explicit_ids = {raw.get("id") for raw in entries if isinstance(raw, dict) and isinstance(raw.get("id"), str)}
    used_ids: set[str] = set()

    for index, raw in enumerate(entries):
        try:
            entry = _parse_entry(index, raw, class_names, base_dir)
            if entry.path in seen_paths:
                raise _EntryProblem(f"images[{index}]: {shown_path(entry.source)} is listed twice "
                                    f"(also images[{seen_paths[entry.path]}])")
            if entry.id:
                if entry.id in used_ids:
                    raise _EntryProblem(f"images[{index}] ({shown_path(entry.source)}): "
                                        f"id {quote_value(entry.id)} is used twice")
            else:
                entry.id = _unique_slug(slugify(entry.path.stem), used_ids | explicit_ids)
            if input_shape is not None:
                try:
                    entry.pixels = load_image(entry.path, input_shape, shown=entry.source)
                except UserError as problem:
                    raise _EntryProblem(f"images[{index}]: {problem}") from None
        except (_EntryProblem, UserError) as problem:
            message = str(problem)
            if stop_on_first:
                raise UserError(message) from None
            failures.append({"source": _describe(index, raw), "message": message})
            continue
        seen_paths[entry.path] = index
        used_ids.add(entry.id)
        accepted.append(entry)
    return accepted, failures


def _unique_slug(slug: str, taken: set[str]) -> str:
    if slug not in taken:
        return slug
    number = 2
    while f"{slug}-{number}" in taken:
        number += 1
    return f"{slug}-{number}"


def resolve_image_list(entries: Sequence[Any], class_names: Sequence[str], base_dir: str | Path,
                       input_shape: Sequence[int] | None = None) -> list[ImageEntry]:
    """Validate the configured images; raise :class:`UserError` on the first problem.

    ``entries`` are paths or mappings with ``path`` and optional ``label`` (a class name),
    ``title``, ``caption``, ``id`` and ``attack`` (overrides, passed through). Relative paths
    are taken from ``base_dir``. With ``input_shape`` each image is also decoded into
    ``entry.pixels`` (H, W, C), so undecodable files are found here too.
    """
    accepted, _ = _walk_image_list(entries, class_names, base_dir, input_shape, stop_on_first=True)
    return accepted


def collect_image_list(entries: Sequence[Any], class_names: Sequence[str], base_dir: str | Path,
                       input_shape: Sequence[int] | None = None
                       ) -> tuple[list[ImageEntry], list[dict[str, str]]]:
    """Like :func:`resolve_image_list` but keeps going: (accepted entries, failures).

    Each failure is ``{"source": the path as messages show it (relative to the project), "message":
    one line}``; the first of two duplicate entries is kept. Ids are assigned to accepted entries
    only.
    """
    return _walk_image_list(entries, class_names, base_dir, input_shape, stop_on_first=False)
