"""A matplotlib figure as a base64 PNG, the form every edgekit page inlines (no files beside the page,
no network). Used by `edgekit report` and `edgekit debug --html`."""
from __future__ import annotations

import base64
import io


def png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()
