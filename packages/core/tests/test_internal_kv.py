"""shoal.experimental.internal_kv: the runtime's key-value store, as Ray's internal_kv behaves."""

from __future__ import annotations

import uuid

import pytest

import shoal
from shoal.experimental import internal_kv as kv

pytestmark = pytest.mark.usefixtures("shoal_runtime")


def _key() -> str:
    return f"k-{uuid.uuid4().hex}"


def test_put_get_exists_and_delete() -> None:
    assert kv._internal_kv_initialized()
    key = _key()
    assert kv._internal_kv_get(key) is None
    assert not kv._internal_kv_exists(key)
    assert kv._internal_kv_put(key, "one") is False  # did not exist before
    assert kv._internal_kv_get(key) == b"one"
    assert kv._internal_kv_get(key.encode()) == b"one"
    assert kv._internal_kv_put(key, b"two") is True
    assert kv._internal_kv_get(key) == b"two"
    assert kv._internal_kv_del(key) == 1
    assert kv._internal_kv_del(key) == 0
    assert kv._internal_kv_get(key) is None


def test_overwrite_false_keeps_the_first_value() -> None:
    key = _key()
    assert kv._internal_kv_put(key, b"first", overwrite=False) is False
    assert kv._internal_kv_put(key, b"second", overwrite=False) is True
    assert kv._internal_kv_get(key) == b"first"


def test_namespaces_are_separate_and_list_and_prefix_delete() -> None:
    prefix = _key()
    kv._internal_kv_put(prefix + "/a", b"1", namespace="ns1")
    kv._internal_kv_put(prefix + "/b", b"2", namespace="ns1")
    kv._internal_kv_put(prefix + "/a", b"3", namespace="ns2")
    assert kv._internal_kv_get(prefix + "/a") is None
    assert kv._internal_kv_get(prefix + "/a", namespace="ns2") == b"3"
    assert sorted(kv._internal_kv_list(prefix, namespace="ns1")) == [
        (prefix + "/a").encode(),
        (prefix + "/b").encode(),
    ]
    assert kv._internal_kv_del(prefix, del_by_prefix=True, namespace="ns1") == 2
    assert kv._internal_kv_list(prefix, namespace="ns1") == []
    assert kv._internal_kv_get(prefix + "/a", namespace="ns2") == b"3"


def test_bad_keys_and_values_are_refused() -> None:
    with pytest.raises(TypeError, match="key must be str or bytes, got int"):
        kv._internal_kv_get(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="key must be UTF-8"):
        kv._internal_kv_put(b"\xff", b"x")
    with pytest.raises(TypeError, match="value must be str or bytes, got dict"):
        kv._internal_kv_put(_key(), {"a": 1})  # type: ignore[arg-type]


def test_without_a_runtime_it_says_to_init() -> None:
    shoal.shutdown()
    assert not kv._internal_kv_initialized()
    with pytest.raises(RuntimeError, match=r"call shoal\.init\(\) before using internal_kv"):
        kv._internal_kv_get("x")
