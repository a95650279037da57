"""The prepared work folder a compile's steps share (model.json, source.onnx, samples), and one
shape bucket's view of it. Read by the pipeline's steps, the converters and `edgekit debug`."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .samples import load_samples
from .shapes import point_shapes, slug, static_onnx


@dataclass
class Work:
    """The prepared work folder shared by all candidates of one compile."""

    dir: Path
    tolerance: dict | None = None  # the candidate's precision tolerance (quantizers aim for it)
    # compile --calibration-method/--percentile: {"method": ..., "percentile": ...}; None = each
    # quantizer's default (calibration/methods.py)
    calibration_method: dict | None = None
    # compile --qat STEPS: fine-tune INT8 graphs this many steps (converters/qat.py); None = post-training only
    qat_steps: int | None = None
    # compile --precision auto (without --qat): fine-tune an INT8 graph whose post-training variants
    # all miss the tolerance, judged on held-back calibration samples (converters/pt2e._when_missed)
    qat_when_missed: bool = False
    # One shape bucket of a model with dynamic dims ({dim: size}), for a converter whose artifacts are
    # static: the ONNX, the model's input specs and the samples it sees are all at that shape.
    point: dict | None = None

    @property
    def onnx_path(self) -> Path:
        path = self.dir / "source.onnx"
        if not self.point:
            return path
        static = self.dir / f"source-{slug(self.point)}.onnx"
        if not static.exists():
            static_onnx(path, static, {t["name"]: t["shape"] for t in self.info["inputs"]})
        return static

    @property
    def info(self) -> dict:
        info = json.loads((self.dir / "model.json").read_text())
        if self.point:
            shapes = point_shapes(info, self.point)
            info["inputs"] = [{"name": t["name"], "shape": shapes[t["name"]], "dtype": t["dtype"]} for t in info["inputs"]]
            info["dynamic"], info["point"] = [], self.point
        return info

    @property
    def dims(self) -> list:
        """The compile's dynamic dims (DynamicDims), also while building one static bucket."""
        from .sources.dynamic import DynamicDim

        return [DynamicDim.from_dict(d) for d in json.loads((self.dir / "model.json").read_text()).get("dynamic") or []]

    def samples(self, kind: str) -> tuple[list[dict], list[dict], np.ndarray | None]:
        """(inputs, reference outputs, labels) of 'verify' or 'calib'; at a bucket's shape, the inputs
        cropped or wrapped to it, without reference outputs (those are the opt shape's)."""
        ins, refs, labels = load_samples(self.dir / f"{kind}.npz")
        if not self.point:
            return ins, refs, labels
        from .sources.dynamic import at_point

        return [at_point(s, self.dims, self.point) for s in ins], [], labels
