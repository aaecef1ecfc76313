"""Fixtures of the diarization tests: the optional extra, a conversation built from the kit."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def diarize_extra():
    """Skip (saying what to install) where the optional 'diarize' extra is not usable."""
    from voicetriage.core.errors import ModelError
    from voicetriage.diarize import environment

    try:
        environment.require()
        from voicetriage.diarize.pipeline import resolve_weights

        resolve_weights()
    except ModelError as e:
        pytest.skip(f"diarize extra not usable: {e}")


@pytest.fixture(scope="session")
def short_call(eval_dir):
    """The short CI conversation (English IVR agent, Mandarin caller asking for a person), ~22 s."""
    from voicetriage.diarize.conversations import build, by_id

    return build(by_id(["cmn_en_request"])[0], eval_dir)


@pytest.fixture(scope="session")
def diarizer(diarize_extra):
    from voicetriage.diarize.pipeline import DiarizationOptions, Diarizer

    return Diarizer.load(DiarizationOptions(speakers=2))
