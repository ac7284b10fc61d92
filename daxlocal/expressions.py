"""Compiled DAX expressions back to DynamoDB expression text, and projections.

The encoding is described in docs/dax-protocol.md §Compiled expressions and projections.

The client never sends expression text: it compiles each expression into a CBOR tree whose values
live in a per-expression array. The node turns the trees back into text with its own placeholders
(``#n0``... for every name, ``:c0``/``:k0``/``:f0``/``:u0``... per expression kind), which avoids
reserved-word problems and keeps the value arrays of different expressions apart.
"""

from __future__ import annotations

from typing import Any

from . import cbor
from .codec import CodecError, av_from_cbor

EQ, NE, LT, GE, GT, LE = range(6)
AND, OR, NOT, BETWEEN, IN = 6, 7, 8, 9, 10
ATTRIBUTE_EXISTS, ATTRIBUTE_NOT_EXISTS, ATTRIBUTE_TYPE, BEGINS_WITH, CONTAINS, SIZE = range(11, 17)
VARIABLE, PATH = 17, 18
SET, ADD, DELETE, REMOVE = 19, 20, 21, 22
IF_NOT_EXISTS, LIST_APPEND, PLUS, MINUS = 23, 24, 25, 26

_COMPARATORS = {EQ: "=", NE: "<>", LT: "<", GE: ">=", GT: ">", LE: "<="}
_FUNCTIONS = {
    ATTRIBUTE_EXISTS: "attribute_exists",
    ATTRIBUTE_NOT_EXISTS: "attribute_not_exists",
    ATTRIBUTE_TYPE: "attribute_type",
    BEGINS_WITH: "begins_with",
    CONTAINS: "contains",
    SIZE: "size",
    IF_NOT_EXISTS: "if_not_exists",
    LIST_APPEND: "list_append",
}
_ACTION_KEYWORDS = {SET: "SET", REMOVE: "REMOVE", ADD: "ADD", DELETE: "DELETE"}

# A document path: text elements are map keys, ints are list indexes.
Path = tuple


class ExpressionError(ValueError):
    """A compiled expression is malformed."""


