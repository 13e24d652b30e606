"""Relevance-guided rewrites of ``nn.Module`` source code (the offline mutator's code edits).

Each rule finds sites in the parsed source (never executing it) and returns edited
copies of the text, spliced at the exact source positions so the rest of the file —
comments, formatting — is untouched and the diff stays readable:

* ``widen``/``narrow`` — scale the output width of an ``nn.Conv2d``/``nn.Linear`` with a
  literal width, and update the layers that consume it (``BatchNorm`` features, the next
  conv/linear's input width) in the same class;
* ``kernel`` — grow or shrink a ``Conv2d`` kernel by 2, keeping "same" padding;
* ``remove`` — drop a shape-preserving element (activation, norm, dropout, square conv)
  from an ``nn.Sequential``;
* ``bypass`` — in ``forward``, replace ``self.layer(x)`` by ``x`` for a low-relevance layer;
* ``swap-pool`` — max pooling ↔ average pooling (same operation type, other reduction);
* ``add-skip``/``remove-skip`` — ``x = f(x)`` → ``x = x + f(x)`` and back.

Rules aimed at weak layers (remove, bypass, narrow, shrink, swap-pool, remove-skip) are
applied to the lowest-relevance lines first; rules that strengthen (widen, grow, add-skip)
to the highest. Whether an edit yields a valid model (shapes!) is decided afterwards by
the sandbox, so rules can be simple.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Iterable, Mapping

from nasassist_plugins.mutation.annotate import LineRelevance

__all__ = ["CodeEdit", "generate_edits"]

_WIDTH_LAYERS = {"Conv1d": (1, "out_channels"), "Conv2d": (1, "out_channels"), "Conv3d": (1, "out_channels"),
                 "Linear": (1, "out_features")}
_IN_ARGS = {"Conv1d": (0, "in_channels"), "Conv2d": (0, "in_channels"), "Conv3d": (0, "in_channels"),
            "Linear": (0, "in_features"), "BatchNorm1d": (0, "num_features"), "BatchNorm2d": (0, "num_features"),
            "BatchNorm3d": (0, "num_features"), "GroupNorm": (1, "num_channels"), "LayerNorm": (0, "normalized_shape")}
_SHAPE_PRESERVING = {"ReLU", "ReLU6", "GELU", "SiLU", "LeakyReLU", "ELU", "Tanh", "Sigmoid", "Hardswish", "Mish",
                     "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "Dropout", "Dropout2d", "Identity", "LayerNorm", "GroupNorm"}
_POOL_SWAP = {"MaxPool2d": "AvgPool2d", "AvgPool2d": "MaxPool2d", "AdaptiveMaxPool2d": "AdaptiveAvgPool2d",
              "AdaptiveAvgPool2d": "AdaptiveMaxPool2d", "MaxPool1d": "AvgPool1d", "AvgPool1d": "MaxPool1d"}


@dataclass(frozen=True)
class CodeEdit:
    """One rewritten source and what was done: ``rule``, the edited ``line`` and a sentence."""

    source: str
    rule: str
    line: int
    explanation: str
    relevance: float


@dataclass(frozen=True)
class _Splice:
    start: tuple[int, int]  # (line, col) 1-based line, 0-based col, as in ast
    end: tuple[int, int]
    text: str


def generate_edits(source: str, line_relevance: Mapping[int, LineRelevance], *, max_edits: int = 24,
                   widen_factor: float = 1.5) -> list[CodeEdit]:
    """Candidate edits of ``source``, weakest-layer edits and strongest-layer edits interleaved.

    ``line_relevance`` comes from :func:`~nasassist_plugins.mutation.annotate.line_relevance`;
    lines without relevance count as 0. Duplicated results are dropped.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    lines = source.splitlines(keepends=True)
    calls = _layer_calls(tree)
    rel = {line: info.signed for line, info in line_relevance.items()}

    def score(node: ast.AST) -> float:
        return rel.get(getattr(node, "lineno", 0), 0.0)

    weak: list[tuple[float, CodeEdit]] = []
    strong: list[tuple[float, CodeEdit]] = []
    for call, cls_name in calls:
        kind = _call_name(call)
        r = score(call)
        if kind in _WIDTH_LAYERS:
            for factor, bucket, label in ((widen_factor, strong, "widened"), (1 / widen_factor, weak, "narrowed")):
                edit = _width_edit(lines, tree, call, cls_name, factor, label, r)
                if edit:
                    bucket.append((r, edit))
        if kind.startswith("Conv"):
            for step, bucket, label in ((2, strong, "grew"), (-2, weak, "shrank")):
                edit = _kernel_edit(lines, call, step, label, r)
                if edit:
                    bucket.append((r, edit))
        if kind in _POOL_SWAP:
            edit = _apply(lines, [_Splice(*_func_name_span(call), _POOL_SWAP[kind])], "swap-pool", call.lineno,
                          f"replaced {kind} on line {call.lineno} (relevance {r:+.4f}) with {_POOL_SWAP[kind]}", r)
            if edit:
                weak.append((r, edit))
    for seq in _sequential_calls(tree):
        if len(seq.args) < 2:
            continue
        for k, element in enumerate(seq.args):
            if isinstance(element, ast.Call) and _removable(element):
                r = score(element)
                edit = _remove_arg(lines, seq, k, r)
                if edit:
                    weak.append((r, edit))
    for stmt, attr_call in _forward_layer_statements(tree):
        r = score_attr(tree, attr_call, rel)
        arg = attr_call.args[0]
        edit = _apply(lines, [_Splice(_start(attr_call), _end(attr_call), ast.get_source_segment(source, arg) or "")],
                      "bypass", stmt.lineno, f"bypassed self.{attr_call.func.attr} in forward (line {stmt.lineno}, "  # type: ignore[attr-defined]
                      f"relevance {r:+.4f}, among the least relevant layers)", r)
        if edit:
            weak.append((r, edit))
    for stmt, target in _skip_candidates(tree):
        value = stmt.value
        r = max((score_attr(tree, c, rel) for c in ast.walk(value) if _is_self_call(c)), default=0.0)
        text = ast.get_source_segment(source, value) or ""
        edit = _apply(lines, [_Splice(_start(value), _end(value), f"{target} + {text}")], "add-skip", stmt.lineno,
                      f"added a skip connection around line {stmt.lineno} (relevance {r:+.4f})", r)
        if edit:
            strong.append((r, edit))
    for stmt, kept in _residual_statements(tree):
        r = max((score_attr(tree, c, rel) for c in ast.walk(kept) if _is_self_call(c)), default=0.0)
        edit = _apply(lines, [_Splice(_start(stmt.value), _end(stmt.value), ast.get_source_segment(source, kept) or "")],
                      "remove-skip", stmt.lineno, f"removed the skip connection on line {stmt.lineno} (relevance {r:+.4f})", r)
        if edit:
            weak.append((r, edit))

    weak.sort(key=lambda t: t[0])
    strong.sort(key=lambda t: -t[0])
    out: list[CodeEdit] = []
    seen = {source}
    for pair in _interleave([e for _, e in weak], [e for _, e in strong]):
        if pair.source not in seen:
            seen.add(pair.source)
            out.append(pair)
        if len(out) >= max_edits:
            break
    return out


