"""Protocol gaps are counted, not materialised (issue 11).

A gap up to ``[stream] gap_fill_max_s`` is filled with silence; a longer one ends the
utterance in progress (reason "gap"), resets the VAD and makes the track's clock jump
without allocating audio for it. These tests drive the real VAD and segmenter with a
scripted recogniser and assert on the session's buffers and sample counters, with the
VAD inline (dsp_threads 0) and on a DSP thread (1): a jump goes through the call's queue,
after the audio before it and before the audio after it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import tracemalloc
import wave
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
import soxr

import voicetriage
from voicetriage.asr.worker import InferenceWorker
from voicetriage.audio import AudioSpec
from voicetriage.audio.codecs import ulaw_encode
from voicetriage.audio.vad import VadModel
from voicetriage.core.config import StreamConfig
from voicetriage.core.events import AsrResult, CallInfo, CallSummary, Final
from voicetriage.pipeline.dsp import DspPool
from voicetriage.pipeline.session import CallSession
from voicetriage.protocols.actions import PushAudio, PushGap, Send, StartCall
from voicetriage.protocols.audiohook import AudioHookSession
from voicetriage.protocols.audiohook_wire import format_duration
from voicetriage.protocols.twilio import TwilioStream

SAMPLE = Path(voicetriage.__file__).parent / "data" / "sample_call.wav"
RATE = 16000
HOURS_2 = 7200.0
ORG = "d7934305-0972-4844-938e-9060eef73d05"


class Echo:
    """Answers every request at once with the length of its audio."""

    def window_seconds(self, duration):
        return 10.0

    def transcribe_batch(self, reqs):
        return [AsrResult(f"n{len(r.audio)}", "en", 0.9, -0.2, 0.01) for r in reqs]


def pcm16() -> bytes:
    with wave.open(str(SAMPLE)) as w:
        return w.readframes(w.getnframes())


def ulaw8k() -> bytes:
    x = np.frombuffer(pcm16(), dtype="<i2").astype(np.float32)
    y = soxr.resample(x, RATE, 8000)
    return ulaw_encode(np.clip(y, -32768, 32767).astype(np.int16))


@pytest.fixture(params=[0, 1], ids=["inline", "dsp_thread"])
def pool(request):
    """The DSP pool every session of the test shares, as a server's calls do (0: inline)."""
    p = DspPool(request.param)
    yield p
    p.close()


def session(spec=AudioSpec("pcm16", 16000, 1), dsp: DspPool | None = None, **stream) -> tuple[CallSession, list, InferenceWorker]:
    worker = InferenceWorker(Echo())
    worker.start()
    events: list = []
    s = CallSession(CallInfo("c"), spec, worker=worker, vad=VadModel(), config=StreamConfig(**stream),
                    emit=events.append, dsp=dsp)
    return s, events, worker


def push(s: CallSession, data: bytes, chunk: int = 640) -> None:
    for i in range(0, len(data), chunk):
        s.push_audio(data[i : i + chunk])


async def finish(s: CallSession, events: list, worker: InferenceWorker) -> tuple[list[Final], CallSummary]:
    summary = await s.close()
    worker.stop()
    return [e for e in events if isinstance(e, Final)], summary


def spans(finals) -> list[tuple[float, float, str]]:
    return [(f.start, f.end, f.reason) for f in finals]


async def test_a_gap_of_hours_is_counted_not_materialised_and_times_stay_right(pool):
    audio = pcm16()
    s, events, worker = session(dsp=pool)
    push(s, audio)
    reference, _ = await finish(s, events, worker)  # the clip alone
    assert len(reference) >= 3

    s, events, worker = session(dsp=pool)
    head = audio[: 8 * RATE * 2]  # 8.0 s: inside the second utterance (5.7-10.6 s)
    push(s, head)
    await s.settled()
    seg = s._tracks["caller"].segmenter
    assert seg.active is not None  # speech in progress when the gap comes
    tracemalloc.start()
    jumped = s.push_gap(HOURS_2)
    await s.settled()  # with a DSP thread the jump is applied from the call's queue
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert jumped
    assert peak < 2 << 20, peak  # two hours of zeros would be 460 MB of float32
    assert seg.samples == int((8.0 + HOURS_2) * RATE)  # the clock jumped, exactly
    assert seg._len < RATE and seg._buf.nbytes <= 4 * RATE * 4  # nothing held for the gap
    assert s.time() == pytest.approx(8.0 + HOURS_2) and s.processed_s() == pytest.approx(8.0)
    push(s, audio)  # the clip again, after the gap
    finals, summary = await finish(s, events, worker)

    before = [f for f in finals if f.end <= 8.0]
    after = [f for f in finals if f.start >= 8.0 + HOURS_2]
    assert len(before) + len(after) == len(finals)
    # the utterance in progress ended where the gap began; the one before it is untouched
    assert spans(before) == spans(reference[:1]) + [(reference[1].start, 8.0, "gap")]
    # after the jump (on a VAD window boundary, VAD reset) the clip is segmented as on a
    # fresh call, at its true call time
    shift = 8.0 + HOURS_2
    assert [(round(a - shift, 3), round(b - shift, 3), r) for a, b, r in spans(after)] == spans(reference)
    assert summary.gaps == 1 and summary.gap_s == HOURS_2
    assert summary.audio_s["caller"] == round(8.0 + HOURS_2 + len(audio) / 2 / RATE, 3)
    assert s.gaps_skipped == 1


