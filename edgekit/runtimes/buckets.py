"""A shape-bucketed artifact: a folder of static artifacts of one runtime, one per shape, with
`buckets.json` (edgekit.steps.build_buckets). A call runs on the bucket whose input shapes equal its
own. Where the model declares a dim paddable (its dynamic dim's `pad` values: token ids and an
attention mask padded with 0 leave a mean-pooled embedding as it is), a shorter input is padded up
to the smallest bucket that holds it. Any other shape is refused with the shapes there are: for
most models (convolutions, pooling, normalization) padding changes the answer.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import BundleError, InputError
from ..manifest import check_relpath
from .base import Closing

BUCKETS_FILE = "buckets.json"  # the same name edgekit.steps.build_buckets writes


def is_bucketed(path) -> bool:
    return Path(path).is_dir() and (Path(path) / BUCKETS_FILE).is_file()


class BucketRunner(Closing):
    """Dispatches each call to the bucket with its shapes; opens a bucket's runner on first use."""

    def __init__(self, path, open_one):
        """open_one(file path) -> a Runner for one static bucket."""
        self.path = Path(path)
        try:
            spec = json.loads((self.path / BUCKETS_FILE).read_text())
            self.buckets = [{"label": str(b["label"]), "file": check_relpath(b["file"], "bucket file"),
                             "shapes": {str(k): tuple(int(x) for x in v) for k, v in b["shapes"].items()}}
                            for b in spec["buckets"]]
            # {input: {axis: pad value}} for the dims the model declared paddable (every input that has one)
            self.pad: dict[str, dict[int, float]] = {}
            for d in spec.get("dims") or []:
                pads = d.get("pad") or {}
                if pads and set(pads) == {n for n, _ in d["inputs"]}:
                    for n, axis in d["inputs"]:
                        self.pad.setdefault(str(n), {})[int(axis)] = float(pads[n])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise BundleError(f"{self.path}: {BUCKETS_FILE} is unreadable or malformed: {e}") from None
        self._open, self._runners = open_one, {}

    def _fits(self, shapes: dict, b: dict) -> bool:
        """The bucket holds these shapes: equal, but for paddable axes, which may be shorter."""
        for k, want in b["shapes"].items():
            got = shapes.get(k)
            if got is None or len(got) != len(want):
                return False
            for axis, (g, w) in enumerate(zip(got, want)):
                if g != w and not (axis in self.pad.get(k, {}) and g < w):
                    return False
        return True

    def bucket_for(self, feeds: dict) -> dict:
        shapes = {k: tuple(np.shape(v)) for k, v in feeds.items()}
        fits = [b for b in self.buckets if self._fits(shapes, b)]
        if fits:  # the exact bucket if there is one, else the smallest that holds the padded input
            return min(fits, key=lambda b: sum(int(np.prod(s)) for s in b["shapes"].values()))
        raise InputError(f"no shape bucket of {self.path.name} takes {shapes}; its buckets: "
                         + "; ".join(f"{b['label']} {b['shapes']}" for b in self.buckets)
                         + (f" (inputs {sorted(self.pad)} pad up to a bucket)" if self.pad else
                            " (static artifacts, and the model declares no dim paddable: crop or resize the input "
                            "to a bucket's shape, or use an artifact with dynamic dims)"))

    def _padded(self, feeds: dict, b: dict) -> dict:
        out = {}
        for k, a in feeds.items():
            want = b["shapes"].get(k)
            if want is not None and tuple(np.shape(a)) != want:
                widths = [(0, w - g) for g, w in zip(np.shape(a), want)]
                value = next(iter(self.pad[k].values()))
                a = np.pad(a, widths, constant_values=np.asarray(value).astype(a.dtype))
            out[k] = a
        return out

    def runner_for(self, feeds: dict):
        b = self.bucket_for(feeds)
        if b["file"] not in self._runners:
            self._runners[b["file"]] = self._open(self.path / b["file"])
        return self._runners[b["file"]], self._padded(feeds, b)

    def run(self, feeds):
        runner, feeds = self.runner_for(feeds)
        return runner.run(feeds)

    def profile(self, feeds, runs, warmup=5):
        runner, feeds = self.runner_for(feeds)
        return runner.profile(feeds, runs, warmup)

    def timed_runs(self, feeds, runs, min_time_s):
        runner, feeds = self.runner_for(feeds)
        return runner.timed_runs(feeds, runs, min_time_s)

    def _first(self):
        """The opt shape's bucket (listed first)."""
        first = self.buckets[0]
        if first["file"] not in self._runners:
            self._runners[first["file"]] = self._open(self.path / first["file"])
        return self._runners[first["file"]]

    def artifact_io(self):  # the opt-shape bucket's (the others differ in the dynamic dims' sizes only)
        return self._first().artifact_io()

    def close(self) -> None:
        for r in self._runners.values():
            r.close()
        self._runners.clear()

    def __getattr__(self, name):  # inputs, outputs, version...: the opt-shape bucket's
        if name.startswith("_") or name in ("path", "buckets", "pad"):
            raise AttributeError(name)
        return getattr(self._first(), name)
