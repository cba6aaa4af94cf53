"""``register_env`` and turning an ``env`` setting into a function that makes environments."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any

from shoal.rl.env.env_context import EnvContext
from shoal.rl.errors import EnvError

__all__ = ["EnvCreator", "get_registered_env", "make_env_creator", "register_env"]

EnvCreator = Callable[[EnvContext], Any]

# Names registered in this process. The config also carries the creator of the
# env it names (see AlgorithmConfig.to_dict), so processes that never called
# register_env (env runners, tune trials) can still build the env.
_REGISTRY: dict[str, EnvCreator] = {}


def register_env(name: str, env_creator: EnvCreator) -> None:
    """Register ``env_creator(env_config) -> gymnasium.Env`` under ``name``.

    ``config.environment(env=name)`` then builds environments with it; the
    name shadows a gymnasium id of the same spelling.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_env() needs a non-empty name, got {name!r}")
    if not callable(env_creator):
        raise TypeError(f"register_env() needs a callable env_creator, got {env_creator!r}")
    _REGISTRY[name] = env_creator


def get_registered_env(name: str) -> EnvCreator | None:
    """The creator registered under ``name`` in this process, or None."""
    return _REGISTRY.get(name)


def _gymnasium_creator(env_id: str, disable_env_checker: bool = False) -> EnvCreator:
    def create(ctx: EnvContext) -> Any:
        import gymnasium as gym

        if disable_env_checker:
            return gym.make(env_id, disable_env_checker=True, **dict(ctx))
        return gym.make(env_id, **dict(ctx))

    create.__qualname__ = f"gymnasium.make({env_id!r})"
    return create


def _check_gymnasium_id(env_id: str) -> None:
    import gymnasium as gym

    if ":" in env_id:
        # "package.module:EnvName-v0": gymnasium imports the module on make().
        return
    if env_id in gym.envs.registry:
        return
    known = list(gym.envs.registry) + list(_REGISTRY)
    close = difflib.get_close_matches(env_id, known, n=3)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise EnvError(
        f"env {env_id!r} is neither a registered gymnasium id nor a name registered with "
        f"shoal.rl.register_env().{hint} Pass a gymnasium id such as 'CartPole-v1', an env class, or "
        "a creator function, or call shoal.rl.register_env(name, creator) first."
    )


def make_env_creator(
    env: Any, registered: dict[str, EnvCreator] | None = None, disable_env_checking: bool = False
) -> EnvCreator:
    """A function ``creator(env_context) -> gymnasium.Env`` for the ``env`` setting of a config.

    ``env`` may be a name given to :func:`register_env`, a gymnasium id, a
    ``gymnasium.Env`` subclass (called with the EnvContext) or any callable
    taking the EnvContext. ``registered`` holds creators carried by a config
    from another process. ``disable_env_checking`` turns off gymnasium's
    env checker for gymnasium ids. Raises EnvError for unknown names.
    """
    if env is None:
        raise EnvError("no environment set: call config.environment(env=...) with a gymnasium id, class or creator")
    if isinstance(env, str):
        creator = (registered or {}).get(env) or _REGISTRY.get(env)
        if creator is not None:
            return creator
        _check_gymnasium_id(env)
        return _gymnasium_creator(env, disable_env_checking)
    if inspect.isclass(env):
        cls: Any = env

        def create_from_class(ctx: EnvContext) -> Any:
            return cls(ctx)

        create_from_class.__qualname__ = cls.__qualname__
        return create_from_class
    if callable(env):
        creator_fn: EnvCreator = env
        return creator_fn
    raise EnvError(f"env must be a gymnasium id, an env class or a creator function, got {env!r}")
