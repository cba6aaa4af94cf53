"""``shoal up`` and ``shoal down``, registered through the ``shoal.commands`` entry points."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register_up", "register_down"]


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("cluster_config_file", help="the cluster config (YAML)")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("-n", "--cluster-name", default=None, help="override the config's cluster_name")


def _load(args: argparse.Namespace) -> Any:
    from shoal.autoscaler.config import load_cluster_config

    overrides = {"cluster_name": args.cluster_name} if args.cluster_name else None
    return load_cluster_config(args.cluster_config_file, overrides)


def _cmd_up(args: argparse.Namespace) -> int:
    from shoal.autoscaler._errors import AutoscalerError, ClusterConfigError
    from shoal.autoscaler._redact import Redactor
    from shoal.autoscaler.launcher import up

    try:
        config = _load(args)
    except ClusterConfigError as e:
        print(e, file=sys.stderr)
        return 2
    try:
        up(config, interval_s=args.interval)
    except AutoscalerError as e:
        redact = Redactor.from_config(config.provider)
        print(f"shoal up: {redact(str(e))}", file=sys.stderr)
        return 1
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    from shoal.autoscaler._errors import AutoscalerError, ClusterConfigError
    from shoal.autoscaler._redact import Redactor
    from shoal.autoscaler.launcher import down

    try:
        config = _load(args)
    except ClusterConfigError as e:
        print(e, file=sys.stderr)
        return 2
    what = "the workers of" if args.workers_only else "every node of"
    if not args.yes:
        if not sys.stdin.isatty():
            print("shoal down: pass --yes to confirm (stdin is not a terminal)", file=sys.stderr)
            return 2
        answer = input(f"Terminate {what} cluster {config.cluster_name!r}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("aborted")
            return 1
    try:
        down(config, workers_only=args.workers_only)
    except AutoscalerError as e:
        redact = Redactor.from_config(config.provider)
        print(f"shoal down: {redact(str(e))}", file=sys.stderr)
        return 1
    return 0


def register_up(subparsers: Any) -> None:
    p = subparsers.add_parser("up", help="start a cluster's head and its autoscaler from a cluster config")
    _add_common(p)
    p.add_argument("--interval", type=float, default=5.0, help="seconds between autoscaler rounds (default 5)")
    p.set_defaults(func=_cmd_up)


def register_down(subparsers: Any) -> None:
    p = subparsers.add_parser("down", help="stop a cluster's autoscaler and terminate its nodes through its provider")
    _add_common(p)
    p.add_argument("--workers-only", action="store_true", help="keep the head node")
    p.set_defaults(func=_cmd_down)