async def test_a_jump_between_queued_audio_is_applied_in_arrival_order(pool):
    """Audio, a long gap and more audio pushed with no await between them: with a DSP
    thread all three wait in the call's queue, and the jump must still come after the
    audio before it and before the audio after it (the VAD state it resets included).
    Off a VAD window boundary on both sides, the finals (times, reasons, the audio each
    decoded) must be those of the same call with the VAD inline."""
    audio = pcm16()
    head, gap = audio[: (8 * RATE + 100) * 2], HOURS_2 + 0.0123

    async def run(dsp):
        s, events, worker = session(dsp=dsp)
        push(s, head)
        assert s.push_gap(gap)
        push(s, audio)
        if dsp is not None and dsp.enabled:
            assert s.queued > 0  # nothing applied yet: the order is the queue's
        tracemalloc.start()
        await s.settled()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < 64 << 20, peak  # the clip's VAD work, not 460 MB of zeros for the gap
        finals, summary = await finish(s, events, worker)
        assert summary.gaps == 1 and s.gaps_skipped == 1
        return [(f.start, f.end, f.reason, f.text) for f in finals]

    inline, queued = await run(None), await run(pool)
    assert queued == inline
    s, events, worker = session()
    push(s, audio)
    reference, _ = await finish(s, events, worker)
    shift = (8 * RATE + 100) / RATE + gap
    assert [r for _, e, r, _ in inline if e <= 8.1] == ["silence", "gap"]
    after = [(a - shift, e - shift, r) for a, e, r, _ in inline if a >= shift]
    assert len(after) == len(reference)
    for (a, e, r), ref in zip(after, reference):  # within a VAD window of the fresh call's
        assert abs(a - ref.start) < 0.04 and abs(e - ref.end) < 0.04 and r == ref.reason


async def test_a_short_gap_is_filled_and_does_not_split_a_word(pool):
    audio = pcm16()
    s, events, worker = session(dsp=pool)
    push(s, audio[: 8 * RATE * 2])
    assert not s.push_gap(0.3, hold=True)  # a hole inside speech: filled, the utterance goes on
    assert s.processed_s() == pytest.approx(8.3) and s.time() == pytest.approx(8.3)
    await s.settled()
    assert s._tracks["caller"].segmenter.samples == 8.3 * RATE
    push(s, audio[8 * RATE * 2 :])
    finals, summary = await finish(s, events, worker)
    assert "gap" not in [f.reason for f in finals]
    assert any(f.start < 8.0 < f.end for f in finals)  # one utterance across the hole
    assert summary.gaps == 1 and s.gaps_skipped == 0


async def test_the_threshold_is_configurable(pool):
    s, events, worker = session(dsp=pool, gap_fill_max_s=5.0)
    push(s, pcm16()[: 2 * RATE * 2])
    assert not s.push_gap(3.0)  # filled: under the configured 5 s
    assert s.push_gap(6.0)  # over it: the clock jumps
    assert s.processed_s() == pytest.approx(5.0) and s.time() == pytest.approx(11.0)
    await finish(s, events, worker)


def twilio_media(seq: int, ts_ms: int, payload: bytes) -> str:
    return json.dumps({"event": "media", "sequenceNumber": str(seq), "streamSid": "MZ1",
                       "media": {"track": "inbound", "chunk": str(seq), "timestamp": str(ts_ms),
                                 "payload": base64.b64encode(payload).decode()}})


def apply(s: CallSession | None, actions: list) -> CallSession | None:
    for a in actions:
        if isinstance(a, PushAudio):
            s.push_audio(a.data, a.track)
        elif isinstance(a, PushGap):
            s.push_gap(a.seconds, a.track, hold=a.hold)
    return s


