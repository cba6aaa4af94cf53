"""Keeping credentials out of logs and status output.

Two layers: the exact values of secret-looking config keys (found by
walking the cluster config), and patterns for credentials that may arrive
inside cloud SDK error messages (AWS key ids, bearer tokens, private keys,
``token=...`` pairs, signed-URL signatures).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["Redactor", "redact", "MASK", "is_secret_key"]

MASK = "***"
_SECRET_KEY = re.compile(
    r"secret|token|passw|credential|private_key|api_?key|access_key|auth_key|sas|connection_string|signature",
    re.IGNORECASE,
)
_PATTERNS = [
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL), MASK),
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), MASK),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/]+=*"), r"\1" + MASK),
    (
        re.compile(
            r"(?i)\b((?:[\w-]*(?:secret|token|passw(?:or)?d|signature|credential|api[_-]?key|access[_-]?key)"
            r"[\w-]*|sig)\s*[=:]\s*['\"]?)[^\s'\",;&}]+"
        ),
        r"\1" + MASK,
    ),
]


# 40-character AWS secret access keys: base64-ish with mixed case and digits (a lowercase
# hex digest such as a git commit id has no capitals, so it is left alone).
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")


def _mask_aws_secret(m: re.Match[str]) -> str:
    s = m.group(0)
    mixed = any(c.isupper() for c in s) and any(c.islower() for c in s) and any(c.isdigit() for c in s)
    return MASK if mixed else s


def is_secret_key(key: str) -> bool:
    """Whether a config key names a credential (its value must never be shown)."""
    return bool(_SECRET_KEY.search(key))


def redact(text: str) -> str:
    """``text`` with credential-looking substrings masked."""
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return _AWS_SECRET.sub(_mask_aws_secret, text)


class Redactor:
    """Masks known secret values and credential patterns in any text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        for s in secrets:
            self.add(s)

    @classmethod
    def from_config(cls, *configs: Any) -> Redactor:
        """Collect the values of secret-looking keys anywhere in nested mappings and lists."""
        found: list[str] = []

        def walk(value: Any, secret: bool) -> None:
            if isinstance(value, Mapping):
                for k, v in value.items():
                    walk(v, secret or (isinstance(k, str) and is_secret_key(k)))
            elif isinstance(value, (list, tuple)):
                for v in value:
                    walk(v, secret)
            elif secret and isinstance(value, (str, int)) and not isinstance(value, bool):
                found.append(str(value))

        for c in configs:
            walk(c, False)
        return cls(found)

    def add(self, secret: str) -> None:
        # Very short values would mask unrelated text; they are not real credentials.
        if isinstance(secret, str) and len(secret) >= 4 and secret not in self._secrets:
            self._secrets.append(secret)
            self._secrets.sort(key=len, reverse=True)

    def __call__(self, text: str) -> str:
        text = str(text)
        for s in self._secrets:
            text = text.replace(s, MASK)
        return redact(text)

    def mapping(self, value: Any) -> Any:
        """A copy of nested config with secret-looking keys' values masked (for display)."""
        if isinstance(value, Mapping):
            return {k: (MASK if isinstance(k, str) and is_secret_key(k) else self.mapping(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.mapping(v) for v in value]
        if isinstance(value, str):
            return self(value)
        return value
