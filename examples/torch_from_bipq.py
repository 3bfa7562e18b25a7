#!/usr/bin/env python3
"""Rebuild a model exported by bipq (bipq::eigen::write_model, or prune_fashion_mnist --export / --save-masks) in
PyTorch, apply its masks with torch.nn.utils.prune.custom_from_mask, and evaluate it on the Fashion-MNIST test set
with the preprocessing recorded in the export.

    python3 examples/torch_from_bipq.py MODEL_DIR [--data DIR] [--reference DIR]

MODEL_DIR holds index.json, model.json and the .npy files (layout: docs/export.md). --reference DIR compares with
bipq's own results (reference.json with test_loss and test_accuracy, predictions.npy with one class per test image):
same prediction on every image, same accuracy, loss within float tolerance; the exit status is 1 if they differ.
Needs numpy and torch (Debian: python3-numpy, python3-torch).
"""
import argparse
import collections
import gzip
import json
import math
import os
import struct
import sys

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

DTYPES = {"float32": np.float32, "float64": np.float64}
INDEX_DTYPES = {"uint16": np.uint16, "uint32": np.uint32, "uint64": np.uint64}


def fail(what):
    raise SystemExit(f"torch_from_bipq: {what}")


def load_npy(directory, name, dtype, shape, field):
    path = os.path.join(directory, name)
    a = np.load(path, allow_pickle=False)
    if a.dtype != np.dtype(dtype) or tuple(a.shape) != tuple(shape):
        fail(f"{path}: {field}: dtype {a.dtype} shape {a.shape}, expected {np.dtype(dtype)} {tuple(shape)}")
    return a


def load_tensor(directory, entry, field):
    """(value, mask or None) of one tensor entry of model.json, dense or sparse."""
    shape, dtype = tuple(entry["shape"]), DTYPES[entry["dtype"]]
    if entry["storage"] == "dense":
        value = load_npy(directory, entry["file"], dtype, shape, field)
        mask = load_npy(directory, entry["mask"], dtype, shape, field + ".mask") if "mask" in entry else None
        return value, mask
    nnz = entry["nnz"]
    indices = load_npy(directory, entry["indices"], INDEX_DTYPES[entry["index_dtype"]], (nnz,), field + ".indices")
    values = load_npy(directory, entry["values"], dtype, (nnz,), field + ".values")
    size = math.prod(shape)
    if nnz and (indices.max() >= size or np.any(np.diff(indices.astype(np.int64)) <= 0)):
        fail(f"{field}.indices: out of range or not increasing")
    value = np.zeros(size, dtype)
    mask = np.zeros(size, dtype)
    value[indices.astype(np.int64)] = values
    mask[indices.astype(np.int64)] = 1
    return value.reshape(shape), mask.reshape(shape)


class SpatialBias(nn.Module):
    """bipq's spatial_bias: y = x + B, one [C, H, W] map added to every sample (what a compact model adds after a
    convolution whose removed input channels were constant)."""

    def __init__(self, shape):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(shape))

    def forward(self, x):
        return x + self.bias


