"""Every input of the saved fuzz corpus (tests/fuzz/corpus/<target>/) replayed through its target
(tests/fuzz/targets.py) on each test run, no atheris needed: each decoder ends with its documented
error or a result, and the compiled twin agrees with the pure one. Inputs that once broke an
invariant are kept below as their own tests."""

from __future__ import annotations

import os

import pytest

from .fuzz.run import CORPUS
from .fuzz.targets import TARGETS


def corpus(target: str) -> list[bytes]:
    directory = os.path.join(CORPUS, target)
    names = sorted(os.listdir(directory)) if os.path.isdir(directory) else []
    inputs = []
    for name in names:
        with open(os.path.join(directory, name), "rb") as file:
            inputs.append(file.read())
    return inputs


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_saved_corpus_replays_clean(target):
    inputs = corpus(target)
    assert inputs, f"no saved corpus for {target}: python -m tests.fuzz.seeds"
    check = TARGETS[target]
    for data in inputs:
        check(data)


def test_every_target_has_seeds():
    from .fuzz.seeds import SEEDS

    assert set(SEEDS) == set(TARGETS)
