"""Turn a pytest-benchmark JSON file into one markdown table: per group, each implementation's
median and its speed relative to the third-party implementation of the group (python-socketio,
python-engineio, wsproto), or to fastsio's pure one where there is no third party.

    pytest bench/ --benchmark-only --benchmark-json=bench/results/micro.json
    python -m bench.micro.report bench/results/micro.json
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

THIRD_PARTY = ("python-socketio", "python-engineio", "wsproto")


def fmt_time(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:.2f} us"
    return f"{seconds * 1e9:.0f} ns"


def impl_of(bench: dict) -> str:
    return bench.get("params", {}).get("impl") or bench["name"]


def render(data: dict) -> str:
    groups: dict = defaultdict(list)
    for bench in data["benchmarks"]:
        groups[bench["group"]].append(bench)
    lines = ["| case | implementation | median | speed-up vs reference |", "|---|---|---:|---:|"]
    for group in sorted(groups):
        benches = sorted(groups[group], key=lambda b: b["stats"]["median"])
        ref = next(
            (b for b in benches if impl_of(b) in THIRD_PARTY),
            next((b for b in benches if impl_of(b) == "fastsio-pure"), benches[-1]),
        )
        ref_median = ref["stats"]["median"]
        for i, bench in enumerate(benches):
            median = bench["stats"]["median"]
            lines.append(
                f"| {group if i == 0 else ''} | {impl_of(bench)} | {fmt_time(median)} | "
                f"{ref_median / median:.2f}x |"
            )
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        print(render(json.load(f)))


if __name__ == "__main__":
    main()
