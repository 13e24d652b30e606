"""Model source -> :class:`~nasassist_plugins.graph.ComputationalGraph` adapters.

Installed as ``nasassist_plugins.adapters`` (never as a top-level ``adapters``: a popular
PyPI package owns that name).

* :func:`from_torch` — a PyTorch ``nn.Module`` plus an example input;
* :func:`from_onnx` — an ONNX file, bytes or ``onnx.ModelProto``;
* :func:`nb101_network`, :func:`nb201_network`, :func:`darts_network`,
  :func:`tnb101_network` — benchmark cells as real PyTorch networks (usable as search
  spaces), which then go through :func:`from_torch` like any user model;

Names are imported lazily so that ``import nasassist_plugins.adapters`` stays cheap
(the ONNX stack is only loaded when :func:`from_onnx` is used).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "from_torch": "nasassist_plugins.adapters.torch_adapter",
    "as_example_inputs": "nasassist_plugins.adapters.torch_adapter",
    "PartialGraphWarning": "nasassist_plugins.adapters._torch_trace",
    "from_onnx": "nasassist_plugins.adapters.onnx_adapter",
    "export_onnx": "nasassist_plugins.adapters.onnx_adapter",
    "nb101_network": "nasassist_plugins.adapters.cells",
    "nb201_network": "nasassist_plugins.adapters.cells",
    "darts_network": "nasassist_plugins.adapters.cells",
    "tnb101_network": "nasassist_plugins.adapters.cells",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from nasassist_plugins.adapters.cells import darts_network, nb101_network, nb201_network, tnb101_network
    from nasassist_plugins.adapters.onnx_adapter import export_onnx, from_onnx
    from nasassist_plugins.adapters._torch_trace import PartialGraphWarning
    from nasassist_plugins.adapters.torch_adapter import as_example_inputs, from_torch


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nasassist_plugins.adapters' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
