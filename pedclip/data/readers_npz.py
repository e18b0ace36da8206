"""MedMNIST-style npz files: `{train,val,test}_{images,labels}`; each image is a case addressed 'split:index'."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pedclip.data.labels import SPLITS
from pedclip.errors import PedclipError
from pedclip.store.cases import CaseRow, IngestError


def npz_splits(path: Path) -> dict[str, int]:
    """{split: number of images} from the arrays' headers, without decompressing the images."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            counts = {}
            for split in SPLITS:
                if f"{split}_images.npy" in names and f"{split}_labels.npy" in names:
                    with archive.open(f"{split}_images.npy") as stream:
                        version = np.lib.format.read_magic(stream)
                        read = (
                            np.lib.format.read_array_header_1_0
                            if version == (1, 0)
                            else np.lib.format.read_array_header_2_0
                        )
                        counts[split] = int(read(stream)[0][0])
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise PedclipError(f"{path} is not a readable npz file ({exc})") from exc
    if not counts:
        raise PedclipError(
            f"{path} holds none of train/val/test _images + _labels arrays (MedMNIST layout); it has {sorted(names)}"
        )
    return counts


def _mode_of(images: np.ndarray) -> str:
    if images.ndim == 3:
        return "L" if images.dtype == np.uint8 else "I;16"
    if images.ndim == 4 and images.shape[3] == 3:
        return "RGB"
    raise PedclipError(f"npz images of shape {images.shape} are neither (n, H, W) nor (n, H, W, 3)")


def _labels(raw: np.ndarray, split: str, n: int, path: Path) -> np.ndarray:
    labels = np.asarray(raw).reshape(len(raw), -1)
    if len(labels) != n or labels.shape[1] != 1:
        raise PedclipError(
            f"{path.name}: {split}_labels has shape {raw.shape}, expected ({n}, 1) to match {split}_images"
        )
    return labels[:, 0]


def npz_array(archive, name: str, path: Path) -> np.ndarray:
    """One array of an open npz; an array of Python objects (which only unpickling could read) is one line."""
    try:
        return archive[name]
    except ValueError as exc:
        if "allow_pickle" not in str(exc):
            raise PedclipError(f"{path.name}: {name} cannot be read ({exc})") from exc
        raise PedclipError(
            f"{path.name}: {name} is an array of Python objects, which pedclip does not unpickle; save it as a"
            " numeric array (uint8 or uint16 images, integer labels), as MedMNIST does"
        ) from exc


def read_npz(path: Path) -> Iterator[CaseRow | IngestError]:
    """One CaseRow per image (sha256 of its array bytes); labels other than 0/1 become IngestErrors."""
    with np.load(path, allow_pickle=False) as archive:
        for split in npz_splits(path):
            images = npz_array(archive, f"{split}_images", path)
            if images.dtype not in (np.uint8, np.uint16):
                raise PedclipError(
                    f"{path.name}: {split}_images has dtype {images.dtype}; expected uint8 or uint16"
                )
            labels = _labels(npz_array(archive, f"{split}_labels", path), split, len(images), path)
            yield from _split_rows(path, split, np.ascontiguousarray(images), labels)


def _split_rows(
    path: Path, split: str, images: np.ndarray, labels: np.ndarray
) -> Iterator[CaseRow | IngestError]:
    mode = _mode_of(images)
    height, width = int(images.shape[1]), int(images.shape[2])
    source = str(path.resolve())
    flat = images.reshape(len(images), -1).view(np.uint8)  # each row = one image's bytes
    for index in range(len(images)):
        member = f"{split}:{index}"
        label = int(labels[index])
        if label not in (0, 1):
            yield IngestError(
                source, f"has label {label} for {member}; expected 0 normal or 1 pneumonia", member
            )
            continue
        digest = hashlib.sha256(flat[index].data).hexdigest()
        yield CaseRow(member, source, digest, width, height, mode, label, None, split, member, split)
