"""``@serve.ingress(app)``: serve a FastAPI or Starlette app from a deployment class."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["bind_asgi_app", "ingress"]

_ATTR = "__serve_asgi_app__"


def ingress(app: Any) -> Callable[[type], type]:
    """Make a deployment class answer HTTP with ``app`` (an ASGI app, e.g. FastAPI or Starlette).

    Methods of the class decorated with ``@app.get(...)`` and friends become
    routes bound to the replica's instance, as in Ray Serve.
    """
    if not callable(app):
        raise TypeError(
            f"@serve.ingress expects an ASGI app (FastAPI or Starlette) or a function returning one, got {app!r}"
        )

    def decorate(cls: type) -> type:
        if not inspect.isclass(cls):
            raise TypeError(f"@serve.ingress decorates a class, got {cls!r}")
        if "__call__" in vars(cls):
            raise ValueError("a class decorated with @serve.ingress must not define __call__; its app answers HTTP")
        setattr(cls, _ATTR, app)
        return cls

    return decorate


def _resolve_app(app: Any) -> Any:
    # Ray also takes a builder: a function that returns the app.
    if inspect.isfunction(app) and len(inspect.signature(app).parameters) == 0:
        return app()
    return app


def bind_asgi_app(cls: type, instance: Any) -> Any:
    """The ASGI app of a replica: the class's app with method routes bound to ``instance``."""
    app = _resolve_app(getattr(cls, _ATTR))
    own = {id(fn): name for name, fn in inspect.getmembers(cls, inspect.isfunction)}
    try:
        from fastapi import FastAPI
        from fastapi.routing import APIRoute
    except ImportError:
        return app
    if not isinstance(app, FastAPI):
        return app
    # The app was unpickled in this replica's process and serves only this
    # instance, so its routes are rebound in place.
    routes = app.router.routes
    for i, route in enumerate(routes):
        if isinstance(route, APIRoute) and id(route.endpoint) in own:
            routes[i] = _rebind(route, getattr(instance, own[id(route.endpoint)]))
    return app


def _rebind(route: Any, bound: Callable[..., Any]) -> Any:
    from fastapi.routing import APIRoute

    # A fresh route over the bound method: FastAPI reads parameters from the
    # endpoint's signature, and a bound method's signature has no ``self``.
    return APIRoute(
        route.path,
        bound,
        response_model=route.response_model,
        status_code=route.status_code,
        tags=route.tags,
        dependencies=route.dependencies,
        summary=route.summary,
        description=route.description,
        response_description=route.response_description,
        responses=route.responses,
        deprecated=route.deprecated,
        name=route.name,
        methods=route.methods,
        operation_id=route.operation_id,
        response_model_include=route.response_model_include,
        response_model_exclude=route.response_model_exclude,
        response_model_by_alias=route.response_model_by_alias,
        response_model_exclude_unset=route.response_model_exclude_unset,
        response_model_exclude_defaults=route.response_model_exclude_defaults,
        response_model_exclude_none=route.response_model_exclude_none,
        include_in_schema=route.include_in_schema,
        response_class=route.response_class,
        dependency_overrides_provider=route.dependency_overrides_provider,
        callbacks=route.callbacks,
        openapi_extra=route.openapi_extra,
        generate_unique_id_function=route.generate_unique_id_function,
    )