# ----------------------------------------------------------------------------- rules
def _width_edit(lines: list[str], tree: ast.Module, call: ast.Call, cls_name: str, factor: float, label: str,
                r: float) -> CodeEdit | None:
    kind = _call_name(call)
    arg = _arg(call, *_WIDTH_LAYERS[kind])
    if not _is_int(arg):
        return None
    old = int(arg.value)  # type: ignore[union-attr]
    new = max(1, int(round(old * factor)))
    if new >= 8:
        new = int(round(new / 4) * 4) or new
    if new == old:
        return None
    splices = [_Splice(_start(arg), _end(arg), str(new))]
    updated = 0
    for consumer in _later_calls(tree, call, cls_name):
        ckind = _call_name(consumer)
        if ckind not in _IN_ARGS:
            continue
        carg = _arg(consumer, *_IN_ARGS[ckind])
        if _is_int(carg) and int(carg.value) == old:  # type: ignore[union-attr]
            splices.append(_Splice(_start(carg), _end(carg), str(new)))
            updated += 1
            if ckind in _WIDTH_LAYERS:
                break
        elif ckind in _WIDTH_LAYERS:
            break
    what = "output channels" if kind.startswith("Conv") else "output features"
    return _apply(lines, splices, "widen" if factor > 1 else "narrow", call.lineno,
                  f"{label} the {kind} on line {call.lineno} (relevance {r:+.4f}) from {old} to {new} {what}"
                  + (f" and updated {updated} dependent layer{'s' if updated != 1 else ''}" if updated else ""), r)


