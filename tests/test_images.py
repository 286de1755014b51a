"""The image policy (decode, orient, flatten, convert, crop, resize) and the image list checks."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from generator.inputs import images
from generator.errors import UserError
from generator.inputs.images import (
    collect_image_list, infer_input_shape, load_image, resolve_image_list, slugify,
)


def save(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return path


# --- decoding and conversion ----------------------------------------------------------------

def test_png_of_model_size_is_pixel_over_255_exactly(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    path = save(Image.fromarray(pixels), tmp_path / "a.png")
    x = load_image(path, (5, 7, 3))
    assert x.dtype == np.float32 and x.shape == (5, 7, 3)
    np.testing.assert_array_equal(x, pixels.astype(np.float32) / 255)


def test_transparent_pixels_become_white(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 255            # red ...
    rgba[:, :2, 3] = 255          # ... opaque on the left, fully transparent on the right
    path = save(Image.fromarray(rgba, "RGBA"), tmp_path / "t.png")
    x = load_image(path, (4, 4, 3))
    np.testing.assert_allclose(x[:, :2], np.broadcast_to([1.0, 0.0, 0.0], (4, 2, 3)))
    np.testing.assert_allclose(x[:, 2:], 1.0)


def test_gif_uses_first_frame_and_transparency_is_white(tmp_path):
    first = Image.new("P", (6, 6), 1)
    first.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * (253 * 3))
    first.paste(2, (0, 0, 3, 6))   # left half blue (index 2), right half red (index 1)
    second = Image.new("P", (6, 6), 0)
    second.putpalette(first.getpalette())
    path = tmp_path / "anim.gif"
    first.save(path, save_all=True, append_images=[second], transparency=1, duration=100, disposal=2)
    x = load_image(path, (6, 6, 3))
    np.testing.assert_allclose(x[:, :3], np.broadcast_to([0.0, 0.0, 1.0], (6, 3, 3)))
    np.testing.assert_allclose(x[:, 3:], 1.0)   # index 1 was the transparent colour


def test_grey_image_to_rgb_model_replicates_channels_and_rgb_to_grey_uses_luma(tmp_path):
    grey = save(Image.fromarray(np.full((3, 3), 100, np.uint8), "L"), tmp_path / "g.png")
    x = load_image(grey, (3, 3, 3))
    np.testing.assert_allclose(x, 100 / 255)
    colour = save(Image.new("RGB", (3, 3), (255, 0, 0)), tmp_path / "red.png")
    y = load_image(colour, (3, 3, 1))
    assert y.shape == (3, 3, 1)
    np.testing.assert_allclose(y, round(255 * 299 / 1000) / 255, atol=1 / 255)


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path):
    path = save(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), tmp_path / "cmyk.jpg", quality=95)
    x = load_image(path, (16, 16, 3))
    assert x.shape == (16, 16, 3)
    np.testing.assert_allclose(x.mean(axis=(0, 1)), [1.0, 0.0, 0.0], atol=0.05)


def test_sixteen_bit_grey_png_keeps_precision(tmp_path):
    values = np.array([[0, 1000], [40000, 65535]], dtype=np.uint16)
    path = save(Image.fromarray(values), tmp_path / "deep.png")
    x = load_image(path, (2, 2, 1))
    np.testing.assert_allclose(x[..., 0], values / 65535, atol=1e-6)
    assert infer_input_shape(path) == (2, 2, 1)


def test_bmp_and_lossless_webp_decode(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    for name, kwargs in (("a.bmp", {}), ("a.webp", {"lossless": True})):
        path = save(Image.fromarray(pixels), tmp_path / name, **kwargs)
        np.testing.assert_array_equal(load_image(path, (8, 8, 3)), pixels / np.float32(255))


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((20, 40, 3), dtype=np.uint8)   # 40 wide, 20 tall
    stored[:, :20] = (255, 0, 0)                      # left half red
    stored[:, 20:] = (0, 0, 255)                      # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6                                  # "rotate 90 degrees clockwise to display"
    path = save(Image.fromarray(stored), tmp_path / "phone.jpg", exif=exif, quality=95)
    assert infer_input_shape(path) == (40, 20, 3)
    x = load_image(path, (40, 20, 3))
    np.testing.assert_allclose(x[:15].mean(axis=(0, 1)), [1, 0, 0], atol=0.05)   # red on top
    np.testing.assert_allclose(x[25:].mean(axis=(0, 1)), [0, 0, 1], atol=0.05)  # blue below


def test_centre_crop_to_model_aspect_ratio(tmp_path):
    strip = np.zeros((20, 60, 3), dtype=np.uint8)
    strip[:, :20] = (255, 0, 0)
    strip[:, 20:40] = (0, 255, 0)
    strip[:, 40:] = (0, 0, 255)
    path = save(Image.fromarray(strip), tmp_path / "strip.png")
    x = load_image(path, (10, 10, 3))
    np.testing.assert_allclose(x, np.broadcast_to([0.0, 1.0, 0.0], (10, 10, 3)), atol=1e-6)


def test_downscaling_averages_instead_of_sampling(tmp_path):
    checker = ((np.indices((64, 64)).sum(axis=0) % 2) * 255).astype(np.uint8)
    path = save(Image.fromarray(checker, "L"), tmp_path / "checker.png")
    x = load_image(path, (8, 8, 1))
    np.testing.assert_allclose(x, 0.5, atol=0.02)


EXTREME_SIZES = [(10000, 1), (1, 10000), (10000, 2), (3, 10000)]   # (width, height)
MODEL_SHAPES = [(64, 64, 3), (28, 28, 1), (10, 40, 1), (40, 10, 3)]   # (H, W, C), square and not


@pytest.mark.parametrize("size", EXTREME_SIZES)
@pytest.mark.parametrize("mode", ["L", "RGB"])
@pytest.mark.parametrize("input_shape", MODEL_SHAPES)
def test_extreme_aspect_keeps_the_uniform_value(tmp_path, size, mode, input_shape):
    colour = 128 if mode == "L" else (128, 128, 128)
    path = save(Image.new(mode, size, colour), tmp_path / "strip.png")
    x = load_image(path, input_shape)
    assert x.shape == input_shape
    np.testing.assert_array_equal(x, np.float32(128 / 255))


@pytest.mark.parametrize("size", EXTREME_SIZES)
def test_extreme_aspect_of_a_float_image_keeps_exactly_one_half(size):
    x = images.image_to_array(Image.new("F", size, 0.5), (64, 64, 1))
    np.testing.assert_array_equal(x, np.float32(0.5))


@pytest.mark.parametrize("size", EXTREME_SIZES)
@pytest.mark.parametrize("input_shape", MODEL_SHAPES)
def test_extreme_aspect_gradient_keeps_its_mean(tmp_path, size, input_shape):
    width, height = size
    # Brightness rises along the long side and alternates across the short side, so the
    # mean is kept only if the crop is centred along the long side and whole across the short one.
    along = np.linspace(0, 255, max(size))
    across = np.arange(min(size)) % 2 * 60 - 30
    grid = along[np.newaxis, :] + across[:, np.newaxis]
    pixels = np.clip(np.round(grid if width > height else grid.T), 0, 255).astype(np.uint8)
    assert pixels.shape == (height, width)
    path = save(Image.fromarray(pixels, "L").convert("RGB"), tmp_path / "gradient.png")
    x = load_image(path, input_shape)
    assert abs(float(x.mean()) - pixels.mean() / 255) < 0.02


def test_crop_box_is_whole_pixels_and_never_empty():
    assert images.centre_crop_box(10000, 1, 64, 64) == (4999, 0, 5000, 1)
    assert images.centre_crop_box(1, 10000, 64, 64) == (0, 4999, 1, 5000)
    assert images.centre_crop_box(60, 20, 10, 10) == (20, 0, 40, 20)
    assert images.centre_crop_box(5, 7, 7, 5) == (0, 1, 5, 5)
    assert images.centre_crop_box(8, 8, 8, 8) == (0, 0, 8, 8)


# --- bad input ------------------------------------------------------------------------------

def assert_user_error_names(path, input_shape=(4, 4, 3)):
    with pytest.raises(UserError) as caught:
        load_image(path, input_shape)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
    return message


def test_missing_file(tmp_path):
    assert "not found" in assert_user_error_names(tmp_path / "nope.png")


def test_text_file_and_unsupported_format(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("hello, not a picture")
    assert "not a PNG, JPEG" in assert_user_error_names(text)
    tiff = save(Image.new("RGB", (4, 4)), tmp_path / "a.tiff")
    assert "not a PNG, JPEG" in assert_user_error_names(tiff)


@pytest.mark.parametrize("name,fmt", [("cut.png", "PNG"), ("cut.jpg", "JPEG")])
def test_truncated_image(tmp_path, name, fmt):
    buffer = io.BytesIO()
    noise = np.random.default_rng(2).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, format=fmt)
    path = tmp_path / name
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    assert "corrupt or truncated" in assert_user_error_names(path)


def test_directory_is_not_an_image(tmp_path):
    assert "not a file" in assert_user_error_names(tmp_path)


def test_image_over_the_pixel_limit(tmp_path, monkeypatch):
    path = save(Image.new("RGB", (30, 30)), tmp_path / "big.png")
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 800)
    assert "megapixels" in assert_user_error_names(path)


def test_pillow_decompression_bomb_warning_is_an_error(tmp_path, monkeypatch):
    path = save(Image.new("RGB", (30, 30)), tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)   # 900 px > 500: Pillow warns
    assert "too large to decode safely" in assert_user_error_names(path)


@pytest.mark.parametrize("name", ["x" * 300, "deep/" * 2000 + "a.png", "nul\x00byte.png"])
def test_unusable_path_is_one_short_line(tmp_path, name):
    for failing in (lambda: load_image(tmp_path / name, (4, 4, 3)),
                    lambda: resolve_image_list([name], CLASSES, tmp_path)):
        with pytest.raises(UserError) as caught:
            failing()
        message = str(caught.value)
        assert len(message) < 300 and message.isprintable()


def test_bad_input_shape(tmp_path):
    path = save(Image.new("RGB", (4, 4)), tmp_path / "a.png")
    with pytest.raises(UserError, match="1 or 3"):
        load_image(path, (4, 4, 2))


# --- the image list -------------------------------------------------------------------------

CLASSES = ["red panda", "koala", "pizza"]


@pytest.fixture
def picture_dir(tmp_path):
    (tmp_path / "more").mkdir()
    for name in ("Red Panda!.png", "koala.png", "more/koala.png", "pizza.png"):
        save(Image.new("RGB", (8, 8), (200, 30, 30)), tmp_path / name)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return tmp_path


def test_slugs_are_url_safe_unique_and_stable(picture_dir):
    entries = ["Red Panda!.png", {"path": "koala.png", "label": "koala", "title": "A koala"},
               "more/koala.png", {"path": "pizza.png", "id": "koala-2"}]
    resolved = resolve_image_list(entries, CLASSES, picture_dir)
    assert [e.id for e in resolved] == ["red-panda", "koala", "koala-3", "koala-2"]
    assert resolved == resolve_image_list(entries, CLASSES, picture_dir)
    assert resolved[1].label == "koala" and resolved[1].title == "A koala" and resolved[1].source == "koala.png"
    assert resolved[0].title == "Red Panda!" and resolved[0].path == (picture_dir / "Red Panda!.png").resolve()
    assert slugify("Ünïcode Ça va") == "unicode-ca-va" and slugify("***") == "image"


def test_unknown_label_suggests_the_closest_class(picture_dir):
    with pytest.raises(UserError, match=r"unknown label 'Red Pandas'.*did you mean 'red panda'\?"):
        resolve_image_list([{"path": "koala.png", "label": "Red Pandas"}], CLASSES, picture_dir)


def test_same_file_twice_and_same_id_twice(picture_dir):
    with pytest.raises(UserError, match="listed twice"):
        resolve_image_list(["koala.png", "./more/../koala.png"], CLASSES, picture_dir)
    with pytest.raises(UserError, match="id 'x' is used twice"):
        resolve_image_list([{"path": "koala.png", "id": "x"}, {"path": "pizza.png", "id": "x"}], CLASSES, picture_dir)


def test_missing_file_bad_id_and_unknown_key(picture_dir):
    with pytest.raises(UserError, match=r"images\[0\]: image gone.png not found"):
        resolve_image_list(["gone.png"], CLASSES, picture_dir)
    with pytest.raises(UserError, match="must be lower-case"):
        resolve_image_list([{"path": "koala.png", "id": "Not A Slug"}], CLASSES, picture_dir)
    with pytest.raises(UserError, match=r"unknown key 'lable' \(did you mean 'label'\?\)"):
        resolve_image_list([{"path": "koala.png", "lable": "koala"}], CLASSES, picture_dir)


def test_huge_values_are_quoted_briefly(picture_dir):
    for entry, expected in (({"path": "koala.png", "label": ["koala"] * 100_000}, "label must be a class name"),
                            ({"path": "koala.png", "id": "X" * 100_000}, "must be lower-case"),
                            ({"path": "koala.png", "title": list(range(100_000))}, "title must be text"),
                            ({"path": "koala.png", "k" * 100_000: 1}, "unknown key")):
        with pytest.raises(UserError, match=expected) as caught:
            resolve_image_list([entry], CLASSES, picture_dir)
        assert len(str(caught.value)) < 300


def test_collect_keeps_going_and_reports_each_failure(picture_dir):
    entries = ["koala.png", "gone.png", {"path": "pizza.png", "label": "piza"}, "broken.png", "koala.png",
               {"path": "more/koala.png", "attack": {"epsilon_max": 0.2}}]
    accepted, failures = collect_image_list(entries, CLASSES, picture_dir, input_shape=(4, 4, 3))
    assert [e.id for e in accepted] == ["koala", "koala-2"]
    assert accepted[1].attack == {"epsilon_max": 0.2}
    assert all(e.pixels.shape == (4, 4, 3) for e in accepted)
    assert [f["source"] for f in failures] == ["gone.png", "pizza.png", "broken.png", "koala.png"]
    assert "did you mean 'pizza'" in failures[1]["message"]
    assert "broken.png" in failures[2]["message"] and "corrupt" in failures[2]["message"]
    assert "listed twice" in failures[3]["message"]
    with pytest.raises(UserError, match="gone.png"):
        resolve_image_list(entries, CLASSES, picture_dir, input_shape=(4, 4, 3))
