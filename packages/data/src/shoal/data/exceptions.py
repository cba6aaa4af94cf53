"""Errors of shoal.data."""

from __future__ import annotations

from typing import Any

from shoal.exceptions import ShoalError

__all__ = ["UserCodeException"]


class UserCodeException(ShoalError):
    """A user-defined function (map, map_batches, filter...) raised; the message names it and holds its traceback.

    ``op_name`` is the operator (e.g. ``MapBatches(parse)``), ``cause`` the
    exception the UDF raised (also chained as ``__cause__``).
    """

    def __init__(self, message: str, op_name: str = "", cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.op_name = op_name
        self.cause = cause

    def __reduce__(self) -> Any:
        return (type(self), (self.args[0] if self.args else "", self.op_name, self.cause))
