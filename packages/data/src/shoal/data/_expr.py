"""String predicates for ``Dataset.filter(expr=...)``, compiled to Arrow compute expressions.

The grammar is a safe subset of Python expressions: column names (dotted
names such as ``sepal.length`` name one column), literals, comparisons
(chained too), ``in`` / ``not in`` a list of literals, ``is None`` /
``is not None``, ``and`` / ``or`` / ``not``, arithmetic and the calls
``is_null(x)``, ``is_valid(x)`` and ``is_nan(x)``. Nothing is evaluated
by Python: an unsupported construct is a ``ValueError`` when ``filter`` is
called, before anything runs.
"""

from __future__ import annotations

import ast
from typing import Any

import pyarrow.compute as pc

__all__ = ["compile_predicate"]

_COMPARE = {
    ast.Lt: pc.less,
    ast.LtE: pc.less_equal,
    ast.Gt: pc.greater,
    ast.GtE: pc.greater_equal,
    ast.Eq: pc.equal,
    ast.NotEq: pc.not_equal,
}
_ARITHMETIC = {
    ast.Add: pc.add,
    ast.Sub: pc.subtract,
    ast.Mult: pc.multiply,
    ast.Div: pc.divide,
}
_CALLS = {"is_null": "is_null", "is_valid": "is_valid", "is_nan": "is_nan"}


def compile_predicate(expr: str) -> pc.Expression:
    """The Arrow expression for ``expr``; ``ValueError`` naming what is not supported."""
    if not isinstance(expr, str) or not expr.strip():
        raise ValueError(f"filter expr must be a non-empty string, got {expr!r}")
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as e:
        raise ValueError(f"filter expr {expr!r} is not a valid expression: {e.msg}") from None
    return _Compiler(expr).visit(tree.body)


class _Compiler:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, node: ast.AST, what: str) -> ValueError:
        return ValueError(f"filter expr {self.source!r}: {what} is not supported ({ast.unparse(node)!r})")

    def visit(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return pc.scalar(node.value)
        if isinstance(node, (ast.Name, ast.Attribute)):
            return pc.field(self.column_name(node))
        if isinstance(node, ast.BoolOp):
            values = [self.visit(v) for v in node.values]
            out = values[0]
            for v in values[1:]:
                out = (out & v) if isinstance(node.op, ast.And) else (out | v)
            return out
        if isinstance(node, ast.UnaryOp):
            operand = self.visit(node.operand)
            if isinstance(node.op, ast.Not):
                return ~operand
            if isinstance(node.op, ast.USub):
                return pc.negate(operand)
            if isinstance(node.op, ast.UAdd):
                return operand
            raise self.fail(node, "this unary operator")
        if isinstance(node, ast.BinOp):
            fn = _ARITHMETIC.get(type(node.op))
            if fn is None:
                raise self.fail(node, "this arithmetic operator")
            return fn(self.visit(node.left), self.visit(node.right))
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else None
            if name not in _CALLS or len(node.args) != 1 or node.keywords:
                raise self.fail(node, f"a call other than {', '.join(f'{c}(column)' for c in _CALLS)}")
            return getattr(self.visit(node.args[0]), _CALLS[name])()
        raise self.fail(node, type(node).__name__)

    def column_name(self, node: ast.AST) -> str:
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.Attribute):
            return f"{self.column_name(node.value)}.{node.attr}"
        raise self.fail(node, "this column reference")

    def compare(self, node: ast.Compare) -> Any:
        out = None
        left = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            term = self.comparison(node, left, op, right)
            out = term if out is None else out & term
            left = right
        return out

    def comparison(self, node: ast.Compare, left: ast.expr, op: ast.cmpop, right: ast.expr) -> Any:
        if isinstance(op, (ast.Is, ast.IsNot)):
            if not (isinstance(right, ast.Constant) and right.value is None):
                raise self.fail(node, "'is' with anything but None")
            value = self.visit(left)
            return value.is_null() if isinstance(op, ast.Is) else value.is_valid()
        if isinstance(op, (ast.In, ast.NotIn)):
            if not isinstance(right, (ast.List, ast.Tuple, ast.Set)) or not all(
                isinstance(e, ast.Constant) for e in right.elts
            ):
                raise self.fail(node, "'in' with anything but a list of literals")
            test = self.visit(left).isin([e.value for e in right.elts])  # type: ignore[attr-defined]
            return test if isinstance(op, ast.In) else ~test
        return _COMPARE[type(op)](self.visit(left), self.visit(right))
