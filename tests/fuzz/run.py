"""Coverage-guided fuzzing of the decoders with atheris (``pip install -e '.[fuzz]'``).

    python -m tests.fuzz.run                          # every target, 15 s each (what CI runs)
    python -m tests.fuzz.run --seconds 600 socketio_packet websocket_frames
    python -m tests.fuzz.run --seconds 3600 --save    # a long run; keep what it found

Each target (tests/fuzz/targets.py) runs in its own process, started from its saved corpus
(tests/fuzz/corpus/<target>/). New inputs that reach new code go to a scratch directory, or with
``--save`` into the saved corpus (then commit them: tests/test_fuzz_corpus.py replays every saved
input on each test run). A failure stops that target and leaves the input that made it in
``tests/fuzz/crashes/``; it becomes a regular test (tests/test_fuzz_corpus.py) once fixed.

The pure-Python modules are instrumented for coverage; the compiled twins are not (they are
checked against the pure ones on every input, which is what guides the search into them).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")
CRASHES = os.path.join(HERE, "crashes")


def fuzz_one(target: str, libfuzzer_args: list[str]) -> None:
    """In the child process: instrument fastsio, then hand the target to atheris."""
    import atheris

    with atheris.instrument_imports(include=["fastsio"]):
        import fastsio.http
        import fastsio.protocol.deflate  # noqa: F401
        from tests.fuzz import targets

    check = targets.TARGETS[target]
    atheris.Setup([sys.argv[0], *libfuzzer_args], check)
    atheris.Fuzz()


def run_target(target: str, seconds: int, save: bool, scratch: str) -> int:
    saved = os.path.join(CORPUS, target)
    os.makedirs(saved, exist_ok=True)
    os.makedirs(CRASHES, exist_ok=True)
    # libFuzzer writes new inputs into the first directory it is given
    corpora = [saved] if save else [os.path.join(scratch, target), saved]
    os.makedirs(corpora[0], exist_ok=True)
    args = [
        f"-max_total_time={seconds}",
        "-max_len=4096",
        "-timeout=10",
        "-rss_limit_mb=2048",
        f"-artifact_prefix={CRASHES}/{target}-",
        "-print_final_stats=1",
        *corpora,
    ]
    command = [sys.executable, "-m", "tests.fuzz.run", "--child", target, *args]
    print(f"== {target}: {seconds} s", flush=True)
    return subprocess.call(command, cwd=ROOT)


def main() -> None:
    if sys.argv[1:2] == ["--child"]:  # a target's process: the rest is for libFuzzer
        fuzz_one(sys.argv[2], sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description="fuzz the decoders (atheris)")
    parser.add_argument("targets", nargs="*", help="default: all")
    parser.add_argument("--seconds", type=int, default=15, help="per target")
    parser.add_argument("--save", action="store_true", help="add new inputs to the saved corpus")
    args = parser.parse_args()
    from tests.fuzz.targets import TARGETS

    names = args.targets or list(TARGETS)
    unknown = sorted(set(names) - set(TARGETS))
    if unknown:
        parser.error(f"unknown targets {unknown}; known: {sorted(TARGETS)}")
    failed = []
    with tempfile.TemporaryDirectory(prefix="fastsio-fuzz-") as scratch:
        for name in names:
            if run_target(name, args.seconds, args.save, scratch) != 0:
                failed.append(name)
    if failed:
        print(f"fuzzing found failures in {failed}: see {CRASHES}", file=sys.stderr)
        sys.exit(1)
    print("fuzzing: no failure")


if __name__ == "__main__":
    main()