class Placeholders:
    """Names and values shared by all the expressions of one DynamoDB request."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, dict] = {}
        self._by_name: dict[str, str] = {}

    def name(self, attribute: str) -> str:
        if attribute not in self._by_name:
            placeholder = f"#n{len(self._by_name)}"
            self._by_name[attribute] = placeholder
            self.names[placeholder] = attribute
        return self._by_name[attribute]

    def path(self, path: Path) -> str:
        out = []
        for element in path:
            if isinstance(element, int):
                out.append(f"[{element}]")
            else:
                out.append(("." if out else "") + self.name(element))
        return "".join(out)

    def apply(self, request: dict) -> dict:
        """Add ExpressionAttributeNames/Values to a botocore request when any were used."""
        if self.names:
            request["ExpressionAttributeNames"] = dict(self.names)
        if self.values:
            request["ExpressionAttributeValues"] = dict(self.values)
        return request


def _unpack(compiled: Any, kind: str) -> tuple[Any, list]:
    obj = cbor.loads(compiled) if isinstance(compiled, bytes) else compiled
    if kind == "projection":
        if not (isinstance(obj, list) and len(obj) == 2 and obj[0] == 1 and isinstance(obj[1], list)):
            raise ExpressionError("projection must be [1, [path, ...]]")
        return obj[1], []
    if not (isinstance(obj, list) and len(obj) == 3 and obj[0] == 1 and isinstance(obj[2], list)):
        raise ExpressionError(f"{kind} expression must be [1, spec, values]")
    return obj[1], obj[2]


class _Renderer:
    def __init__(self, placeholders: Placeholders, prefix: str, values: list) -> None:
        self.p = placeholders
        self.prefix = prefix
        self.values = values

    def variable(self, index: Any) -> str:
        if not isinstance(index, int) or not 0 <= index < len(self.values):
            raise ExpressionError(f"variable index {index!r} out of range")
        placeholder = f":{self.prefix}{index}"
        if placeholder not in self.p.values:
            try:
                self.p.values[placeholder] = av_from_cbor(self.values[index])
            except CodecError as exc:
                raise ExpressionError(str(exc)) from exc
        return placeholder

    def operand(self, node: Any) -> str:
        op, args = _node(node)
        if op == PATH:
            return self.p.path(path_from_spec(node))
        if op == VARIABLE:
            return self.variable(_arg(args, 0))
        if op in (SIZE, IF_NOT_EXISTS, LIST_APPEND):
            return f"{_FUNCTIONS[op]}({', '.join(self.operand(a) for a in args)})"
        if op in (PLUS, MINUS):
            _arity(args, 2)
            return f"{self.operand(args[0])} {'+' if op == PLUS else '-'} {self.operand(args[1])}"
        raise ExpressionError(f"function {op} is not an operand")

    def condition(self, node: Any, nested: bool = False) -> str:
        op, args = _node(node)
        if op in _COMPARATORS:
            _arity(args, 2)
            return f"{self.operand(args[0])} {_COMPARATORS[op]} {self.operand(args[1])}"
        if op in (AND, OR):
            _arity(args, 2)
            text = f"{self.condition(args[0], True)} {'AND' if op == AND else 'OR'} {self.condition(args[1], True)}"
            return f"({text})" if nested else text
        if op == NOT:
            _arity(args, 1)
            return f"NOT ({self.condition(args[0])})"
        if op == BETWEEN:
            _arity(args, 3)
            return f"{self.operand(args[0])} BETWEEN {self.operand(args[1])} AND {self.operand(args[2])}"
        if op == IN:
            _arity(args, 2)
            if not isinstance(args[1], list) or not args[1]:
                raise ExpressionError("IN needs a non-empty list")
            return f"{self.operand(args[0])} IN ({', '.join(self.operand(a) for a in args[1])})"
        if op in (ATTRIBUTE_EXISTS, ATTRIBUTE_NOT_EXISTS, ATTRIBUTE_TYPE, BEGINS_WITH, CONTAINS):
            return f"{_FUNCTIONS[op]}({', '.join(self.operand(a) for a in args)})"
        raise ExpressionError(f"function {op} is not a condition")

    def update(self, actions: Any) -> str:
        if not isinstance(actions, list) or not actions:
            raise ExpressionError("update expression must be a non-empty list of actions")
        clauses: dict[int, list[str]] = {}
        for action in actions:
            op, args = _node(action)
            if op == SET:
                _arity(args, 2)
                text = f"{self.operand(args[0])} = {self.operand(args[1])}"
            elif op == REMOVE:
                _arity(args, 1)
                text = self.operand(args[0])
            elif op in (ADD, DELETE):
                _arity(args, 2)
                text = f"{self.operand(args[0])} {self.operand(args[1])}"
            else:
                raise ExpressionError(f"function {op} is not an update action")
            clauses.setdefault(op, []).append(text)
        return " ".join(f"{_ACTION_KEYWORDS[op]} {', '.join(texts)}" for op, texts in clauses.items())


def _node(node: Any) -> tuple[int, list]:
    if not isinstance(node, list) or not node or not isinstance(node[0], int) or isinstance(node[0], bool):
        raise ExpressionError(f"malformed expression node {node!r}")
    return node[0], node[1:]


def _arg(args: list, i: int) -> Any:
    if len(args) <= i:
        raise ExpressionError("missing argument")
    return args[i]


def _arity(args: list, n: int) -> None:
    if len(args) != n:
        raise ExpressionError(f"expected {n} arguments, got {len(args)}")


def path_from_spec(node: Any) -> Path:
    op, elements = _node(node)
    if op != PATH or not elements:
        raise ExpressionError("expected a document path")
    out = []
    for i, element in enumerate(elements):
        if isinstance(element, str):
            out.append(element)
        elif isinstance(element, cbor.Tag) and element.tag == cbor.TAG_DOCUMENT_PATH_ORDINAL and i > 0 \
                and isinstance(element.value, int) and element.value >= 0:
            out.append(element.value)
        else:
            raise ExpressionError(f"bad document path element {element!r}")
    return tuple(out)


def condition_text(compiled: bytes, placeholders: Placeholders, prefix: str) -> str:
    spec, values = _unpack(compiled, "condition")
    return _Renderer(placeholders, prefix, values).condition(spec)


def update_text(compiled: bytes, placeholders: Placeholders, prefix: str = "u") -> str:
    spec, values = _unpack(compiled, "update")
    return _Renderer(placeholders, prefix, values).update(spec)


def projection_paths(compiled: bytes) -> list[Path]:
    paths, _ = _unpack(compiled, "projection")
    if not paths:
        raise ExpressionError("empty projection")
    return [path_from_spec(p) for p in paths]


def check_projection(paths: list[Path]) -> None:
    """DynamoDB's rule: no path may equal or contain another (its error text, so callers match)."""
    for i, a in enumerate(paths):
        for b in paths[i + 1:]:
            shorter = min(len(a), len(b))
            if a[:shorter] == b[:shorter]:
                raise ExpressionError(
                    "Invalid ProjectionExpression: Two document paths overlap with each other; must remove or "
                    f"rewrite one of these paths; path one: {_show(a)}, path two: {_show(b)}"
                )


def _show(path: Path) -> str:
    return "[" + ", ".join(f"[{e}]" if isinstance(e, int) else e for e in path) + "]"


def projection_for_dynamodb(paths: list[Path], placeholders: Placeholders) -> str:
    """Top-level attributes only: the node walks the full paths itself.

    DynamoDB compacts projected lists (``l[3]`` comes back at index 0), which would break the
    ordinal mapping the client expects, so the node asks for whole top-level attributes.
    """
    seen: list[str] = []
    for path in paths:
        if path[0] not in seen:
            seen.append(path[0])
    return ", ".join(placeholders.name(name) for name in seen)


def resolve_path(item: dict, path: Path) -> dict | None:
    """The AV at ``path`` in a full item, or None when any step is absent."""
    av: Any = {"M": item}
    for element in path:
        if isinstance(element, int):
            values = av.get("L") if isinstance(av, dict) else None
            if values is None or element >= len(values):
                return None
            av = values[element]
        else:
            members = av.get("M") if isinstance(av, dict) else None
            if members is None or element not in members:
                return None
            av = members[element]
    return av


def project(item: dict, paths: list[Path]) -> dict[int, dict]:
    """``{ordinal: AV}`` for the paths present in ``item``, the client's projection-map form."""
    out = {}
    for ordinal, path in enumerate(paths):
        av = resolve_path(item, path)
        if av is not None:
            out[ordinal] = av
    return out
