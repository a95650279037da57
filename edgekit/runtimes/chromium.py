"""Placeholder while the Chromium runner is written."""
from __future__ import annotations

import shutil


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None
