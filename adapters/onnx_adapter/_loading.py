"""Step 0: read, check and shape-infer an ONNX model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import onnx
from onnx import shape_inference

from nasassist_plugins.errors import AdapterError, AdapterTypeError


# ============================================================================ loading
def _load_model(source: Any) -> tuple[onnx.ModelProto, str, str | None]:
    """Return the model, a label naming it in messages, and a default graph name."""
    if isinstance(source, onnx.ModelProto):
        return source, "the given ONNX model", None
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return _parse(data, f"the given ONNX bytes ({len(data)} bytes)"), "the given ONNX bytes", None
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = f"ONNX file {str(path)!r}"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise AdapterError(f"ONNX file not found: {str(path)!r}") from None
        except IsADirectoryError:
            raise AdapterError(f"{label} is a directory, not an ONNX file") from None
        except OSError as exc:
            raise AdapterError(f"cannot read {label}: {exc.strerror or exc}") from exc
        return _parse(data, label), label, path.stem
    raise AdapterTypeError(
        "from_onnx expects a path to an .onnx file, the file's bytes or an onnx.ModelProto; "
        f"got {type(source).__name__}"
    )


def _parse(data: bytes, label: str) -> onnx.ModelProto:
    """Decode a serialised ModelProto, turning protobuf errors into AdapterError."""
    if not data:
        raise AdapterError(f"{label} is not a valid ONNX model: it is empty (0 bytes)")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError or RuntimeWarning-like errors
        raise AdapterError(
            f"{label} is not a valid ONNX model: {exc} (the file is corrupt, truncated or not ONNX)"
        ) from exc
    if not model.HasField("graph") or model.ir_version == 0:
        raise AdapterError(
            f"{label} is not a valid ONNX model: it holds no ONNX graph or IR version "
            "(the file is corrupt, truncated or not ONNX)"
        )
    return model


def _check_model(model: onnx.ModelProto, label: str) -> None:
    if not model.HasField("graph"):
        raise AdapterError(f"{label} is not a valid ONNX model: it holds no graph")
    if len(model.graph.node) == 0:
        raise AdapterError(f"{label} has no nodes: its ONNX graph {model.graph.name!r} is empty")
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AdapterError(f"{label} fails onnx.checker: {first}") from exc


def _with_inferred_shapes(model: onnx.ModelProto) -> tuple[onnx.ModelProto, str | None]:
    """Inline local functions and run shape inference; keep going without shapes if it fails."""
    if len(model.functions):
        try:
            import onnx.inliner

            model = onnx.inliner.inline_local_functions(model)
        except Exception:  # noqa: BLE001 - function nodes then stay opaque (kept by name)
            pass
    try:
        return shape_inference.infer_shapes(model, strict_mode=False, data_prop=True), None
    except Exception as exc:  # noqa: BLE001 - shapes are optional attributes
        return model, _describe(exc)


def _graph_metadata(model: onnx.ModelProto, label: str, shape_error: str | None) -> dict[str, Any]:
    opsets = {o.domain or "ai.onnx": int(o.version) for o in model.opset_import}
    meta: dict[str, Any] = {
        "source": "onnx",
        "origin": label,
        "producer": " ".join(p for p in (model.producer_name, model.producer_version) if p) or None,
        "opset": opsets.get("ai.onnx"),
        "ir_version": int(model.ir_version),
    }
    if shape_error:
        meta["shape_inference_error"] = shape_error
    return {k: v for k, v in meta.items() if v is not None}



def _describe(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
