"""Profile one server under one scenario of the end-to-end benchmark.

    python -m bench.profile SERVER [--scenario echo] [--duration 5]

Starts the server pinned to its core as the driver does, drives it with the load generator, and
while it is under load samples it with:
  - perf (where it works): the split of CPU between the kernel, the interpreter, the event loop,
    the codecs..., per shared object, and the hottest native symbols;
  - py-spy (Python servers; ``pip install py-spy``): the Python functions with the most samples,
    by own time and including callees.
For Node the perf samples of JIT code are named with ``--perf-basic-prof``.
Raw outputs go to bench/results/profiles/; the summary is printed.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench import driver

PROFILES = driver.RESULTS / "profiles"


def collapsed_summary(path: Path, top: int = 25) -> str:
    """Own and inclusive sample counts per function from py-spy's collapsed ("raw") output."""
    own: collections.Counter = collections.Counter()
    incl: collections.Counter = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        if frames and frames[0].startswith("process "):
            frames = frames[1:]
        if frames and frames[0].startswith("thread "):
            frames = frames[1:]
        if not frames:
            continue
        own[short(frames[-1])] += n
        for f in {short(f) for f in frames}:
            incl[f] += n
    if not total:
        return "  (no samples)"
    lines = [f"  {total} samples; own time:"]
    lines += [f"    {n / total:6.1%}  {name}" for name, n in own.most_common(top)]
    lines.append("  including callees:")
    lines += [f"    {n / total:6.1%}  {name}" for name, n in incl.most_common(top)]
    return "\n".join(lines)


def short(frame: str) -> str:
    # "handler (fastsio/server.py:123)" -> "handler (fastsio/server.py)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path, _, _ = where.rpartition(":")
    for marker in ("site-packages/", "/work/main/", "python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})" if path else name


def perf_summary(data: Path) -> str:
    out = []
    for sort, title in (("dso", "CPU by shared object"), ("dso,sym", "hottest symbols")):
        proc = subprocess.run(
            [
                "perf",
                "report",
                "-i",
                str(data),
                "--stdio",
                "--no-children",
                "-g",
                "none",
                "--sort",
                sort,
                "--percent-limit",
                "1.5",
            ],
            check=False,
            capture_output=True,
            text=True,
        )
        rows = [ln for ln in proc.stdout.splitlines() if ln.strip() and not ln.startswith("#")]
        out.append(f"  {title}:")
        out += ["    " + " ".join(ln.split()) for ln in rows[:25]]
    return "\n".join(out)


def main(argv: list | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.profile", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("server", choices=list(driver.SERVERS))
    p.add_argument(
        "--scenario",
        default="echo",
        # one server process: not idle, not the cluster scenarios (two nodes on Redis)
        choices=[k for k, s in driver.SCENARIOS.items() if k != "idle" and not s.cluster],
    )
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--no-perf", action="store_true")
    args = p.parse_args(argv)

    spec = driver.SERVERS[args.server]
    why = spec.check() if spec.check else None
    if why:
        sys.exit(f"bench.profile: {spec.label} cannot run: {why}")
    if args.server == "node":  # name the JIT frames for perf
        spec = driver.ServerSpec(
            spec.key,
            spec.label,
            # run from the profiles folder: V8 may leave a log file in its working directory
            [
                "node",
                "--perf-basic-prof",
                str(driver.BENCH / "servers" / "node_app.js"),
                *spec.argv[2:],
            ],
            cwd=PROFILES,
        )
    st = driver.Settings(warmup=1.0, duration=args.duration + 3.0)
    loadgen = driver.build_loadgen()
    driver.raise_nofile()
    PROFILES.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = PROFILES / f"{args.server}-{args.scenario}-{stamp}"
    is_python = spec.argv[0] == driver.PY
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    use_pyspy = is_python and Path(pyspy).exists()
    use_perf = not args.no_perf and shutil.which("perf") is not None

    with driver.ServerProcess(
        spec, driver.free_port(), base.with_suffix(".log"), st.server_cpu, loadgen
    ) as srv:
        samplers = []

        def start_samplers(msg: dict, proc: subprocess.Popen) -> None:
            if msg["event"] != "measure_start":
                return
            pid = str(srv.proc.pid)
            if use_perf:
                samplers.append(
                    subprocess.Popen(
                        [
                            "perf",
                            "record",
                            "-F",
                            "499",
                            "-g",
                            "-p",
                            pid,
                            "-o",
                            str(base) + ".perf",
                            "--",
                            "sleep",
                            str(args.duration),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            if use_pyspy:
                samplers.append(
                    subprocess.Popen(
                        [
                            pyspy,
                            "record",
                            "--format",
                            "raw",
                            "--rate",
                            "250",
                            "--nonblocking",
                            "-d",
                            str(int(args.duration)),
                            "-p",
                            pid,
                            "-o",
                            str(base) + ".pyspy.txt",
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )

        args_lg = driver.loadgen_args(args.scenario, st, srv.port)
        res = driver.run_loadgen(loadgen, st.loadgen_cpu, args_lg, 120, srv, start_samplers)
        for s in samplers:
            s.wait(timeout=60)

    print(
        f"{spec.label}, scenario {args.scenario}: {res['rate']:,.0f}/s "
        f"(p50 {driver.fmt_us(res['p50_us'])}, p99 {driver.fmt_us(res['p99_us'])})"
    )
    if use_perf and Path(str(base) + ".perf").exists():
        print("perf:")
        print(perf_summary(Path(str(base) + ".perf")))
    if use_pyspy and Path(str(base) + ".pyspy.txt").exists():
        print("py-spy:")
        print(collapsed_summary(Path(str(base) + ".pyspy.txt")))
    print(f"raw profiles: {base}.*")
    return 0


if __name__ == "__main__":
    sys.exit(main())
