"""default_extractors and the [signals] options."""

import pytest

from voicetriage.core.errors import ConfigError
from voicetriage.triage.signals import (
    SignalExtractor,
    default_extractors,
    parse_signal_options,
)


def test_default_set_is_fresh_per_call_and_follows_the_protocol():
    a, b = default_extractors("c1"), default_extractors("c2")
    assert [e.name for e in a] == ["human_request", "language", "low_comprehension", "speaking_rate",
                                   "age_band", "distress"]
    assert all(isinstance(e, SignalExtractor) for e in a)
    assert all(x is not y for x, y in zip(a, b))


def test_options_from_a_config_table(final):
    ex = default_extractors("c1", {"human_request": {"dtmf_digits": ["9"]}, "enabled": ["human_request"]})
    assert [e.name for e in ex] == ["human_request"]
    assert ex[0].options.dtmf_digits == ("9",)


@pytest.mark.parametrize("cfg,msg", [
    ({"nope": 1}, "unknown option"),
    ({"human_request": {"dtmf_digits": ["x"]}}, "not a DTMF digit"),
    ({"human_request": {"zero_repeats": "2"}}, "expected a number"),
    ({"speaking_rate": {"slow_syllables_per_s": {"klingon": 3}}}, "unknown language"),
    ({"enabled": ["telepathy"]}, "unknown signal"),
])
def test_bad_options_are_config_errors(cfg, msg):
    with pytest.raises(ConfigError, match=msg):
        parse_signal_options(cfg)


def test_extractors_ignore_other_tracks_and_events(final):
    import numpy as np

    for ex in default_extractors("c1"):
        assert ex.on_audio("agent", np.zeros(320, np.float32), 0.0) == []
        assert ex.on_event(final("救命 转人工 我听不懂", track="agent")) == []
        assert ex.on_event(object()) == []
        assert ex.on_close() == []
