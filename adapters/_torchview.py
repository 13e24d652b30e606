"""Last-resort PyTorch tracer: a real forward pass recorded by torchview at leaf-module depth.

Used by :func:`~nasassist_plugins.adapters.torch_adapter.from_torch` only when the one-pass
tracer and torch.fx both fail; same vocabulary and attributes (from :mod:`._torch_ops`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from nasassist_plugins.adapters._torch_ops import (
    PASSTHROUGH,
    function_name_op,
    module_attrs,
    module_op,
)
from nasassist_plugins.graph import ComputationalGraph

__all__ = ["torchview_graph"]


def torchview_graph(model: nn.Module, inputs: tuple[torch.Tensor, ...], name: str) -> ComputationalGraph:
    """Fallback tracer: record a real forward pass with torchview at leaf-module depth."""
    from torchview import draw_graph
    from torchview.computation_node import FunctionNode, ModuleNode, TensorNode

    device = inputs[0].device
    recorded = draw_graph(
        model,
        input_data=list(inputs),
        depth=float("inf"),
        device=device,
        mode="eval",
        hide_inner_tensors=True,
        hide_module_functions=True,
        save_graph=False,
        graph_name=name,
    )
    modules_by_id = {id(m): (qualname, m) for qualname, m in model.named_modules()}
    attention_modules = [(q, m) for q, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)]
    graph = ComputationalGraph(name=name)
    index: dict[int, int] = {}
    counted: set[int] = set()

    def node_index(node: Any) -> int:
        key = id(node)
        if key in index:
            return index[key]
        if isinstance(node, TensorNode):
            is_output = "output" in node.name
            idx = graph.add_node(
                "output" if is_output else "input",
                name=f"{'output' if is_output else 'input'}_{len(graph)}",
                output_shape=tuple(node.tensor_shape),
            )
        elif isinstance(node, ModuleNode):
            qualname, module = modules_by_id.get(node.compute_unit_id, (None, None))
            if module is None:
                idx = graph.add_node(function_name_op(node.name), name=f"{node.name}_{len(graph)}")
            else:
                attrs = module_attrs(module)
                if id(module) in counted:
                    attrs["num_params"] = 0
                counted.add(id(module))
                attrs["output_shape"] = _first_list_shape(node.output_shape)
                idx = graph.add_node(module_op(module), name=f"{qualname}_{len(graph)}", module=qualname, **attrs)
        elif isinstance(node, FunctionNode):
            op = function_name_op(node.name)
            attrs: dict[str, Any] = {"output_shape": _first_list_shape(node.output_shape)}
            module_name = None
            if op == "attention" and node.name == "multi_head_attention_forward" and attention_modules:
                module_name, module = attention_modules.pop(0)  # calls follow definition order
                attrs.update(module_attrs(module))
                counted.add(id(module))
            idx = graph.add_node(op, name=f"{node.name}_{len(graph)}", module=module_name, **attrs)
        else:  # pragma: no cover - torchview has no other node kinds today
            idx = graph.add_node(function_name_op(type(node).__name__), name=f"node_{len(graph)}")
        index[key] = idx
        return idx

    for tail, head in recorded.edge_list:
        graph.add_edge(node_index(tail), node_index(head))
    return _without_passthrough(graph)


def _first_list_shape(shapes: Any) -> tuple[int, ...] | None:
    if shapes and isinstance(shapes, (list, tuple)) and isinstance(shapes[0], (list, tuple)):
        return tuple(int(d) for d in shapes[0])
    return None


def _without_passthrough(graph: ComputationalGraph) -> ComputationalGraph:
    """Remove pass-through nodes (``contiguous``, ``clone``) and wire their producers through."""
    keep = [i for i, n in enumerate(graph.nodes) if n.op_type != PASSTHROUGH]
    if len(keep) == len(graph.nodes):
        return graph
    preds: dict[int, list[int]] = {}
    for s, t in graph.edges:
        preds.setdefault(t, []).append(s)

    def sources(i: int) -> list[int]:
        if graph.nodes[i].op_type != PASSTHROUGH:
            return [i]
        return [x for p in preds.get(i, []) for x in sources(p)]

    new_index = {old: new for new, old in enumerate(keep)}
    edges = {
        (new_index[s], new_index[t])
        for t in keep
        for p in preds.get(t, [])
        for s in sources(p)
        if s != t
    }
    return ComputationalGraph.from_parts(
        [graph.nodes[i] for i in keep], sorted(edges), name=graph.name, metadata=graph.metadata
    )
