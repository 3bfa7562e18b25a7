#!/usr/bin/env python3
"""Loads what `prune_torch_module --save DIR` wrote for one method (DIR/<method>/: index.json, one .npy per parameter,
one .mask.npy per pruned tensor) into the same LeNet-5 module in PyTorch, attaches the masks with
torch.nn.utils.prune.custom_from_mask, and evaluates it on the Fashion-MNIST test images bipq evaluated on.

    /usr/bin/python3 examples/load_torch_masks.py masks/bip

Prints bipq's test accuracy and PyTorch's; exits with status 1 if they differ by more than --tolerance test images
(default 0) or PyTorch's is below --min-accuracy, if a pruned weight is not zero in the module, or if a file is
missing or does not fit the module.
Needs Debian's python3-torch and python3-numpy.
"""
import argparse
import gzip
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.nn.utils.prune as prune


class LeNet5(nn.Module):
    """The module of examples/prune_torch_module.cpp, parameter for parameter."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def read_idx(path):
    """An IDX file (optionally gzip) as a numpy array of unsigned bytes."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes")
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: {data.size} values for shape {shape}")
    return data.reshape(shape)


def find(directory, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"{stem}(.gz) not found in {directory}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", help="DIR/<method> as written by prune_torch_module --save DIR")
    parser.add_argument("--data", default=os.environ.get("BIPQ_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--tolerance", type=int, default=0, help="test images the two may disagree on (default 0)")
    parser.add_argument("--min-accuracy", type=float, default=0.0,
                        help="fail if PyTorch's test accuracy is below this fraction (a model that learned nothing "
                             "predicts one class, which any loader reproduces)")
    args = parser.parse_args()

    with open(os.path.join(args.directory, "index.json")) as f:
        index = json.load(f)
    torch.set_num_threads(int(index.get("threads", 1)))

    model = LeNet5()
    params = dict(model.named_parameters())
    listed = [p["name"] for p in index["parameters"]]
    if sorted(listed) != sorted(params):
        sys.exit(f"load_torch_masks: index.json lists {listed}, the module has {list(params)}")
    masks = {}
    with torch.no_grad():
        for p in index["parameters"]:
            value = np.load(os.path.join(args.directory, p["value"]))
            if list(value.shape) != list(params[p["name"]].shape) or list(value.shape) != p["shape"]:
                sys.exit(f"load_torch_masks: {p['value']} has shape {value.shape}, "
                         f"the module's {p['name']} {tuple(params[p['name']].shape)}")
            params[p["name"]].copy_(torch.from_numpy(value))
            if p["mask"] is not None:
                masks[p["name"]] = torch.from_numpy(np.load(os.path.join(args.directory, p["mask"])))
    # custom_from_mask: weight_orig keeps the loaded values, weight = weight_orig * mask is recomputed before every
    # forward pass (a forward pre-hook), as torch.nn.utils.prune does for any method.
    for name, mask in masks.items():
        module_name, _, tensor_name = name.rpartition(".")
        prune.custom_from_mask(model.get_submodule(module_name), tensor_name, mask)
    kept = sum(int(m.sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    for name, mask in masks.items():
        module_name, _, tensor_name = name.rpartition(".")
        weight = getattr(model.get_submodule(module_name), tensor_name)
        if bool((weight[mask == 0] != 0).any()):
            sys.exit(f"load_torch_masks: {name} has nonzero weights where its mask is 0")

    images = read_idx(find(args.data, "t10k-images-idx3-ubyte"))
    labels = read_idx(find(args.data, "t10k-labels-idx1-ubyte"))
    n = int(index["test_size"])
    x = torch.from_numpy(images[:n].astype(np.float32) / np.float32(255.0)).unsqueeze(1)
    y = torch.from_numpy(labels[:n].astype(np.int64))
    model.eval()
    correct = 0
    with torch.no_grad():
        for b0 in range(0, n, 1000):  # the chunks bipq's evaluate() uses
            correct += int((model(x[b0:b0 + 1000]).argmax(1) == y[b0:b0 + 1000]).sum())
    ours = correct / n
    theirs = float(index["test_accuracy"])
    differ = abs(round(ours * n) - round(theirs * n))
    print(f"{index['method']}: density {kept / total:.4f} ({kept} of {total} prunable weights), "
          f"test accuracy {100 * theirs:.2f}% in bipq, {100 * ours:.2f}% in PyTorch on {n} test images "
          f"({differ} images differ)")
    if differ > args.tolerance:
        sys.exit(f"load_torch_masks: the accuracies differ by {differ} test images (tolerance {args.tolerance})")
    if ours < args.min_accuracy:
        sys.exit(f"load_torch_masks: test accuracy {ours:.4f} is below --min-accuracy {args.min_accuracy}")


if __name__ == "__main__":
    main()
