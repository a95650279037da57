"""A small CNN whose input height and width vary (32..128 each): dynamic shapes end to end.

`make` is the factory (`--model tests/gallery/dynamic_cnn.py:make`); `export_onnx(path)` writes the
same network as an ONNX file with symbolic H and W, as a user's exporter would.
"""
import numpy as np
import torch

DYNAMIC = {"image": {2: ("H", 32, 128), 3: ("W", 32, 128)}}


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = torch.nn.Linear(16, 5)

    def forward(self, image):
        x = torch.relu(self.c2(torch.relu(self.c1(image))))
        return self.fc(x.mean(dim=(2, 3)))


def _net():
    torch.manual_seed(0)
    return Net().eval()


def _images(n, seed):
    """Smooth images (sums of a few low-frequency waves), not white noise: what a camera gives."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    out = []
    for _ in range(n):
        img = np.stack([sum(np.sin(2 * np.pi * (rng.uniform(0.5, 3) * xx + rng.uniform(0.5, 3) * yy + rng.uniform()))
                            for _ in range(3)) for _ in range(3)])
        out.append(img[None].astype(np.float32))
    return out


def make():
    return {"model": _net(), "example_inputs": (_images(1, 0)[0],), "input_names": ["image"],
            "output_names": ["logits"], "dynamic_shapes": DYNAMIC,
            "verification_inputs": [(x,) for x in _images(12, 1)], "calibration_inputs": [(x,) for x in _images(16, 2)]}


def export_onnx(path) -> None:
    torch.onnx.export(_net(), (torch.from_numpy(_images(1, 0)[0]),), str(path), input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": {2: "H", 3: "W"}}, dynamo=False)