def _kernel_edit(lines: list[str], call: ast.Call, step: int, label: str, r: float) -> CodeEdit | None:
    kernel = _arg(call, 2, "kernel_size")
    if not _is_int(kernel):
        return None
    old = int(kernel.value)  # type: ignore[union-attr]
    new = old + step
    if new < 1 or new > 7 or new % 2 == 0:
        return None
    splices = [_Splice(_start(kernel), _end(kernel), str(new))]
    padding = _arg(call, 4, "padding")
    if _is_int(padding) and int(padding.value) == old // 2:  # type: ignore[union-attr]
        splices.append(_Splice(_start(padding), _end(padding), str(new // 2)))
    elif padding is None and old == 1:
        return None  # a 1x1 conv without padding would change the output size
    elif padding is not None and not (isinstance(padding, ast.Constant) and padding.value == "same"):
        return None
    return _apply(lines, splices, "kernel", call.lineno,
                  f"{label} the kernel of the {_call_name(call)} on line {call.lineno} (relevance {r:+.4f}) from {old} to {new}", r)


def _remove_arg(lines: list[str], seq: ast.Call, k: int, r: float) -> CodeEdit | None:
    element = seq.args[k]
    if k + 1 < len(seq.args):
        splice = _Splice(_start(element), _start(seq.args[k + 1]), "")
    else:
        splice = _Splice(_end(seq.args[k - 1]), _end(element), "")
    return _apply(lines, [splice], "remove", element.lineno,
                  f"removed the {_call_name(element)} on line {element.lineno} (relevance {r:+.4f}, among the least relevant layers)", r)


# ----------------------------------------------------------------------------- site finders
def _layer_calls(tree: ast.Module) -> list[tuple[ast.Call, str]]:
    """Every ``nn.X(...)`` construction inside a class, with the class name."""
    found = []
    for cls in tree.body:
        if isinstance(cls, ast.ClassDef):
            for node in ast.walk(cls):
                if isinstance(node, ast.Call) and _is_nn_call(node):
                    found.append((node, cls.name))
    found.sort(key=lambda t: (t[0].lineno, t[0].col_offset))
    return found


def _later_calls(tree: ast.Module, call: ast.Call, cls_name: str) -> list[ast.Call]:
    """nn calls of the same class after ``call`` in source order."""
    pos = (call.lineno, call.col_offset)
    return [c for c, name in _layer_calls(tree) if name == cls_name and (c.lineno, c.col_offset) > pos]


def _sequential_calls(tree: ast.Module) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and _is_nn_call(n) and _call_name(n) == "Sequential"
            and not any(isinstance(a, ast.Starred) for a in n.args)]


def _forward_methods(tree: ast.Module) -> list[ast.FunctionDef]:
    return [f for c in tree.body if isinstance(c, ast.ClassDef) for f in c.body
            if isinstance(f, ast.FunctionDef) and f.name == "forward"]


def _forward_layer_statements(tree: ast.Module) -> list[tuple[ast.stmt, ast.Call]]:
    """``self.layer(x)`` calls with one plain-name argument inside ``forward``."""
    found = []
    for fn in _forward_methods(tree):
        for stmt in fn.body:
            for node in ast.walk(stmt):
                if _is_self_call(node) and len(node.args) == 1 and isinstance(node.args[0], ast.Name) and not node.keywords:  # type: ignore[attr-defined]
                    found.append((stmt, node))
    return found  # type: ignore[return-value]


def _skip_candidates(tree: ast.Module) -> list[tuple[ast.Assign, str]]:
    """``x = <expr using self.layer(...)>`` where ``x`` is also read by the expression, not already residual."""
    found = []
    for fn in _forward_methods(tree):
        for stmt in fn.body:
            if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)):
                continue
            target = stmt.targets[0].id
            value = stmt.value
            if isinstance(value, ast.BinOp) and isinstance(value.op, ast.Add):
                continue
            reads = {n.id for n in ast.walk(value) if isinstance(n, ast.Name)}
            if target in reads and any(_is_self_call(n) for n in ast.walk(value)):
                found.append((stmt, target))
    return found