async def test_a_twilio_timestamp_jumping_hours_moves_the_clock_without_audio(pool):
    audio = ulaw8k()
    spec = AudioSpec("mulaw", 8000, 1)
    s, events, worker = session(spec, dsp=pool)
    push(s, audio, 160)
    reference, _ = await finish(s, events, worker)

    proto = TwilioStream(max_gap_s=3 * 3600)
    proto.receive_text('{"event": "connected"}')
    [call] = proto.receive_text(json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": "MZ1", "start": {
        "streamSid": "MZ1", "callSid": "CA1", "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}))
    assert isinstance(call, StartCall)
    s, events, worker = session(call.spec, dsp=pool)
    seq, ts = 2, 0
    for i in range(0, 8 * 8000, 160):  # 8 s in 20 ms chunks
        apply(s, proto.receive_text(twilio_media(seq, ts, audio[i : i + 160])))
        seq, ts = seq + 1, ts + 20
    ts += int(HOURS_2 * 1000)  # the next chunk is stamped two hours later
    seg = s._tracks["caller"].segmenter
    await s.settled()
    tracemalloc.start()
    for i in range(0, len(audio), 160):
        apply(s, proto.receive_text(twilio_media(seq, ts, audio[i : i + 160])))
        seq, ts = seq + 1, ts + 20
        if i == 0:
            await s.settled()
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            assert peak < 2 << 20, peak
            assert seg.samples < (8.0 + HOURS_2 + 0.1) * RATE and seg._buf.nbytes <= 4 * RATE * 4
    assert proto.gap_s == HOURS_2
    finals, summary = await finish(s, events, worker)
    after = [f for f in finals if f.start >= 8.0 + HOURS_2]
    shift = 8.0 + HOURS_2
    assert len(after) == len(reference)
    for f, r in zip(after, reference):  # true call times (within a VAD window of resampler delay)
        assert abs(f.start - shift - r.start) < 0.04 and abs(f.end - shift - r.end) < 0.04
    assert summary.gaps == 1 and s.processed_s() == pytest.approx(len(audio) / 8000 + 8.0)


async def test_an_audiohook_discard_of_1800_s_is_a_jump_and_offsets_follow_the_stream(pool):
    audio = ulaw8k()
    hook = AudioHookSession("30b0e395-84d3-4570-ac13-9a62d8f514c0", organization_id=ORG)
    seq = [0]
    pos = [0]

    def send(type_: str, params: dict) -> list:
        seq[0] += 1
        actions = hook.receive_text(json.dumps({
            "version": "2", "id": hook.id, "type": type_, "seq": seq[0], "serverseq": hook.seq,
            "position": format_duration(Decimal(pos[0]) / 8000), "parameters": params}))
        if any(isinstance(a, StartCall) for a in actions):
            actions += hook.call_started()
        return actions

    opened = send("open", {"organizationId": ORG, "conversationId": "090eaa2f-72fa-480a-83e0-8667ff89c0ec",
                           "participant": {"id": "883efee8-3d6c-4537-b500-6d7ca4b92fa0", "ani": "1", "aniName": "", "dnis": "2"},
                           "media": [{"type": "audio", "format": "PCMU", "channels": ["external"], "rate": 8000}]})
    [call] = [a for a in opened if isinstance(a, StartCall)]
    s, events, worker = session(call.spec, dsp=pool)
    for i in range(0, 8 * 8000, 160):
        apply(s, hook.receive_bytes(audio[i : i + 160]))
        pos[0] += 160
    pos[0] += 1800 * 8000  # the message's position counts the discarded span
    gap = send("discarded", {"start": "PT8S", "discarded": "PT1800S"})
    assert gap == [PushGap(1800.0)]
    apply(s, gap)
    await s.settled()
    assert s._tracks["caller"].segmenter.samples == 1808 * RATE and s.processed_s() == pytest.approx(8.0)
    for i in range(0, len(audio), 160):
        apply(s, hook.receive_bytes(audio[i : i + 160]))
    finals, summary = await finish(s, events, worker)
    late = [f for f in finals if f.start > 1808]
    assert late and summary.gaps == 1 and summary.gap_s == 1800.0
    [msg] = [json.loads(a.message) for a in hook.on_event(late[0]) if isinstance(a, Send)]
    offset = msg["parameters"]["entities"][0]["data"]["offset"]
    assert Decimal(offset[2:-1]) == Decimal(str(late[0].start))  # the client's stream position


async def test_a_gap_on_a_closed_or_bad_call_does_nothing_or_is_refused(pool):
    s, events, worker = session(dsp=pool)
    for bad in (float("nan"), float("inf")):
        try:
            s.push_gap(bad)
        except Exception as e:  # noqa: BLE001
            assert getattr(e, "code", None) == "bad_gap"
        else:
            raise AssertionError("accepted a gap of %r" % bad)
    assert not s.push_gap(-1.0) and s.gaps == 0
    await finish(s, events, worker)
    assert not s.push_gap(10.0) and s.gaps == 0


async def test_a_held_loop_is_not_needed_for_the_jump(pool):
    """The jump does no work proportional to the gap: the VAD sees at most two windows."""
    calls = []
    s, events, worker = session(dsp=pool)
    track = s._tracks["caller"]
    feed = track.segmenter._vad
    track.segmenter._vad = lambda x: calls.append(len(x)) or feed(x)
    push(s, pcm16()[: RATE * 2 + 100])  # not on a window boundary
    await s.settled()
    calls.clear()
    s.push_gap(123456.789)
    await s.settled()
    assert sum(calls) < 2 * 512
    await asyncio.sleep(0)
    await finish(s, events, worker)
