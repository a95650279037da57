"""A shape-bucketed artifact: a folder of static artifacts of one runtime, one per shape, with
`buckets.json` (edgekit.steps.build_buckets). A call runs on the bucket whose input shapes equal its
own; any other shape is refused with the shapes there are. Padding up to a larger bucket is never
done here: for most models (convolutions, pooling, normalization) it changes the answer.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import BundleError, InputError
from ..manifest import check_relpath

BUCKETS_FILE = "buckets.json"  # the same name edgekit.steps.build_buckets writes


def is_bucketed(path) -> bool:
    return Path(path).is_dir() and (Path(path) / BUCKETS_FILE).is_file()


class BucketRunner:
    """Dispatches each call to the bucket with its shapes; opens a bucket's runner on first use."""

    def __init__(self, path, open_one):
        """open_one(file path) -> a Runner for one static bucket."""
        self.path = Path(path)
        try:
            spec = json.loads((self.path / BUCKETS_FILE).read_text())
            self.buckets = [{"label": str(b["label"]), "file": check_relpath(b["file"], "bucket file"),
                             "shapes": {str(k): tuple(int(x) for x in v) for k, v in b["shapes"].items()}}
                            for b in spec["buckets"]]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise BundleError(f"{self.path}: {BUCKETS_FILE} is unreadable or malformed: {e}") from None
        self._open, self._runners = open_one, {}

    def _bucket(self, feeds: dict) -> dict:
        shapes = {k: tuple(np.shape(v)) for k, v in feeds.items()}
        for b in self.buckets:
            if all(shapes.get(k) == s for k, s in b["shapes"].items()):
                return b
        raise InputError(f"no shape bucket of {self.path.name} takes {shapes}; its buckets: "
                         + "; ".join(f"{b['label']} {b['shapes']}" for b in self.buckets)
                         + " (static artifacts; pad or crop the input to one of them, or use an artifact with dynamic dims)")

    def runner_for(self, feeds: dict):
        b = self._bucket(feeds)
        if b["file"] not in self._runners:
            self._runners[b["file"]] = self._open(self.path / b["file"])
        return self._runners[b["file"]]

    def run(self, feeds):
        return self.runner_for(feeds).run(feeds)

    def profile(self, feeds, runs, warmup=5):
        return self.runner_for(feeds).profile(feeds, runs, warmup)

    def timed_runs(self, feeds, runs, min_time_s):
        return self.runner_for(feeds).timed_runs(feeds, runs, min_time_s)

    def artifact_io(self):
        return None

    def __getattr__(self, name):  # inputs, outputs, version...: the first bucket's (the opt shape)
        if name.startswith("_") or name in ("path", "buckets"):
            raise AttributeError(name)
        first = self.buckets[0]
        if first["file"] not in self._runners:
            self._runners[first["file"]] = self._open(self.path / first["file"])
        return getattr(self._runners[first["file"]], name)
