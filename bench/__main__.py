"""Dispatch ``python -m bench NAME [ARGS...]`` to ``bench.NAME.main(ARGS)``."""

from __future__ import annotations

import importlib
import sys


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m bench NAME [ARGS...]   (NAME is a module in bench/, e.g. rules)")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if not name.isidentifier():
        print(f"bench: not a benchmark name: {name!r}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(f"bench.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"bench.{name}":
            raise
        print(f"bench: no benchmark named {name!r} (bench/{name}.py)", file=sys.stderr)
        return 2
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
