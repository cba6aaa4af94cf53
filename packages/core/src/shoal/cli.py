"""The ``shoal`` command line.

Core's own commands live here; other distributions add theirs through the
``shoal.commands`` entry-point group: each entry is a function
``register(subparsers)`` that adds a sub-command whose parser sets
``func`` (called with the parsed arguments, returning an exit code).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

from shoal._version import __version__

__all__ = ["build_parser", "main"]

COMMANDS_GROUP = "shoal.commands"


def _cmd_backends(args: argparse.Namespace) -> int:
    from shoal.backend.registry import INSTALL_HINTS, available_backends

    found = available_backends()
    for name, ep in sorted(found.items()):
        print(f"{name:10s} {ep.value}")
    for name, hint in sorted(INSTALL_HINTS.items()):
        if name not in found:
            print(f"{name:10s} (not installed: {hint})")
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    from shoal.config import KEYS, load_config

    config = load_config()
    for name in KEYS:
        print(f"{name:22s} = {config.values[name]!r:30s} # from {config.source(name)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shoal",
        description="shoal: distributed computing for Python with Ray's API.",
    )
    parser.add_argument("--version", action="version", version=f"shoal {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("backends", help="list installed backends")
    p.set_defaults(func=_cmd_backends)
    p = sub.add_parser("config", help="show the resolved configuration and where each value comes from")
    p.set_defaults(func=_cmd_config)

    from shoal._cluster.cli import register as register_cluster_commands

    register_cluster_commands(sub)

    for ep in entry_points(group=COMMANDS_GROUP):
        try:
            register = ep.load()
        except ImportError as e:
            # A broken optional distribution must not break the whole CLI.
            print(f"shoal: skipping commands from {ep.value}: {e}", file=sys.stderr)
            continue
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``shoal`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0
    return int(func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
