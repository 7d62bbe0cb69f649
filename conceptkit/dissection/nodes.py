"""Graph nodes as layers: ``layer4.1.add`` (a residual sum) is a node, not a module.

torchvision's feature-extraction tracer (``torchvision.models.feature_extraction``) names every
operation of a traceable model's forward; :func:`graph_nodes` lists those names (eval mode) and
:class:`NodeExtractor` returns the outputs of some of them in one forward pass. Each returned
value is cloned inside the graph right after its node, so that a later in-place op (the
``relu_`` after a residual ``add``) cannot change it. A model that does not trace is a
one-line UsageError.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import fx, nn

from conceptkit.dissection.models._text import one_line
from conceptkit.errors import UsageError


def _feature_extraction() -> Any:
    import torchvision.models.feature_extraction as fe

    return fe


def graph_nodes(model: nn.Module) -> list[str]:
    """The node names of ``model``'s traced forward in eval mode (``x``, ``conv1``, ...)."""
    try:
        _train, evaluated = _feature_extraction().get_graph_node_names(model)
    except Exception as e:
        raise UsageError(
            f"this model ({type(model).__name__}) does not trace into a graph, so it has no "
            f"graph nodes: {type(e).__name__}: {one_line(str(e))[:160]}"
        ) from e
    return list(evaluated)


def _clone_outputs(graph: fx.Graph) -> None:
    """Route every value of the graph's output dict through ``torch.clone`` after its node."""
    out = next(n for n in graph.nodes if n.op == "output")
    returned = out.args[0]
    cloned = {}
    for key, node in returned.items():
        with graph.inserting_after(node):
            cloned[key] = graph.call_function(torch.clone, (node,))
    out.args = (cloned,)
    graph.lint()


class NodeExtractor:
    """``extractor(x)`` -> ``{name: output}`` of the graph nodes ``names`` of ``model``.

    A module name among ``names`` gives the output of that module's last node (its output).

    Shares ``model``'s parameters (a traced copy of its forward, not of its weights).
    """

    def __init__(self, model: nn.Module, names: Sequence[str]) -> None:
        self.names = list(names)
        known = set(graph_nodes(model)) | {n for n, _ in model.named_modules() if n}
        unknown = [n for n in self.names if n not in known]
        if unknown:
            raise UsageError(
                f"model has no layer or graph node {unknown[0]!r} (list them with "
                "--list-layers --nodes)"
            )
        fe = _feature_extraction()
        self.module = fe.create_feature_extractor(model, return_nodes={n: n for n in self.names})
        for graph in (self.module.train_graph, self.module.eval_graph):
            _clone_outputs(graph)
        self.module.graph = (
            self.module.eval_graph if not model.training else self.module.train_graph
        )
        self.module.recompile()

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = self.module(x)
        return out
