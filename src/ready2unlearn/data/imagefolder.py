"""Image folders: ``DIR/<class>/*.png|jpg`` (or ``DIR/train/<class>/...`` + ``DIR/test/<class>/...``).

The class of an image is the name of its folder (classes are numbered in sorted name order); a sample's
id is its position in the part's files sorted by class, then path. Images are not resized: they must all
have one size, and the first that differs is named. They are read with Pillow as RGB, or as one
grayscale channel when every image is grayscale, and scaled to [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ready2unlearn.data.source import Part, Source, existing
from ready2unlearn.errors import DataError

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
_GRAY_MODES = ("1", "L")


def read_imagefolder(path: Path, label_col: str | None, id_col: str | None, group_col: str | None) -> Source:
    """Reads an image-folder dataset (see the module docstring).

    Raises:
        DataError: If the folder is missing, a column flag is given (labels are folder names), there are
            fewer than two classes, a class folder holds no image, an image cannot be read, or the images
            differ in size.
    """
    existing(path, "imagefolder", folder=True)
    where = f"imagefolder: {str(path)!r}"
    given = [flag for flag, v in (("--label-col", label_col), ("--id-col", id_col), ("--group-col", group_col)) if v]
    if given:
        raise DataError(f"{where}: {', '.join(given)} do not apply to an image folder (labels are the class "
                        "folders' names, ids the files' order)")  # fmt: skip
    split = (path / "train").is_dir() and (path / "test").is_dir()
    roots = {"train": path / "train", "test": path / "test"} if split else {"all": path}
    listing = {part: _list(root, where) for part, root in roots.items()}
    classes = sorted({c for c, _ in listing["train" if split else "all"]})
    if len(classes) < 2:
        raise DataError(f"{where} has one class folder ({classes[0]!r}); a classifier needs at least two, "
                        "each holding that class's images")  # fmt: skip
    if split:
        extra = sorted({c for c, _ in listing["test"]} - set(classes))
        if extra:
            raise DataError(f"{where}: test/ has class folder {extra[0]!r}, which train/ does not have")
    pixels, size, first = {}, None, None
    for part, files in listing.items():
        arrays = []
        for _, f in files:
            img = _decode(f, where)
            if size is None:
                size, first = img.shape[:2], f
            elif img.shape[:2] != size:
                h, w = img.shape[:2]
                raise DataError(f"{where}: image {str(f)!r} is {w}x{h} but {str(first)!r} is {size[1]}x{size[0]}; "
                                "all images must have one size (resize them first)")  # fmt: skip
            arrays.append(img)
        pixels[part] = arrays
    gray = all(a.ndim == 2 for arrays in pixels.values() for a in arrays)
    parts = {}
    for part, arrays in pixels.items():
        # Grayscale images among colour ones get their one channel repeated, as Pillow's L -> RGB does.
        stacked = np.stack(arrays if gray else [_rgb(a) for a in arrays])
        x = stacked[:, None] if gray else stacked.transpose(0, 3, 1, 2)
        labels = np.asarray([c for c, _ in listing[part]], dtype=str)
        parts[part] = Part(np.ascontiguousarray(x, dtype=np.float32) / np.float32(255.0), labels)
    counts = {part: len(files) for part, files in listing.items()}
    return Source("image", parts, meta={"images": counts, "channels": 1 if gray else 3})


def _list(root: Path, where: str) -> list[tuple[str, Path]]:
    """``(class, file)`` for every image under ``root/<class>/``, sorted by class, then path."""
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise DataError(f"{where}: {str(root)!r} has no class folders; put each class's images in "
                        f"{str(root / '<class>')!r}")  # fmt: skip
    out = []
    for d in class_dirs:
        files = sorted((f for f in d.rglob("*") if f.is_file() and f.suffix.lower() in SUFFIXES),
                       key=lambda f: f.relative_to(d).as_posix())  # fmt: skip
        if not files:
            raise DataError(f"{where}: class folder {str(d)!r} holds no {'/'.join(SUFFIXES)} image")
        out += [(d.name, f) for f in files]
    return out


def _decode(path: Path, where: str) -> np.ndarray:
    """Pixels of one image: ``[H, W]`` for grayscale, ``[H, W, 3]`` for anything else (alpha dropped)."""
    from PIL import Image, UnidentifiedImageError  # Pillow (a matplotlib dependency) is only needed for this format

    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert("L" if im.mode in _GRAY_MODES else "RGB"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        why = "not an image Pillow can decode" if isinstance(e, UnidentifiedImageError) else str(e)
        raise DataError(f"{where}: cannot read image {str(path)!r} ({why})".splitlines()[0]) from None


def _rgb(a: np.ndarray) -> np.ndarray:
    return np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a
