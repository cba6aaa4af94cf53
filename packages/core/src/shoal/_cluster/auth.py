"""Cluster tokens: generated at ``shoal start --head``, stored 0600 under the user's home.

Every RPC carries the token in its metadata; a server interceptor rejects a
call without the right one before any handler (or deserializer of a
payload) runs. Local drivers present it in their first message.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

__all__ = [
    "TOKEN_HEADER",
    "default_token_path",
    "generate_token",
    "read_token",
    "write_token",
    "TokenInterceptor",
    "token_metadata",
    "tokens_match",
]

TOKEN_HEADER = "shoal-token"


def shoal_home() -> Path:
    return Path(os.path.expanduser("~")) / ".shoal"


def default_token_path(address: str | None = None) -> Path:
    """Where a cluster's token lives: one file per head address, so clusters can coexist."""
    home = shoal_home()
    if address:
        return home / f"token-{address.replace(':', '-')}"
    return home / "token"


def generate_token() -> str:
    return secrets.token_urlsafe(32)


def write_token(path: Path, token: str) -> None:
    """Write ``token`` readable by this user only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, token.encode())
    finally:
        os.close(fd)
    os.chmod(path, 0o600)


def read_token(path: Path) -> str:
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        from shoal.exceptions import AuthenticationError

        raise AuthenticationError(
            f"no cluster token at {path}; copy it from the head node (it is written by `shoal start --head`) "
            "or set SHOAL_TOKEN_PATH"
        ) from None
    if not token:
        from shoal.exceptions import AuthenticationError

        raise AuthenticationError(f"the cluster token file {path} is empty")
    return token


def tokens_match(given: str | bytes | None, expected: str) -> bool:
    if given is None:
        return False
    if isinstance(given, bytes):
        given = given.decode(errors="replace")
    return hmac.compare_digest(given, expected)


def token_metadata(token: str) -> tuple[tuple[str, str], ...]:
    return ((TOKEN_HEADER, token),)


def _deny(ignored: Any, context: grpc.ServicerContext) -> Any:
    context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong cluster token")


class TokenInterceptor(grpc.ServerInterceptor):
    """Rejects every call whose metadata lacks the cluster token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Any], handler_call_details: grpc.HandlerCallDetails
    ) -> Any:
        for key, value in handler_call_details.invocation_metadata or ():
            if key == TOKEN_HEADER and tokens_match(value, self._token):
                return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        # Answer with the same arity as the real method, without reading the request.
        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(_deny_stream)
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(_deny)
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(_deny_stream, request_deserializer=_raw)
        return grpc.unary_unary_rpc_method_handler(_deny, request_deserializer=_raw)


def _raw(data: bytes) -> bytes:
    # The request of an unauthenticated call is never parsed.
    return data


def _deny_stream(ignored: Any, context: grpc.ServicerContext) -> Any:
    context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong cluster token")
    yield  # pragma: no cover - abort raises
