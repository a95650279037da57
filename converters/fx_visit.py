"""Run a torch.fx graph module node by node and look at chosen nodes' inputs and outputs: what PT2E
bias correction and the mixed-precision ranking both need (own file: both are imported by pt2e.py)."""
from __future__ import annotations


def visit_nodes(gm, samples: list[tuple], names, visit) -> None:
    """Runs the fx graph module on each sample; after each node named in `names` runs,
    visit(node, env, output), env holding the values of its inputs (bias correction's means,
    the mixed-precision ranking's captures)."""
    import torch

    class Visitor(torch.fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            if n.name in names:
                visit(n, self.env, out)
            return out

    with torch.no_grad():
        for args in samples:
            Visitor(gm).run(*args)