def _residual_statements(tree: ast.Module) -> list[tuple[ast.Assign, ast.expr]]:
    """``x = x + f(...)`` / ``x = f(...) + x``: the statement and the kept operand."""
    found = []
    for fn in _forward_methods(tree):
        for stmt in ast.walk(fn):
            if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.BinOp) and isinstance(stmt.value.op, ast.Add):
                left, right = stmt.value.left, stmt.value.right
                if isinstance(left, ast.Name) and any(_is_self_call(n) for n in ast.walk(right)):
                    found.append((stmt, right))
                elif isinstance(right, ast.Name) and any(_is_self_call(n) for n in ast.walk(left)):
                    found.append((stmt, left))
    return found


def score_attr(tree: ast.Module, call: ast.AST, rel: Mapping[int, float]) -> float:
    """Relevance of ``self.attr(...)``: the relevance of the line where ``self.attr`` is assigned."""
    attr = call.func.attr  # type: ignore[attr-defined]
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Attribute) and t.attr == attr and isinstance(t.value, ast.Name) and t.value.id == "self":
                    return rel.get(node.value.lineno, 0.0)
    return 0.0


# ----------------------------------------------------------------------------- helpers
def _removable(call: ast.Call) -> bool:
    kind = _call_name(call)
    if kind in _SHAPE_PRESERVING:
        return True
    if kind == "Conv2d":
        cin, cout, k = _arg(call, 0, "in_channels"), _arg(call, 1, "out_channels"), _arg(call, 2, "kernel_size")
        stride, padding = _arg(call, 3, "stride"), _arg(call, 4, "padding")
        same_width = _is_int(cin) and _is_int(cout) and cin.value == cout.value  # type: ignore[union-attr]
        unit_stride = stride is None or (_is_int(stride) and stride.value == 1)  # type: ignore[union-attr]
        same_size = _is_int(k) and (k.value == 1 or (_is_int(padding) and padding.value == k.value // 2))  # type: ignore[union-attr]
        return bool(same_width and unit_stride and same_size)
    return False


def _is_nn_call(node: ast.Call) -> bool:
    func = node.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "nn":
        return True
    return (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Attribute) and func.value.attr == "nn"
            and isinstance(func.value.value, ast.Name) and func.value.value.id == "torch")


def _is_self_call(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "self")


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _func_name_span(call: ast.Call) -> tuple[tuple[int, int], tuple[int, int]]:
    func = call.func
    end = _end(func)
    return (end[0], end[1] - len(_call_name(call))), end


def _arg(call: ast.Call, position: int, keyword: str) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg == keyword:
            return kw.value
    if position < len(call.args) and not any(isinstance(a, ast.Starred) for a in call.args[: position + 1]):
        return call.args[position]
    return None


def _is_int(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int


def _start(node: ast.AST) -> tuple[int, int]:
    return node.lineno, node.col_offset  # type: ignore[attr-defined]


def _end(node: ast.AST) -> tuple[int, int]:
    return node.end_lineno, node.end_col_offset  # type: ignore[attr-defined]


def _apply(lines: list[str], splices: Iterable[_Splice], rule: str, line: int, explanation: str, r: float) -> CodeEdit | None:
    """Apply non-overlapping splices (positions are in characters of the original lines)."""
    ordered = sorted(splices, key=lambda s: s.start, reverse=True)
    for a, b in zip(ordered[1:], ordered):
        if a.end > b.start:
            return None
    text = list(lines)
    offsets = _line_offsets(text)
    flat = "".join(text)
    for s in ordered:
        i = offsets[s.start[0] - 1] + _char_col(text[s.start[0] - 1], s.start[1])
        j = offsets[s.end[0] - 1] + _char_col(text[s.end[0] - 1], s.end[1])
        flat = flat[:i] + s.text + flat[j:]
    try:
        ast.parse(flat)
    except SyntaxError:
        return None
    return CodeEdit(flat, rule, line, explanation, r)


def _line_offsets(lines: list[str]) -> list[int]:
    offsets, total = [], 0
    for line in lines:
        offsets.append(total)
        total += len(line)
    return offsets


def _char_col(line: str, byte_col: int) -> int:
    """ast columns are UTF-8 byte offsets; convert to a character index."""
    return len(line.encode("utf-8")[:byte_col].decode("utf-8", errors="ignore"))


def _interleave(a: list[CodeEdit], b: list[CodeEdit]) -> Iterable[CodeEdit]:
    for i in range(max(len(a), len(b))):
        if i < len(a):
            yield a[i]
        if i < len(b):
            yield b[i]