def build(directory):
    """The torch.nn.Sequential described by model.json, masks applied, and the preprocessing."""
    with open(os.path.join(directory, "index.json")) as f:
        index = json.load(f)
    if index.get("format") != "bipq-model" or index.get("format_version") != 1:
        fail(f"{directory}/index.json: not a bipq-model export of format version 1")
    with open(os.path.join(directory, index["architecture"])) as f:
        arch = json.load(f)
    modules = collections.OrderedDict()
    masks = []  # (module, parameter name, mask)
    flat = False  # whether the current activation is already [N, features]
    for i, layer in enumerate(arch["layers"]):
        name, kind, field = layer["name"], layer["type"], f"layers[{i}]"
        tensors = layer.get("tensors", {})
        if kind == "conv2d":
            m = nn.Conv2d(layer["in_channels"], layer["out_channels"], layer["kernel_size"], stride=layer["stride"],
                          padding=layer["padding"], bias=layer["bias"])
        elif kind == "linear":
            if not flat:  # bipq's linear takes a [C, 1, 1] activation as a flat one
                modules[name + "_flatten"] = nn.Flatten()
                flat = True
            m = nn.Linear(layer["in_features"], layer["out_features"], bias=layer["bias"])
        elif kind == "batch_norm2d":
            m = nn.BatchNorm2d(layer["num_features"], eps=layer["eps"], momentum=layer["momentum"])
        elif kind == "relu":
            m = nn.ReLU()
        elif kind == "max_pool2d":
            m = nn.MaxPool2d(layer["kernel_size"], stride=layer["stride"])
        elif kind == "flatten":
            m, flat = nn.Flatten(), True
        elif kind == "global_avg_pool":
            m = nn.AdaptiveAvgPool2d(1)
        elif kind == "spatial_bias":
            m = SpatialBias(tuple(layer["shape"]))
        else:
            fail(f"{field}.type: unknown layer type {kind!r}")
        with torch.no_grad():
            for pname, entry in tensors.items():
                value, mask = load_tensor(directory, entry, f"{field}.tensors.{pname}")
                target = getattr(m, pname)
                if tuple(target.shape) != value.shape:
                    fail(f"{field}.tensors.{pname}: shape {value.shape}, PyTorch expects {tuple(target.shape)}")
                target.copy_(torch.from_numpy(value.astype(np.float32)))
                if mask is not None:
                    masks.append((m, pname, torch.from_numpy(mask.astype(np.float32))))
        modules[name] = m
    model = nn.Sequential(modules)
    for m, pname, mask in masks:
        prune.custom_from_mask(m, pname, mask)
    return model, arch["preprocessing"], index


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    magic, = struct.unpack(">i", raw[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "i" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion_mnist_test(directory):
    def find(stem):
        for name in (stem + ".gz", stem):
            if os.path.exists(os.path.join(directory, name)):
                return os.path.join(directory, name)
        fail(f"{directory}/{stem}.gz does not exist; install dataset-fashion-mnist or pass --data")
    return read_idx(find("t10k-images-idx3-ubyte")), read_idx(find("t10k-labels-idx1-ubyte"))


def preprocess(pixels, pre):
    """x = (pixel * pixel_scale - mean) / std in float32, as bipq's loader and io::standardize compute it."""
    x = pixels.astype(np.float32) * np.float32(pre["pixel_scale"])
    if pre["mean"] != 0.0 or pre["std"] != 1.0:
        x = (x - np.float32(pre["mean"])) / np.float32(pre["std"])
    return x.reshape(len(pixels), 1, pixels.shape[1], pixels.shape[2])


def evaluate(model, images, labels):
    """Mean cross-entropy (log-sum-exp in double, as bipq), accuracy, and the predicted class of every image."""
    model.eval()
    losses, predictions = 0.0, []
    with torch.no_grad():
        for b in range(0, len(images), 500):
            z = model(torch.from_numpy(images[b:b + 500])).double()
            y = torch.from_numpy(labels[b:b + 500].astype(np.int64))
            losses += torch.nn.functional.cross_entropy(z, y, reduction="sum").item()
            predictions.append(torch.argmax(z, dim=1).numpy())
    predictions = np.concatenate(predictions)
    return losses / len(images), float(np.mean(predictions == labels)), predictions


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir")
    parser.add_argument("--data", default=os.environ.get("BIPQ_FASHION_MNIST") or "/usr/share/datasets/fashion-mnist")
    parser.add_argument("--reference", help="directory with bipq's reference.json and predictions.npy")
    args = parser.parse_args()
    torch.set_num_threads(1)

    model, pre, index = build(args.model_dir)
    pixels, labels = fashion_mnist_test(args.data)
    loss, accuracy, predictions = evaluate(model, preprocess(pixels, pre), labels)
    run = index.get("run", {})
    print(f"PyTorch {torch.__version__}: {run.get('method', 'model')} from {args.model_dir}: "
          f"test accuracy {100 * accuracy:.2f}%, loss {loss:.6f} on {len(labels)} images")
    if args.reference is None:
        return 0
    with open(os.path.join(args.reference, "reference.json")) as f:
        ref = json.load(f)
    bipq_predictions = np.load(os.path.join(args.reference, "predictions.npy"))
    differ = int(np.sum(bipq_predictions != predictions))
    loss_ok = abs(loss - ref["test_loss"]) <= 1e-5 * max(1.0, abs(ref["test_loss"]))
    print(f"bipq: test accuracy {100 * ref['test_accuracy']:.2f}%, loss {ref['test_loss']:.6f}; "
          f"predictions that differ: {differ}; |loss difference| {abs(loss - ref['test_loss']):.3g}")
    if differ or accuracy != ref["test_accuracy"] or not loss_ok:
        print("FAIL: PyTorch's results differ from bipq's")
        return 1
    print("ok: same prediction on every image, same accuracy, loss within float tolerance")
    return 0


if __name__ == "__main__":
    sys.exit(main())
