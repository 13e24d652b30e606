"""Predictor weights files: one safetensors file, checked before anything is allocated.

A weights file holds the tensors of every predictor module and, in the safetensors
metadata under ``"nasassist"``, a JSON header (format, version, configuration, target
scale, names of operators met after training, training information). Reading one:

1. the file must exist, be a regular file and be at most :data:`MAX_FILE_BYTES`;
2. only the safetensors header is read (no tensor data) and the NAS-Assist JSON header is
   checked against :data:`CONFIG_SCHEMA` and the header schema: unknown or missing keys,
   wrong types, NaN/inf and sizes outside their bounds are refused with one clear line;
3. the predictor that configuration describes is built on PyTorch's ``meta`` device (no
   memory), and every tensor the file declares must have exactly the shape and dtype that
   predictor expects: a crafted header can never make the loader allocate more than the
   real model;
4. only then are the tensors read and the real predictor built.

No pickle is ever involved (safetensors stores raw tensors).
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch

from nasassist_plugins.errors import PredictorError

__all__ = [
    "CONFIG_SCHEMA",
    "DEFAULT_WEIGHTS",
    "MAX_FILE_BYTES",
    "WEIGHTS_FORMAT",
    "WEIGHTS_VERSION",
    "default_predictor",
    "expected_tensors",
    "module_tensors",
    "read_weights",
    "validate_config",
    "write_predictor",
    "write_weights",
]

WEIGHTS_FORMAT = "nasassist.predictor"
WEIGHTS_VERSION = 1
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "default.safetensors"
MAX_FILE_BYTES = 512 * 1024 * 1024
MAX_UNKNOWN_OPS = 4096
MAX_NAME_LENGTH = 200


def _integer(lo: int, hi: int) -> Callable[[str, Any], int]:
    def check(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise PredictorError(f"config {key!r} must be an integer, got {type(value).__name__} {value!r}")
        if not lo <= value <= hi:
            raise PredictorError(f"config {key!r} = {value} is outside [{lo}, {hi}]")
        return value

    return check


def _boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise PredictorError(f"config {key!r} must be true or false, got {type(value).__name__} {value!r}")
    return value


def _names(key: str, value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and 0 < len(v) <= MAX_NAME_LENGTH for v in value):
        raise PredictorError(f"config {key!r} must be null or a list of non-empty names, got {value!r:.200}")
    if len(set(value)) != len(value):
        raise PredictorError(f"config {key!r} repeats a name: {value!r:.200}")
    return list(value)


#: Configuration keys of a weights file: each maps to its checker (type and bounds).
#: Bounds are far above any sensible predictor and far below what would exhaust memory.
CONFIG_SCHEMA: dict[str, Callable[[str, Any], Any]] = {
    "hidden_dim": _integer(4, 1024),
    "num_gin_layers": _integer(1, 32),
    "num_experts": _integer(1, 64),
    "ensemble_size": _integer(1, 64),
    "graph_features": _boolean,
    "extra_features": _integer(0, 1024),
    "extra_feature_names": _names,
    "fusion": _boolean,
    "reference_size": _integer(0, 100_000),
    "novelty_quantiles": _integer(0, 100_000),
    "correction_members": _integer(1, 64),
    "correction_hidden": _integer(4, 4096),
}
#: Keys that files written by earlier versions may lack, with the value they mean.
CONFIG_DEFAULTS: dict[str, Any] = {
    "extra_features": 0, "extra_feature_names": None, "fusion": False, "reference_size": 0,
    "novelty_quantiles": 0, "correction_members": 5, "correction_hidden": 128,
}


def validate_config(config: Any) -> dict[str, Any]:
    """Check a predictor configuration against :data:`CONFIG_SCHEMA`; return a clean copy."""
    if not isinstance(config, Mapping):
        raise PredictorError(f"config must be a JSON object, got {type(config).__name__}")
    unknown = sorted(set(config) - set(CONFIG_SCHEMA))
    if unknown:
        raise PredictorError(f"config has unknown keys {unknown} (known: {sorted(CONFIG_SCHEMA)})")
    missing = sorted(set(CONFIG_SCHEMA) - set(config) - set(CONFIG_DEFAULTS))
    if missing:
        raise PredictorError(f"config lacks keys {missing}")
    config = {**CONFIG_DEFAULTS, **config}
    clean = {key: check(key, config[key]) for key, check in CONFIG_SCHEMA.items()}
    if clean["hidden_dim"] % 4:
        raise PredictorError(f"config 'hidden_dim' = {clean['hidden_dim']} must be a multiple of 4 (attention heads)")
    names = clean["extra_feature_names"]
    if names is not None and len(names) != clean["extra_features"]:
        raise PredictorError(
            f"config 'extra_feature_names' has {len(names)} names for {clean['extra_features']} extra features"
        )
    return clean


def _finite(header: Mapping[str, Any], key: str, *, nonzero: bool = False) -> float:
    value = header.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PredictorError(f"{key!r} must be a finite number, got {value!r}")
    if nonzero and value == 0:
        raise PredictorError(f"{key!r} must not be 0")
    return float(value)


def _validate_header(header: Any) -> dict[str, Any]:
    if not isinstance(header, dict):
        raise PredictorError(f"the NAS-Assist header must be a JSON object, got {type(header).__name__}")
    if header.get("format") != WEIGHTS_FORMAT:
        raise PredictorError(f"unexpected weights format {header.get('format')!r} (expected {WEIGHTS_FORMAT!r})")
    if header.get("version") != WEIGHTS_VERSION:
        raise PredictorError(
            f"predictor weights version {header.get('version')!r} cannot be read by this NAS-Assist "
            f"(expects version {WEIGHTS_VERSION}); retrain with `nasassist train` or install a matching release"
        )
    known = {"format", "version", "config", "target_offset", "target_scale", "target_description",
             "unknown_op_ids", "training_info", "fusion_settings"}
    unknown = sorted(set(header) - known)
    if unknown:
        raise PredictorError(f"header has unknown keys {unknown}")
    if "config" not in header:
        raise PredictorError("header lacks 'config'")
    clean = {"config": validate_config(header["config"])}
    clean["target_offset"] = _finite(header, "target_offset")
    clean["target_scale"] = _finite(header, "target_scale", nonzero=True)
    description = header.get("target_description", "")
    if not isinstance(description, str) or len(description) > 1000:
        raise PredictorError("'target_description' must be a string of at most 1000 characters")
    clean["target_description"] = description
    ops = header.get("unknown_op_ids", {})
    if not isinstance(ops, dict) or len(ops) > MAX_UNKNOWN_OPS:
        raise PredictorError(f"'unknown_op_ids' must be an object of at most {MAX_UNKNOWN_OPS} entries")
    for name, index in ops.items():
        if len(name) > MAX_NAME_LENGTH or isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < 10**6:
            raise PredictorError(f"'unknown_op_ids' entry {name[:MAX_NAME_LENGTH]!r}: {index!r} is not a valid op id")
    clean["unknown_op_ids"] = {str(k): int(v) for k, v in ops.items()}
    info = header.get("training_info", {})
    if not isinstance(info, dict):
        raise PredictorError("'training_info' must be a JSON object")
    clean["training_info"] = info
    clean["fusion_settings"] = _validate_fusion(header.get("fusion_settings"))
    return clean


def _validate_fusion(settings: Any) -> dict[str, Any] | None:
    """Check the fusion settings of a header (``None``: a file without them)."""
    from nasassist_plugins.predictor.fusion import FusionSettings
    from nasassist_plugins.proxies.suite import SUITE_SIGNALS

    if settings is None:
        return None
    if not isinstance(settings, dict):
        raise PredictorError("'fusion_settings' must be a JSON object")
    defaults = FusionSettings().to_dict()
    unknown = sorted(set(settings) - set(defaults))
    if unknown:
        raise PredictorError(f"'fusion_settings' has unknown keys {unknown}")
    clean: dict[str, Any] = {}
    for key, default in defaults.items():
        value = settings.get(key, default)
        if key == "anchor_signals":
            if not isinstance(value, list) or not value or not all(v in SUITE_SIGNALS for v in value):
                raise PredictorError(f"'fusion_settings.anchor_signals' must list suite signals, got {value!r:.200}")
            clean[key] = list(value)
        elif key == "anchor_weighting":
            if value not in ("subset", "spectral"):
                raise PredictorError(f"'fusion_settings.anchor_weighting' must be 'subset' or 'spectral', got {value!r:.50}")
            clean[key] = value
        elif key == "min_population":
            clean[key] = _integer(1, 10**9)(f"fusion_settings.{key}", value)
        else:
            clean[key] = _finite({key: value}, key)
            if clean[key] < 0:
                raise PredictorError(f"'fusion_settings.{key}' must not be negative, got {value!r}")
    return clean


def write_weights(path: str | Path, tensors: Mapping[str, torch.Tensor], header: Mapping[str, Any]) -> Path:
    """Write ``tensors`` and the JSON ``header`` (format and version added) to ``path``."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.is_dir():
        raise PredictorError(f"cannot write predictor weights to {path}: it is a directory")
    full = {"format": WEIGHTS_FORMAT, "version": WEIGHTS_VERSION, **header}
    _validate_header(json.loads(json.dumps(full)))  # never write a file that load() would refuse
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(dict(tensors), str(path), metadata={"nasassist": json.dumps(full)})
    except OSError as exc:
        raise PredictorError(f"cannot write predictor weights to {path}: {exc.strerror or exc}") from exc
    return path


