"""ONNX model -> :class:`ComputationalGraph`, in the same vocabulary as the PyTorch adapter.

An ONNX graph is much finer-grained than a PyTorch module graph: one ``nn.Linear`` can
become ``Transpose`` + ``MatMul`` + ``Add``, one ``nn.MultiheadAttention`` some fifty
nodes, and shape arithmetic (``Shape``, ``Constant``, ``Gather`` on shapes, ...) is
interleaved with the real work. :func:`from_onnx` therefore works in four steps:

1. **Classify tensors.** Graph inputs carry *activations*; everything computed only
   from initializers, ``Constant`` nodes or ``Shape`` outputs is a *constant*. Nodes
   that produce constants are folded away (their consumers simply see a constant
   input), nodes that touch activations become ops. No op that carries an activation
   is ever dropped; an operator no rule knows keeps its lower-cased ONNX name.
2. **Map each op** to the shared vocabulary (``Conv`` -> ``conv2d``/``depthwise_conv2d``,
   ``Gemm`` -> ``linear``, ``BatchNormalization`` -> ``batchnorm``, ...) with the same
   shape attributes the PyTorch adapter records.
3. **Re-assemble PyTorch-level ops** that exporters split: every node of one
   ``nn.MultiheadAttention`` call becomes one ``attention`` node; with the dynamo
   exporter's metadata, all nodes of one aten call (``aten.linear``, ``aten.gelu``,
   ``aten.group_norm``, ...) become one node; without metadata, structural patterns
   merge ``MatMul`` + bias ``Add`` into ``linear`` and recognise decomposed LayerNorm,
   GroupNorm, GELU, SiLU and HardSwish.
4. **Assemble** the graph: one ``input`` node per graph input, one ``output`` node per
   graph output, edges along the activation tensors.

One module per step: ``_loading`` (read, check, infer shapes), ``_tensors`` (1),
``_ops`` (2: one rule per ONNX operator), ``_merging``/``_patterns``/``_reassembly`` (3)
and ``_assembly`` (4).

Parameters are counted from the initializers feeding each op's learned inputs (for
``batchnorm`` only scale and bias, not the running statistics), once per module, so
``graph.num_parameters`` matches ``sum(p.numel() for p in model.parameters())`` for a
model exported with :func:`export_onnx`.

Limitations, by design of the ONNX format rather than of this adapter:

* Exporters run in eval mode may fold BatchNorm into the preceding Conv (the legacy
  TorchScript exporter with ``do_constant_folding=True``, ``onnxsim``, ``onnxruntime``
  optimisers): such a file shows fewer ``batchnorm`` nodes, and its parameter count
  lacks the folded scales and shifts. :func:`export_onnx` keeps BatchNorm.
* The dynamo exporter's default optimiser (``optimize=True``) drops all-zero biases and
  merges equal-valued initializers; counts from such files can be slightly low.
  :func:`export_onnx` exports with ``optimize=False``.
* Learned tensors used outside known layers (``x + self.pos_embedding``) are recognised
  by their state-dict-like initializer names; registered *buffers* used the same way
  look identical in ONNX and are counted as parameters too.
* Weights stored as ``Constant`` nodes rather than initializers are treated as
  constants, not parameters.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from nasassist_plugins.adapters.onnx_adapter._assembly import _assemble
from nasassist_plugins.adapters.onnx_adapter._loading import (
    _check_model,
    _describe,
    _graph_metadata,
    _load_model,
    _with_inferred_shapes,
)
from nasassist_plugins.adapters.onnx_adapter._ops import _collect_ops
from nasassist_plugins.adapters.onnx_adapter._reassembly import _reassemble
from nasassist_plugins.adapters.onnx_adapter._tensors import _Tensors

from nasassist_plugins.errors import AdapterError, AdapterTypeError
from nasassist_plugins.graph import ComputationalGraph

__all__ = ["from_onnx", "export_onnx"]


# ============================================================================ public API
def from_onnx(path_or_model: Any, *, name: str | None = None) -> ComputationalGraph:
    """Read an ONNX model into a computational graph in the shared op vocabulary.

    Args:
        path_or_model: Path (``str``/``os.PathLike``) to a ``.onnx`` file, the file's
            raw ``bytes``, or an ``onnx.ModelProto``. External weight files are not
            needed: only the tensor shapes stored in the model are read.
        name: Graph name; defaults to the file's stem, else the ONNX graph's name.

    Returns:
        A validated :class:`ComputationalGraph` whose nodes carry ``in_channels``,
        ``out_channels``, ``kernel_size``, ``stride``, ``padding``, ``dilation``,
        ``groups``, ``bias``, ``weight_shape``, ``output_shape`` and ``num_params`` where
        they apply, and ``module`` (the PyTorch module's qualified name) when the
        exporter recorded it. Nodes of unknown operators from a custom domain also
        carry ``onnx_op`` (``"com.example::FancyMix"``).

    Raises:
        AdapterTypeError: ``path_or_model`` is none of the accepted types.
        AdapterError: the file is missing, is not a valid (or is a truncated) ONNX model,
            fails ``onnx.checker``, or has no nodes.
    """
    model, label, stem = _load_model(path_or_model)
    _check_model(model, label)
    model, shape_error = _with_inferred_shapes(model)
    graph_proto = model.graph
    tensors = _Tensors(graph_proto)
    ops = _collect_ops(graph_proto, tensors)
    ops = _reassemble(ops, tensors)
    metadata = _graph_metadata(model, label, shape_error)
    graph_name = name or stem or graph_proto.name or "onnx_model"
    graph = _assemble(graph_proto, ops, tensors, graph_name, metadata)
    return graph.validate()


def export_onnx(model: Any, example_input: Any, path: str | os.PathLike[str], *, dynamo: bool = True) -> Path:
    """Export a PyTorch model to ONNX the way :func:`from_onnx` reads best.

    Uses the dynamo exporter (``torch.onnx.export(dynamo=True)``, the default since
    PyTorch 2.9) because it records each node's module path and class hierarchy, which
    lets :func:`from_onnx` fill ``module`` and re-assemble ``nn.MultiheadAttention``.
    Its graph optimiser is switched off (``optimize=False``): it would drop all-zero
    biases and merge equal initializers, which skews parameter counts. The model is
    exported in eval mode (dropout off) without folding BatchNorm into Conv; its
    training mode is restored afterwards. Weights are stored inside the one ``.onnx``
    file unless they exceed protobuf's 2 GB limit.

    If the dynamo exporter cannot handle the model (e.g. data-dependent control flow),
    or ``dynamo=False``, the legacy TorchScript exporter is used with
    ``do_constant_folding=False`` (which also keeps BatchNorm).

    Args:
        model: An ``nn.Module``.
        example_input: A tensor, a tuple of tensors, or a shape such as ``(1, 3, 32, 32)``.
        path: Where to write the ``.onnx`` file (parent folders are created).
        dynamo: Try the dynamo exporter first (default) or go straight to the legacy one.

    Returns:
        The path of the written file.

    Raises:
        AdapterTypeError: ``model`` is not an ``nn.Module`` or the input is malformed.
        AdapterError: no exporter could export the model; the message names both causes.
    """
    import torch
    from nasassist_plugins.adapters.torch_adapter import as_example_inputs

    if not isinstance(model, torch.nn.Module):
        raise AdapterTypeError(f"export_onnx expects a torch.nn.Module, got {type(model).__name__}")
    params = list(model.parameters())
    inputs = as_example_inputs(example_input, params[0].device if params else None)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        errors: list[str] = []
        if dynamo:
            try:
                _export_dynamo(model, inputs, target)
                return target
            except Exception as exc:  # noqa: BLE001 - any exporter failure: try the legacy one
                errors.append(f"dynamo exporter: {_describe(exc)}")
        try:
            _export_legacy(model, inputs, target)
            return target
        except Exception as exc:  # noqa: BLE001
            errors.append(f"TorchScript exporter: {_describe(exc)}")
            raise AdapterError(f"cannot export {type(model).__name__} to ONNX ({'; '.join(errors)})") from exc
    finally:
        model.train(was_training)


# ============================================================================ export helpers
_EXTERNAL_DATA_BYTES = 1_500_000_000  # stay well below protobuf's 2 GB message limit


def _export_dynamo(model: Any, inputs: tuple[Any, ...], target: Path) -> None:
    import torch

    size = sum(p.numel() * p.element_size() for p in model.parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            inputs,
            str(target),
            dynamo=True,
            optimize=False,
            verbose=False,
            external_data=size > _EXTERNAL_DATA_BYTES,
        )


def _export_legacy(model: Any, inputs: tuple[Any, ...], target: Path) -> None:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            inputs,
            str(target),
            dynamo=False,
            training=torch.onnx.TrainingMode.EVAL,
            do_constant_folding=False,
        )
