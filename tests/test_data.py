"""Image reading in every mode, the tf.data training pipeline and validation images."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from PIL import Image

from harness.config import DataConfig, PairedFolder
from harness.data import folders, images
from harness.data import pipeline as data
from harness.errors import HarnessError
from harness.measures.bicubic import bicubic_downsample

RNG = np.random.default_rng(0)
PHOTO = RNG.integers(0, 256, (40, 52, 3)).astype(np.uint8)


# --------------------------------------------------------------------------- image reading


def _save(path, img: Image.Image, **kw):
    img.save(path, **kw)
    return path


def test_read_image_converts_every_mode_to_rgb8(tmp_path):
    grey = PHOTO[:, :, 0]
    cases = {
        "rgb.png": (Image.fromarray(PHOTO), PHOTO),
        "rgb.bmp": (Image.fromarray(PHOTO), PHOTO),
        "grey.png": (Image.fromarray(grey), np.repeat(grey[:, :, None], 3, 2)),
        "greyalpha.png": (Image.fromarray(grey).convert("LA"), np.repeat(grey[:, :, None], 3, 2)),
        "rgba.png": (Image.fromarray(np.dstack([PHOTO, grey])), PHOTO),
        "bw.png": (Image.fromarray(grey > 127), np.repeat((grey > 127)[:, :, None] * 255, 3, 2)),
    }
    for name, (img, expected) in cases.items():
        got = images.read_image(_save(tmp_path / name, img))
        assert got.dtype == np.uint8 and got.shape == (40, 52, 3), name
        np.testing.assert_array_equal(got, expected, err_msg=name)
    palette = Image.fromarray(PHOTO).quantize(16)
    got = images.read_image(_save(tmp_path / "pal.png", palette))
    np.testing.assert_array_equal(got, np.asarray(palette.convert("RGB")))
    for mode in ("RGB", "L", "CMYK"):
        path = _save(tmp_path / f"photo_{mode}.jpg", Image.fromarray(PHOTO).convert(mode))
        with Image.open(path) as img:
            expected = np.asarray(img.convert("RGB"))
        np.testing.assert_array_equal(images.read_image(path), expected, err_msg=mode)


def test_read_image_scales_16bit_grey_and_colour(tmp_path):
    levels = RNG.integers(0, 256, (12, 10, 3)).astype(np.uint16)
    wide = levels * 257  # 16-bit value v*257 is 8-bit v exactly
    (tmp_path / "rgb16.png").write_bytes(images.encode_png16(wide))
    np.testing.assert_array_equal(images.read_image(tmp_path / "rgb16.png"), levels)
    (tmp_path / "grey16.png").write_bytes(images.encode_png16(wide[:, :, 1]))
    got = images.read_image(tmp_path / "grey16.png")
    np.testing.assert_array_equal(got, np.repeat(levels[:, :, 1:2], 3, 2))
    # scaled, not merely the high byte: 0xFF00 is 254.0 of 255, where truncation gives 255
    (tmp_path / "odd.png").write_bytes(images.encode_png16(np.full((4, 4), 0xFF00, np.uint16)))
    assert images.read_image(tmp_path / "odd.png")[0, 0, 0] == 254


def test_read_image_errors_name_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(images.ImageReadError, match="broken.png"):
        images.read_image(bad)
    good = tmp_path / "cut.png"
    Image.fromarray(PHOTO).save(good)
    cut = tmp_path / "cut2.png"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(images.ImageReadError, match="cut2.png"):
        images.read_image(cut)
    with pytest.raises(images.ImageReadError, match="does not exist"):
        images.read_image(tmp_path / "missing.png")


def test_images_over_the_pixel_limit_are_refused_from_the_header(bomb_png, no_big_decodes):
    # 20000 x 20000 1-bit: about 50 KB on disk, 1.2 GB as RGB. Pillow alone only warns.
    for read in (images.read_image, images.probe_image):
        with pytest.raises(images.ImageTooLargeError) as caught:
            read(bomb_png)
        message = str(caught.value)
        assert "bomb.png is 20000x20000 = 400000000 pixels" in message
        assert str(images.DEFAULT_MAX_PIXELS) in message and images.MAX_PIXELS_ENV in message
        assert (caught.value.width, caught.value.height) == (20000, 20000)


def test_the_pixel_limit_applies_to_every_mode_and_can_be_changed(tmp_path, monkeypatch):
    files = {
        "rgb.png": Image.fromarray(PHOTO),
        "bits.png": Image.fromarray(PHOTO[:, :, 0] > 128),
        "palette.png": Image.fromarray(PHOTO).convert("P"),
        "photo.jpg": Image.fromarray(PHOTO),
    }
    for name, img in files.items():
        img.save(tmp_path / name)
    (tmp_path / "deep.png").write_bytes(images.encode_png16(PHOTO.astype(np.uint16) * 257))
    monkeypatch.setenv(images.MAX_PIXELS_ENV, str(40 * 52 - 1))
    for name in [*files, "deep.png"]:
        with pytest.raises(images.ImageTooLargeError, match=f"{name} is 52x40 = 2080 pixels"):
            images.read_image(tmp_path / name)
        with pytest.raises(images.ImageTooLargeError, match="over the limit of 2079"):
            images.probe_image(tmp_path / name)
    monkeypatch.setenv(images.MAX_PIXELS_ENV, str(40 * 52))
    assert all(images.read_image(tmp_path / n).shape == (40, 52, 3) for n in [*files, "deep.png"])
    assert images.read_image(tmp_path / "rgb.png", limit=10**6).shape == (40, 52, 3)
    monkeypatch.setenv(images.MAX_PIXELS_ENV, "lots")
    with pytest.raises(HarnessError, match=f"{images.MAX_PIXELS_ENV}='lots' is not a positive"):
        images.read_image(tmp_path / "rgb.png")


# --------------------------------------------------------------------------- training data


def _folder(path, sizes, start=0):
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(start)
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (h, w, 3)).astype(np.uint8)).save(
            path / f"img{start + i:02d}.png"
        )
    return path


def _cfg(*folders, **kw) -> DataConfig:
    base = {"patch": 16, "scale": 4, "augment": True, "cache": "memory"}
    base.update(kw)
    return DataConfig(train=tuple(str(f) for f in folders), val=(), **base)


def _first(cfg: DataConfig, batch: int = 4, seed: int = 0, n: int = 1):
    it = iter(data.training_dataset(cfg, batch, seed))
    return [tuple(t.numpy() for t in next(it)) for _ in range(n)]


def test_training_batches_shapes_ranges_and_lr_from_hr(tmp_path):
    a = _folder(tmp_path / "a", [(40, 36), (33, 50)])
    b = _folder(tmp_path / "b", [(64, 64)], start=10)
    (lr, hr), (lr2, hr2) = _first(_cfg(a, b), batch=6, n=2)
    assert lr.shape == (6, 4, 4, 3) and hr.shape == (6, 16, 16, 3)
    assert lr.dtype == np.float32 and hr.dtype == np.float32
    assert lr.min() >= 0 and lr.max() <= 1 and hr.min() >= -1 and hr.max() <= 1
    hr8 = np.round((hr + 1) * 127.5).astype(np.uint8)
    np.testing.assert_allclose((hr + 1) * 127.5, hr8, atol=1e-3)  # HR is exact 8-bit levels
    # LR is the evaluation protocol's MATLAB bicubic of this very HR crop
    np.testing.assert_allclose(lr, bicubic_downsample(hr8, 4), atol=1.01 / 255)
    assert np.mean(np.abs(lr - bicubic_downsample(hr8, 4)) > 1e-4) < 0.01
    assert not np.array_equal(hr, hr2)


def test_training_is_deterministic_under_a_seed(tmp_path):
    folder = _folder(tmp_path / "a", [(40, 40), (48, 36), (36, 60)])
    cfg = _cfg(folder)
    one = _first(cfg, seed=7, n=3)
    two = _first(cfg, seed=7, n=3)
    other = _first(cfg, seed=8, n=3)
    for (l1, h1), (l2, h2) in zip(one, two, strict=True):
        np.testing.assert_array_equal(h1, h2)
        np.testing.assert_array_equal(l1, l2)
    assert not all(np.array_equal(h1, h3) for (_, h1), (_, h3) in zip(one, other, strict=True))


def test_crops_come_from_the_images_and_augment_flips_or_rotates(tmp_path):
    folder = _folder(tmp_path / "one", [(24, 28)])
    source = images.read_image(folder / "img00.png")

    def windows(img):
        return {
            img[y : y + 16, x : x + 16].tobytes()
            for y in range(img.shape[0] - 15)
            for x in range(img.shape[1] - 15)
        }

    plain = windows(source)
    variants = set()
    for k in range(4):
        for flip in (False, True):
            v = np.rot90(source[:, ::-1] if flip else source, k)
            variants |= windows(np.ascontiguousarray(v))
    ((_, hr),) = _first(_cfg(folder, augment=False), batch=8)
    crops = [np.round((h + 1) * 127.5).astype(np.uint8).tobytes() for h in hr]
    assert all(c in plain for c in crops)
    ((_, hr),) = _first(_cfg(folder, augment=True), batch=16)
    crops = [np.round((h + 1) * 127.5).astype(np.uint8).tobytes() for h in hr]
    assert all(c in variants for c in crops)
    assert any(c not in plain for c in crops)  # some crops were flipped or rotated


def test_bad_images_are_skipped_with_one_warning(tmp_path):
    folder = _folder(tmp_path / "mixed", [(40, 40), (8, 40)])  # img01 is too small
    (folder / "broken.png").write_bytes(b"\x89PNG garbage")
    (folder / "notes.txt").write_text("not an image, ignored silently")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ((lr, hr),) = _first(_cfg(folder))
    messages = [str(w.message) for w in caught if issubclass(w.category, folders.DataWarning)]
    assert len(messages) == 1, messages
    assert "skipped 2 of 3" in messages[0]
    assert "broken.png" in messages[0] and "img01.png (40x8)" in messages[0]
    assert hr.shape == (4, 16, 16, 3)


def test_empty_and_missing_folders_are_clear_errors(tmp_path):
    empty = _folder(tmp_path / "tiny", [(8, 8)])
    with (
        pytest.warns(folders.DataWarning),
        pytest.raises(folders.DataError, match=r"no usable training images in .*tiny"),
    ):
        data.training_dataset(_cfg(empty), 4, 0)
    with pytest.raises(folders.DataError, match=r"set5 does not exist.*harness data download set5"):
        data.training_dataset(_cfg(tmp_path / "set5"), 4, 0)
    with pytest.raises(folders.DataError, match=r"nowhere does not exist.*harness data download"):
        data.training_dataset(_cfg(tmp_path / "nowhere"), 4, 0)


def test_file_cache_is_keyed_by_the_file_list(tmp_path):
    folder = _folder(tmp_path / "a", [(40, 40), (36, 44)])
    cfg = _cfg(folder, cache=str(tmp_path / "cache" / "train"))
    first = _first(cfg, seed=3, n=2)  # one epoch is two images: the cache file gets completed
    written = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert written and all(name.startswith("train.") for name in written)
    again = _first(cfg, seed=3, n=2)
    np.testing.assert_array_equal(first[1][1], again[1][1])
    _folder(folder, [(50, 50)], start=5)  # a new image: a new cache key
    _first(cfg, seed=3)
    keys = {p.name.split(".")[1] for p in (tmp_path / "cache").iterdir()}
    assert len(keys) == 2


def test_skimage_spec_is_the_bundled_photographs():
    files = folders.resolve(folders.SKIMAGE)
    assert [f.name for f in files] == list(folders.SKIMAGE_PHOTOS)
    assert all(images.probe_image(f)[2] == "RGB" for f in files)


# --------------------------------------------------------------------------- validation


def test_validation_images_cropped_named_and_limited(tmp_path):
    a = _folder(tmp_path / "va", [(41, 50), (60, 30)])
    b = _folder(tmp_path / "vb", [(64, 64)], start=10)
    cfg = DataConfig(train=(), val=(str(a), str(b)), scale=4)
    out = data.validation_images(cfg)
    assert [n for n, _ in out] == ["va/img00", "va/img01", "vb/img10"]
    assert [im.shape for _, im in out] == [(40, 48, 3), (60, 28, 3), (64, 64, 3)]
    assert all(im.dtype == np.uint8 for _, im in out)
    limited = data.validation_images(dataclasses.replace(cfg, val_limit=2, val_max_side=32))
    assert [n for n, _ in limited] == ["va/img00", "va/img01"]
    assert [im.shape for _, im in limited] == [(32, 32, 3), (32, 28, 3)]
    full = images.read_image(a / "img00.png")
    np.testing.assert_array_equal(limited[0][1], full[4:36, 9:41])  # the centre


def test_validation_on_shared_set5(shared_data):
    out = data.validation_images(DataConfig(val=(str(shared_data / "set5"),), val_limit=3))
    assert len(out) == 3 and out[0][0] == "set5/baby"
    assert all(im.shape[0] % 4 == 0 and im.shape[1] % 4 == 0 for _, im in out)


def test_an_image_that_fails_to_decode_is_dropped_with_a_warning(tmp_path):
    folder = _folder(tmp_path / "a", [(40, 40), (44, 40)])
    whole = tmp_path / "whole.jpg"
    Image.fromarray(PHOTO).save(whole, quality=90)
    body = whole.read_bytes()
    (folder / "cut.jpg").write_bytes(body[: len(body) * 3 // 4])  # header fine, pixels cut
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batches = _first(_cfg(folder, augment=False), batch=4, n=2)
    assert any("while decoding" in str(w.message) and "cut.jpg" in str(w.message) for w in caught)
    assert all(hr.shape == (4, 16, 16, 3) for _, hr in batches)


def test_training_and_validation_skip_an_image_over_the_limit_unread(
    tmp_path, bomb_png, no_big_decodes
):
    folder = _folder(tmp_path / "mixed", [(40, 40), (44, 40)])
    (folder / "bomb.png").write_bytes(bomb_png.read_bytes())
    with pytest.warns(folders.DataWarning) as caught:
        infos = folders.scan([str(folder)], 16)
    assert [i.path.name for i in infos] == ["img00.png", "img01.png"]
    (message,) = [str(w.message) for w in caught if issubclass(w.category, folders.DataWarning)]
    assert "skipped 1 of 3" in message and "bomb.png (20000x20000)" in message
    assert f"over the limit of {images.DEFAULT_MAX_PIXELS} pixels" in message
    assert images.MAX_PIXELS_ENV in message
    with pytest.warns(folders.DataWarning, match="bomb.png"):
        ((_, hr),) = _first(_cfg(folder, augment=False))
    assert hr.shape == (4, 16, 16, 3)
    with pytest.warns(folders.DataWarning, match="bomb.png"):
        loaded = data.load_folder(str(folder), 4)
    assert [name for name, _ in loaded] == ["img00", "img01"]


def test_a_patch_no_training_image_can_give_is_refused_from_the_headers(tmp_path, monkeypatch):
    from PIL import ImageFile

    plain = _folder(tmp_path / "plain", [(40, 36), (64, 53), (20, 20)])  # (h, w)
    hr = _folder(tmp_path / "hr", [(96, 96)])
    lr = _folder(tmp_path / "lr", [(24, 24)])

    def decoded(*args, **kwargs):
        raise AssertionError("an image was decoded")

    monkeypatch.setattr(images, "read_image", decoded)
    monkeypatch.setattr(ImageFile.ImageFile, "load", decoded)
    refused = (
        r"data.patch = 128 is larger than every training image: the largest, plain/img01.png "
        r"\(53x64\), gives at most a 52 px patch at scale 4\. To train, give data.patch at most "
        r"52 \(--set data.patch=52\), or add images of at least 128 px a side to \[data\] train\."
    )
    with pytest.raises(folders.DataError, match=refused):
        data.check_patch(_cfg(plain, patch=128))
    data.check_patch(_cfg(plain, patch=52))  # one image gives it: the others, a warning later
    pair = PairedFolder(hr=str(hr), lr=str(lr))
    paired = dataclasses.replace(_cfg(plain, patch=128), train=(str(plain), pair))
    with pytest.raises(folders.DataError, match=r"the largest, lr/img00.png \(24x24 LR\), .*96"):
        data.check_patch(paired)
    data.check_patch(dataclasses.replace(paired, patch=96))
    data.check_patch(_cfg(tmp_path / "missing", patch=128))  # left to the pipeline's errors
