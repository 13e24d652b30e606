"""Spec → traced graph: the one code path every benchmark graph takes.

Kept apart from the loaders because its code is part of the graph cache's fingerprint:
editing this module (or the adapters and cell builders) invalidates cached graphs,
editing a CSV reader does not.
"""

from __future__ import annotations

from typing import Any

from nasassist_plugins.families.registry import get_family_def
from nasassist_plugins.graph import ComputationalGraph

__all__ = ["trace_spec"]


def trace_spec(family: str, key: str) -> ComputationalGraph:
    """Build the real network of spec ``key`` and trace it with ``from_torch``.

    This is the path every benchmark graph takes (and the one a user's model takes):
    ``from_torch(network, example_input)``. The graph is named ``"<family>:<key>"`` and
    its metadata records ``family`` and ``spec``.
    """
    import torch

    from nasassist_plugins.adapters.torch_adapter import from_torch

    definition = get_family_def(family)
    spec = definition.key_to_spec(key)
    device = definition.device
    with torch.device("meta" if device in ("meta", "meta-to-cpu") else device):
        network = definition.build_network(spec)
    if device == "meta-to-cpu":
        network = _zero_materialize(network)
    graph = from_torch(network, definition.example_input, name=f"{definition.name}:{key}")
    graph.metadata["family"] = definition.name
    graph.metadata["spec"] = key
    return graph


def _zero_materialize(network: Any) -> Any:
    """Give a network built on ``meta`` real CPU tensors: parameters and buffers zero,
    BatchNorm running variances one (so eval-mode normalisation stays finite)."""
    import torch

    network = network.to_empty(device="cpu")
    with torch.no_grad():
        for tensor in network.parameters():
            tensor.zero_()
        for name, buffer in network.named_buffers():
            buffer.fill_(1 if name.endswith("running_var") else 0)
    return network


