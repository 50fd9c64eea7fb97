"""Fashion-MNIST from Debian's dataset-fashion-mnist (IDX files, gzip), without torchvision.

    images, labels = dlasim.datasets.fashion_mnist("train")   # uint8 [60000, 1, 28, 28], int64 [60000]
    x = dlasim.datasets.u8_to_real(images)                     # p * 2^-8: the u8 pixels are the integers

`u8_to_real` scales pixels by 2^-8 (not 1/255), so a graph input of type u8 at frac 8
holds exactly the pixel values: the integers the DLA receives are the image's bytes.
"""

import gzip
import os
import struct
from pathlib import Path

import torch

DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path):
    """A uint8 tensor from an IDX file (optionally .gz)."""
    path = str(path)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError("%s: not an unsigned-byte IDX file" % path)
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    body = data[4 + 4 * ndim:]
    count = 1
    for d in dims:
        count *= d
    if len(body) != count:
        raise ValueError("%s: expected %d bytes of data, found %d" % (path, count, len(body)))
    return torch.frombuffer(bytearray(body), dtype=torch.uint8).reshape(dims)


def _find(root, stem):
    for name in (stem + ".gz", stem):
        p = Path(root) / name
        if p.is_file():
            return p
    raise FileNotFoundError("Fashion-MNIST file %s(.gz) not found under %s (apt-get install dataset-fashion-mnist, "
                            "or set DLASIM_FASHION_MNIST)" % (stem, root))


def fashion_mnist(split="train", root=None):
    """(images uint8 [N, 1, 28, 28], labels int64 [N]) of split "train" or "test"."""
    root = root or os.environ.get("DLASIM_FASHION_MNIST", DEFAULT_ROOT)
    if split not in _FILES:
        raise ValueError("split must be 'train' or 'test'")
    img_stem, lbl_stem = _FILES[split]
    images = read_idx(_find(root, img_stem))
    labels = read_idx(_find(root, lbl_stem)).to(torch.int64)
    return images.unsqueeze(1).contiguous(), labels


def available(root=None):
    root = root or os.environ.get("DLASIM_FASHION_MNIST", DEFAULT_ROOT)
    try:
        for stems in _FILES.values():
            for s in stems:
                _find(root, s)
        return True
    except FileNotFoundError:
        return False


def u8_to_real(images):
    """uint8 pixels p -> float32 p * 2^-8 (exact): a u8 input at frac 8 then holds p."""
    return images.to(torch.float32) * (2.0 ** -8)


__all__ = ["fashion_mnist", "read_idx", "u8_to_real", "available", "CLASSES", "DEFAULT_ROOT"]
