"""`.pt2` (torch.export archive) model source. Scanned for code-running pickles before loading."""
from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import ModelSourceError
from .factory import VERIFY_RANDOM_SAMPLES, _float_dtype
from .model import ModelSource, as_sample, random_like
from .safety import check_pt2, check_pt2_with_torch_reader


def load_pt2(path: Path) -> ModelSource:
    import torch

    check_pt2(path)  # raises UnsafeModelError before torch.export.load unpickles anything
    check_pt2_with_torch_reader(path)  # the same, on exactly the members and bytes torch will read
    try:
        ep = torch.export.load(str(path))
    except Exception as e:
        raise ModelSourceError(f"{path}: torch.export.load failed: {str(e).splitlines()[0][:200]}") from None
    args, kwargs = ep.example_inputs if ep.example_inputs is not None else ((), {})
    if kwargs:
        raise ModelSourceError(f"{path}: keyword example inputs are not supported yet; export with positional args")
    if not args:
        raise ModelSourceError(f"{path}: the archive has no example inputs; export it with torch.export.export(m, args)")
    module = ep.module()
    names = [s.arg.name for s in ep.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    example = as_sample(tuple(args), names if len(names) == len(args) else None, _float_dtype(module))
    return ModelSource(
        name=path.stem, spec=str(path), kind="torch", sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        example=example, module=module,
        verify_inputs=random_like(example, VERIFY_RANDOM_SAMPLES, seed=20261127), verify_data="random",
    )
