"""The ``sciode`` command line: ``sciode plugins`` (and more subcommands as they land)."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _plugins(args: argparse.Namespace) -> int:
    from .registry import registry

    registry.load()
    if not registry.plugins:
        print("no sciode plugins installed")
        return 0
    for info in registry.plugins.values():
        version = f" {info.version}" if info.version else ""
        print(f"{info.name}  ({info.distribution}{version})")
        if info.error:
            print(f"  BROKEN: {info.error}")
            continue
        for kind, names in info.provides.items():
            if names:
                print(f"  {kind}: {', '.join(names)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sciode", description="Differential equations on PyTorch.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plugins", help="list installed plugins, their distributions and what they provide")
    p.set_defaults(func=_plugins)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
