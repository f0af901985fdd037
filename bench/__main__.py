"""Run every benchmark, or those whose module name contains the given words.

python -m bench              # all of them
python -m bench coverage     # bench_coverage only
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench


def main(argv: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_"))
    chosen = [n for n in names if not argv or any(word in n for word in argv)]
    if not chosen:
        print(f"no benchmark matches {' '.join(argv)!r}; there are: {', '.join(names)}", file=sys.stderr)
        return 2
    failed = 0
    for name in chosen:
        print(f"== {name}")
        status = importlib.import_module(f"bench.{name}").main()
        failed += bool(status)
        print()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