def read_weights(
    path: str | Path, expected: Callable[[dict[str, Any], int], Mapping[str, torch.Tensor]]
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Validated header and tensors of a weights file.

    ``expected(config, text_rows)`` returns the tensors (shapes and dtypes; meta tensors
    are fine) that a predictor with that configuration holds; the file must declare exactly
    those before its data is read.
    """
    from safetensors import safe_open

    if path is None or not isinstance(path, (str, Path)) or str(path) == "":
        raise PredictorError(f"predictor weights path must be a file path, got {path!r}")
    path = Path(path)
    if not path.is_file():
        raise PredictorError(f"predictor weights not found: {path}")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise PredictorError(f"{path} is {size / 2**20:.0f} MiB, larger than any predictor ({MAX_FILE_BYTES >> 20} MiB cap)")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            shapes = {key: (tuple(handle.get_slice(key).get_shape()), handle.get_slice(key).get_dtype())
                      for key in handle.keys()}
    except Exception as exc:  # noqa: BLE001 - any parse failure means "not a safetensors file"
        raise PredictorError(f"{path} is not a NAS-Assist predictor weights file (safetensors): {exc}") from exc
    if "nasassist" not in metadata:
        raise PredictorError(f"{path} is a safetensors file but not NAS-Assist predictor weights")
    try:
        raw = json.loads(metadata["nasassist"], parse_constant=lambda name: float("nan"))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise PredictorError(f"{path}: the NAS-Assist header is not valid JSON: {exc}") from exc
    try:
        header = _validate_header(raw)
    except PredictorError as exc:
        raise PredictorError(f"{path}: {exc}") from None
    text = shapes.get("encoder.nodes.text_table", ((0,), ""))[0]
    text_rows = int(text[0]) if len(text) == 2 else -1
    wanted = expected(header["config"], text_rows)
    # empty tensors (e.g. the scaler of zero extra features) may be absent from older files
    missing = sorted(key for key in set(wanted) - set(shapes) if wanted[key].numel() > 0)
    extra = sorted(set(shapes) - set(wanted))
    if missing or extra:
        detail = (f"missing {missing[:5]}" if missing else "") + (" " if missing and extra else "") + (
            f"unexpected {extra[:5]}" if extra else "")
        raise PredictorError(f"{path}: tensors do not match the predictor's configuration: {detail}")
    for key, tensor in wanted.items():
        if key not in shapes:
            continue
        shape, dtype = shapes[key]
        if shape != tuple(tensor.shape) or dtype != _SAFETENSORS_DTYPES.get(tensor.dtype):
            raise PredictorError(
                f"{path}: tensor {key!r} is {dtype} {list(shape)}, the configuration needs "
                f"{_SAFETENSORS_DTYPES.get(tensor.dtype)} {list(tensor.shape)}"
            )
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt data after a valid header
        raise PredictorError(f"{path}: cannot read the tensors: {exc}") from exc
    for key, tensor in tensors.items():
        if not tensor.is_floating_point():
            continue
        if key in _MAY_HOLD_INF:
            if bool(torch.isnan(tensor).any()):
                raise PredictorError(f"{path}: tensor {key!r} holds NaN")
        elif not bool(torch.isfinite(tensor).all()):
            raise PredictorError(f"{path}: tensor {key!r} holds NaN or inf")
    return header, tensors




@lru_cache(maxsize=1)
def default_predictor() -> Any:
    """The shipped predictor (:meth:`Predictor.load_default`), loaded once per process.

    Every library component that needs the default predictor (the planner's surrogate, the
    mutators, ``report_model``, the CLI) shares this one instance: treat it as read-only and
    ``copy()`` it before fitting it in place. A failed load (no weights installed) is not
    cached.

    Example::

        from nasassist_plugins.predictor import default_predictor
        mean, std = default_predictor().predict(graphs)
    """
    from nasassist_plugins.predictor.predictor import Predictor

    return Predictor.load_default()

def module_tensors(modules: Iterable[tuple[str, torch.nn.Module]]) -> dict[str, torch.Tensor]:
    """Every tensor of ``(prefix, module)`` pairs, keyed ``<prefix>.<name>`` (detached copies)."""
    tensors: dict[str, torch.Tensor] = {}
    for prefix, module in modules:
        for key, value in module.state_dict().items():
            tensors[f"{prefix}.{key}"] = value.detach().contiguous().clone()
    return tensors


def write_predictor(path: str | Path, predictor: Any) -> Path:
    """Write a predictor's tensors and its header (configuration, target scale, ...) to ``path``."""
    return write_weights(path, predictor.state_tensors(), {
        "config": predictor.config,
        "target_offset": predictor.target_offset,
        "target_scale": predictor.target_scale,
        "target_description": predictor.target_description,
        "unknown_op_ids": predictor.unknown_op_ids,
        "training_info": predictor.training_info,
        "fusion_settings": predictor.fusion_settings.to_dict(),
    })


def expected_tensors(factory: Callable[..., Any], config: dict[str, Any], text_rows: int) -> dict[str, torch.Tensor]:
    """Tensors (on the meta device: no memory) of the predictor ``factory(**config)`` builds."""
    from nasassist_plugins.predictor.features import NUM_OP_IDS
    from nasassist_plugins.predictor.op_text import TEXT_EMBEDDING_DIM

    if not NUM_OP_IDS <= text_rows <= NUM_OP_IDS + MAX_UNKNOWN_OPS:
        raise PredictorError(
            f"the operator text table has {text_rows} rows; expected {NUM_OP_IDS}..{NUM_OP_IDS + MAX_UNKNOWN_OPS}"
        )
    with torch.device("meta"):
        shell = factory(**config, text_table=torch.empty(text_rows, TEXT_EMBEDDING_DIM))
    return shell.state_tensors()

# Measured signal values of the fused score's reference population: a signal such as a log-determinant
# is legitimately -inf for a degenerate architecture (it ranks last); NaN is still refused.
_MAY_HOLD_INF = frozenset({"reference.values"})

_SAFETENSORS_DTYPES = {
    torch.float32: "F32",
    torch.float64: "F64",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.bool: "BOOL",
}
