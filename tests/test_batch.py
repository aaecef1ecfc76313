"""Offline batch transcription: discovery, resume, per-file errors, split channels.

Real model (tiny.en, shared with the rest of the suite) on real clips from
../shared/eval. Word error rate bound (voicetriage.evaluation.textnorm.wer): 0.15 on the
JFK clip and on "one two three" (tiny.en gets both exactly right here; the
bound leaves room for another CPU's int8 kernels, while a broken pipeline
scores near 1.0).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from voicetriage.cli import main
from voicetriage.evaluation import textnorm as metrics
from voicetriage.offline import batch
from voicetriage.offline.batch import BatchOptions, InputFile, discover, plan, run_batch

WER_BOUND = 0.15
JFK = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
ONE_TWO_THREE = "one two three"
_NUMBERS = {"1": "one", "2": "two", "3": "three"}


def test_references_are_the_manifest_transcripts(manifest):
    assert manifest["en_whisper_jfk"]["transcript"] == JFK
    assert manifest["en_speechrecognition_123"]["transcript"] == ONE_TWO_THREE


def words(text: str) -> list[str]:
    # Whisper writes numbers as digits or words depending on context ("1, 2, 3." / "One, two, three.")
    return [_NUMBERS.get(w, w) for w in metrics.normalise(text).split()]


def wer(reference: str, hypothesis: str) -> float:
    return metrics.wer(" ".join(words(reference)), " ".join(words(hypothesis)))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def segments_text(path: Path, speaker=None) -> str:
    return " ".join(
        r["text"] for r in read_jsonl(path) if r["type"] == "segment" and (speaker is None or r["speaker"] == speaker)
    )


# ---------------------------------------------------------------- planning (no model)


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_discover_walks_folders(tmp_path):
    root = tmp_path / "calls"
    for name in ["b.wav", "a.FLAC", "sub/c.mp3", "sub/deeper/d.opus", "e.m4a", "f.webm", "g.ogg",
                 "notes.txt", ".hidden.wav", ".git/h.wav", "sub/transcript.jsonl"]:
        touch(root / name)
    other = touch(tmp_path / "single.data")  # named explicitly: taken whatever its suffix
    empty = tmp_path / "empty"
    empty.mkdir()
    found = discover([root, other, root / "b.wav", tmp_path / "missing.wav", empty])
    rels = [str(f.rel) for f in found.files]
    assert rels == ["a.FLAC", "b.wav", "e.m4a", "f.webm", "g.ogg", "sub/c.mp3", "sub/deeper/d.opus",
                    "single.data", "missing.wav"]  # b.wav once; the missing file kept to be reported
    assert found.files[0].path == root / "a.FLAC"
    assert found.empty_dirs == (empty,)


def test_plan_names_outputs_and_resumes(tmp_path):
    out = tmp_path / "out"
    files = [InputFile(tmp_path / "x" / "call.wav", Path("call.wav")),
             InputFile(tmp_path / "x" / "call.mp3", Path("call.mp3")),
             InputFile(tmp_path / "y" / "call.wav", Path("call.wav")),
             InputFile(tmp_path / "y" / "sub" / "b.flac", Path("sub/b.flac"))]
    opts = BatchOptions(out_dir=out, format="srt")
    assert [str(i.output.relative_to(out)) for i in plan(files, opts)] == [
        "call.wav.srt", "call.mp3.srt", "call.wav-2.srt", "sub/b.srt"]
    assert [str(i.output.relative_to(out)) for i in plan(files[:1], opts)] == ["call.srt"]
    touch(out / "call.srt", b"1\n00:00:00,000 --> 00:00:01,000\nhi\n")
    assert [i.done for i in plan(files[:1], opts)] == [True]
    # call.srt belonged to x/call.wav alone; with call.mp3 beside it neither takes it over
    assert [i.done for i in plan(files, opts)] == [False, False, False, False]
    touch(out / "sub" / "b.srt", b"")
    assert [i.done for i in plan(files, opts)] == [False, False, False, True]
    assert not any(i.done for i in plan(files, BatchOptions(out_dir=out, format="srt", overwrite=True)))
    # a jsonl without its summary line is incomplete, so it is redone
    touch(out / "call.jsonl", b'{"type": "header"}\n{"type": "segment"}\n')
    assert not plan(files[:1], BatchOptions(out_dir=out))[0].done


def test_options_are_checked(tmp_path):
    from voicetriage.core.errors import ConfigError

    with pytest.raises(ConfigError, match="format"):
        BatchOptions(out_dir=tmp_path, format="doc")
    with pytest.raises(ConfigError, match="must differ"):
        BatchOptions(out_dir=tmp_path, channel_labels=("a", "a"))
    with pytest.raises(ConfigError, match="without"):
        BatchOptions(out_dir=tmp_path, channel_labels=("caller", "<agent>"))


def test_write_atomic_leaves_no_temp(tmp_path):
    target = tmp_path / "o" / "a.txt"
    batch.write_atomic(target, "hello\n")
    assert target.read_text() == "hello\n"
    assert os.listdir(target.parent) == ["a.txt"]


# ---------------------------------------------------------------- real model


@pytest.fixture
def clips(eval_dir, tmp_path) -> Path:
    """A folder of inputs: two real clips, one in a subfolder, and a corrupt file."""
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    (d / "jfk.wav").symlink_to(eval_dir / "audio" / "en_whisper_jfk.wav")
    (d / "sub" / "123.wav").symlink_to(eval_dir / "audio" / "en_speechrecognition_123.wav")
    (d / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00this is not a wave file at all" * 10)
    return d


def test_cli_batch_errors_resume_overwrite(clips, tmp_path, capsys, monkeypatch, tiny_whisper):
    import voicetriage.asr.engine

    loads = []

    def shared_model(config):
        loads.append(config.model)
        return tiny_whisper

    monkeypatch.setattr(voicetriage.asr.engine, "load_whisper", shared_model)
    out = tmp_path / "out"
    missing = tmp_path / "nowhere" / "lost.wav"
    rc = main(["transcribe", str(clips), str(missing), "--out", str(out), "--model", "tiny.en"])
    cap = capsys.readouterr()
    assert rc == 1  # some file failed
    assert loads == ["tiny.en"]  # one model for the whole batch
    assert f"error: {clips / 'corrupt.wav'}: cannot decode audio" in cap.err
    assert f"error: {missing}: no such file or directory" in cap.err
    assert "transcribed 2 file(s) with tiny.en, 0 skipped, 2 failed" in cap.out
    jfk, one23 = out / "jfk.jsonl", out / "sub" / "123.jsonl"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["jfk.jsonl", "sub", "sub/123.jsonl"]
    assert wer(JFK, segments_text(jfk)) <= WER_BOUND
    assert wer(ONE_TWO_THREE, segments_text(one23)) <= WER_BOUND
    records = read_jsonl(jfk)
    assert records[0]["type"] == "header" and records[-1]["type"] == "summary"
    assert records[0]["model"] == "tiny.en" and records[0]["duration"] == pytest.approx(11.0, abs=0.01)
    segs = [r for r in records if r["type"] == "segment"]
    assert records[-1]["segments"] == len(segs) >= 1
    for s in segs:
        assert 0 <= s["start"] < s["end"] <= 11.0
        assert s["file"] == str(clips / "jfk.wav") and s["speaker"] is None and s["language"] == "en"
        assert -5 < s["avg_logprob"] <= 0 and 0 <= s["no_speech_prob"] <= 1
    assert [s["start"] for s in segs] == sorted(s["start"] for s in segs)

    # resume: finished files are skipped without loading a model; the corrupt one is retried
    stamps = {p: p.stat().st_mtime_ns for p in (jfk, one23)}
    loads.clear()
    rc = main(["transcribe", str(clips), "--out", str(out), "--model", "tiny.en"])
    cap = capsys.readouterr()
    assert rc == 1 and "0 file(s), 2 skipped, 1 failed" in cap.out
    assert "2 of 3 file(s) already done" in cap.err
    assert loads == []  # the corrupt file fails before a model is needed
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    (clips / "corrupt.wav").unlink()
    rc = main(["transcribe", str(clips), "--out", str(out)])
    assert rc == 0 and "0 file(s), 2 skipped, 0 failed" in capsys.readouterr().out

    # an interrupted output (no summary line) is redone; --overwrite redoes everything
    jfk.write_text(jfk.read_text().split("\n", 1)[0] + "\n")
    rc = main(["transcribe", str(clips), "--out", str(out), "--model", "tiny.en"])
    assert rc == 0 and "transcribed 1 file(s) with tiny.en, 1 skipped" in capsys.readouterr().out
    assert read_jsonl(jfk)[-1]["type"] == "summary"
    assert one23.stat().st_mtime_ns == stamps[one23]
    rc = main(["transcribe", str(clips), "--out", str(out), "--model", "tiny.en", "--overwrite"])
    assert rc == 0 and "transcribed 2 file(s) with tiny.en, 0 skipped" in capsys.readouterr().out
    assert one23.stat().st_mtime_ns != stamps[one23]
    assert wer(ONE_TWO_THREE, segments_text(one23)) <= WER_BOUND
    assert not [p for p in out.rglob(".*")]  # no temporary files left


def make_stereo(path: Path, left: np.ndarray, right: np.ndarray) -> None:
    n = max(len(left), len(right))
    pcm = np.zeros((n, 2), dtype=np.int16)
    pcm[: len(left), 0] = np.clip(left * 32767, -32768, 32767)
    pcm[: len(right), 1] = np.clip(right * 32767, -32768, 32767)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())


@pytest.fixture
def stereo_call(eval_dir, tmp_path) -> Path:
    """Channel 0 (caller): JFK from 3.0 s; channel 1 (agent): "one two three" from 0.2 s."""
    from faster_whisper import decode_audio

    jfk = decode_audio(str(eval_dir / "audio" / "en_whisper_jfk.wav"))
    one23 = decode_audio(str(eval_dir / "audio" / "en_speechrecognition_123.wav"))
    left = np.concatenate([np.zeros(48000, np.float32), jfk])
    right = np.concatenate([np.zeros(3200, np.float32), one23])
    path = tmp_path / "stereo" / "call.wav"
    path.parent.mkdir()
    make_stereo(path, left, right)
    return path


def test_split_channels_labelled_and_interleaved(stereo_call, tmp_path, tiny_whisper):
    out = tmp_path / "out"
    opts = BatchOptions(out_dir=out, format="jsonl", channels="split")
    items = plan(discover([stereo_call]).files, opts)
    assert items[0].channels == 2 and items[0].duration == pytest.approx(14.0, abs=0.01)
    summary = run_batch(items, opts, lambda: tiny_whisper)
    assert [r.status for r in summary.results] == ["done"], summary.results
    records = read_jsonl(out / "call.jsonl")
    header, segs = records[0], [r for r in records if r["type"] == "segment"]
    assert header["channels"] == "split"
    assert [(t["speaker"], t["channel"]) for t in header["tracks"]] == [("caller", 0), ("agent", 1)]
    assert wer(JFK, segments_text(out / "call.jsonl", "caller")) <= WER_BOUND
    assert wer(ONE_TWO_THREE, segments_text(out / "call.jsonl", "agent")) <= WER_BOUND
    # interleaved by time: the agent speaks first although it is channel 1
    assert segs[0]["speaker"] == "agent" and segs[0]["start"] < 1.0
    assert all(s["speaker"] == "caller" and s["start"] >= 2.5 for s in segs[1:])
    assert [s["start"] for s in segs] == sorted(s["start"] for s in segs)
    assert all(0 <= s["start"] <= s["end"] <= header["duration"] for s in segs)  # clamped to the audio


@pytest.mark.parametrize(
    "fmt, agent, caller",
    [("txt", "[advisor] ", "[customer] "), ("srt", "[advisor] ", "[customer] "), ("vtt", "<v advisor>", "<v customer>")],
)
def test_split_labels_in_every_format(fmt, agent, caller, stereo_call, tmp_path, monkeypatch, tiny_whisper):
    """Custom labels through the CLI; each format carries them (jsonl: see above)."""
    import voicetriage.asr.engine

    monkeypatch.setattr(voicetriage.asr.engine, "load_whisper", lambda config: tiny_whisper)
    out = tmp_path / "out"
    rc = main(["transcribe", str(stereo_call), "--out", str(out), "--format", fmt,
               "--channels", "split", "--channel-labels", "customer,advisor"])
    assert rc == 0
    lines = [x for x in (out / f"call.{fmt}").read_text(encoding="utf-8").splitlines()
             if x.startswith(("[", "<v "))]
    assert lines[0].startswith(agent) and wer(ONE_TWO_THREE, lines[0][len(agent):]) <= WER_BOUND
    assert len(lines) >= 2 and all(x.startswith(caller) for x in lines[1:])
    assert wer(JFK, " ".join(x[len(caller):] for x in lines[1:])) <= WER_BOUND


def test_split_needs_stereo_and_progress_adds_up(clips, eval_dir, tmp_path, tiny_whisper):
    class Recorder:
        def __init__(self):
            self.started, self.advanced, self.finished = [], 0.0, []

        def file_started(self, item, duration):
            self.started.append((item.source.name, duration))

        def advance(self, seconds):
            assert seconds > 0
            self.advanced += seconds

        def file_finished(self, result):
            self.finished.append((result.item.source.name, result.status, result.error))

    opts = BatchOptions(out_dir=tmp_path / "out", channels="split")
    items = plan(discover([clips / "sub" / "123.wav"]).files, opts)
    rec = Recorder()
    summary = run_batch(items, opts, lambda: tiny_whisper, rec)
    assert rec.finished == [("123.wav", "failed", "has 1 channel; split channels need a 2-channel (stereo) recording")]
    assert summary.model is None  # never needed

    opts = BatchOptions(out_dir=tmp_path / "out", word_timestamps=True)
    rec = Recorder()
    summary = run_batch(plan(discover([clips / "sub"]).files, opts), opts, lambda: tiny_whisper, rec)
    assert rec.finished == [("123.wav", "done", None)]
    assert rec.started == [("123.wav", pytest.approx(2.745, abs=0.01))]
    assert rec.advanced == pytest.approx(2.745, abs=0.01)  # the bar ends exactly at the audio length
    assert summary.audio_s == pytest.approx(2.745, abs=0.01) and summary.real_time_factor > 0
    seg = [r for r in read_jsonl(tmp_path / "out" / "123.jsonl") if r["type"] == "segment"]
    ws = [w for s in seg for w in s["words"]]
    assert words(" ".join(w["word"] for w in ws)) == ["one", "two", "three"]
    assert all(0 <= w["start"] <= w["end"] <= 2.8 for w in ws)


def encode(path: Path, samples: np.ndarray, codec: str, rate: int = 16000, fmt: str | None = None) -> Path:
    """Write mono 16 kHz float samples with PyAV's encoders (the same FFmpeg that decodes)."""
    import av

    with av.open(str(path), "w", format=fmt) as c:
        stream = c.add_stream(codec, rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray((samples * 32767).astype(np.int16)[None, :], format="s16", layout="mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            c.mux(packet)
    return path


def test_flac_mp3_ogg(eval_dir, tmp_path, tiny_whisper):
    from faster_whisper import decode_audio

    one23 = decode_audio(str(eval_dir / "audio" / "en_speechrecognition_123.wav"))
    src = tmp_path / "coded"
    src.mkdir()
    encode(src / "c.flac", one23, "flac")
    encode(src / "c.mp3", one23, "libmp3lame")
    encode(src / "c.ogg", one23, "libopus", rate=48000, fmt="ogg")
    opts = BatchOptions(out_dir=tmp_path / "out", format="txt")
    items = plan(discover([src]).files, opts)
    assert [(i.source.name, i.output.name) for i in items] == [
        ("c.flac", "c.flac.txt"), ("c.mp3", "c.mp3.txt"), ("c.ogg", "c.ogg.txt")]  # same stem: suffixes kept
    assert all(i.duration == pytest.approx(2.745, abs=0.03) and i.channels == 1 for i in items)
    summary = run_batch(items, opts, lambda: tiny_whisper)
    assert [r.status for r in summary.results] == ["done"] * 3, summary.results
    for item in items:
        assert wer(ONE_TWO_THREE, item.output.read_text()) <= WER_BOUND, item.source.name


def test_cli_bad_language_and_model_stop_before_work(clips, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["transcribe", str(clips / "jfk.wav"), "--out", str(out), "--language", "xx"]) == 2
    assert "unsupported language 'xx'" in capsys.readouterr().err
    from voicetriage.cli.transcribe import _language

    assert _language("yue-HK") == "zh" and _language(None) is None  # the server's aliases
    assert main(["transcribe", str(clips / "jfk.wav"), "--out", str(out), "--model", "tiny.en", "--language", "zh"]) == 2
    assert "English-only" in capsys.readouterr().err
    bad = tmp_path / "no-model-here"
    assert main(["transcribe", str(clips / "jfk.wav"), "--out", str(out), "--model", str(bad)]) == 2
    assert f"model path {bad} is not a directory" in capsys.readouterr().err
    assert main(["transcribe", str(tmp_path / "empty-dir-does-not-exist"), "--out", str(out)]) == 1
    assert not out.exists() or not any(out.iterdir())


def test_real_subprocess_srt(eval_dir, tmp_path):
    """The installed CLI end to end, in its own process, with the real model loader."""
    out = tmp_path / "out"
    clip = eval_dir / "audio" / "en_speechrecognition_123.wav"
    proc = subprocess.run(
        [sys.executable, "-m", "voicetriage.cli", "transcribe", str(clip), "--out", str(out),
         "--format", "srt", "--model", "tiny.en", "--threads", "2"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "transcribed 1 file(s) with tiny.en, 0 skipped, 0 failed" in proc.stdout
    srt = (out / "en_speechrecognition_123.srt").read_text(encoding="utf-8")
    m = re.fullmatch(r"1\n(\d\d:\d\d:\d\d,\d\d\d) --> (\d\d:\d\d:\d\d,\d\d\d)\n(.+)\n", srt)
    assert m, srt
    assert m.group(1) < m.group(2) <= "00:00:02,745"
    assert wer(ONE_TWO_THREE, m.group(3)) <= WER_BOUND


@pytest.mark.model
def test_language_switch_within_a_file(manifest, tmp_path, base_engine):
    """English then Mandarin in one recording: each comes out in its own language
    (one detection per file used to write the Mandarin as English or drop it)."""
    import soxr

    def read(cid):
        with wave.open(manifest[cid]["path"]) as w:
            x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768
            return x if w.getframerate() == 16000 else soxr.resample(x, w.getframerate(), 16000)

    en, zh = read("en_asterisk8k_vm_instructions"), read("cmn_aishell1_S0764W0122")
    audio = np.concatenate([en, np.zeros(16000, np.float32), zh])
    src = tmp_path / "switch.wav"
    with wave.open(str(src), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.clip(audio * 32768, -32768, 32767).astype("<i2").tobytes())
    whisper = (base_engine.asr.model, base_engine.asr.resolved)
    switch_at = (len(en) + 16000) / 16000
    for per_chunk in (True, False):
        out = tmp_path / f"out-{per_chunk}"
        opts = BatchOptions(out_dir=out, format="jsonl", per_chunk_language=per_chunk)
        summary = run_batch(plan(discover([src]).files, opts), opts, lambda: whisper)
        assert [r.status for r in summary.results] == ["done"], summary.results
        segs = [r for r in read_jsonl(out / "switch.jsonl") if r["type"] == "segment"]
        en_segs = [s for s in segs if s["end"] <= switch_at]
        zh_segs = [s for s in segs if s["start"] >= switch_at - 0.5]
        if not per_chunk:  # the old behaviour, kept behind --file-language: the Mandarin is lost
            assert not zh_segs or {s["language"] for s in zh_segs} == {"en"}
            continue
        assert {s["language"] for s in en_segs} == {"en"}
        assert wer(manifest["en_asterisk8k_vm_instructions"]["transcript"], " ".join(s["text"] for s in en_segs)) <= 0.25
        assert zh_segs and {s["language"] for s in zh_segs} == {"zh"}
        assert metrics.cer(manifest["cmn_aishell1_S0764W0122"]["transcript"], "".join(s["text"] for s in zh_segs)) <= 0.5


def test_long_recordings_are_decoded_a_block_at_a_time(stereo_call, tmp_path, tiny_whisper, monkeypatch):
    """Blocks of 5 s instead of 5 minutes (memory stays bounded on an hour-long file):
    the same transcript, the block offsets added, the channels still labelled and interleaved."""
    import voicetriage.offline.batch as batch
    from voicetriage.audio.files import iter_audio_blocks, read_audio

    whole = read_audio(stereo_call, 16000, split=True, channels=2)
    blocks = list(iter_audio_blocks(stereo_call, 16000, split=True, channels=2, block_s=5.0, search_s=1.0))
    assert len(blocks) == 3 and [b[0] for b in blocks] == sorted(b[0] for b in blocks)
    for ch in (0, 1):
        assert np.array_equal(np.concatenate([b[1][ch] for b in blocks]), whole[ch])
    # each cut is at the quietest 50 ms of the second before it
    for first, _ in blocks[1:]:
        mix = (whole[0] + whole[1])[first - 400:first + 400]
        assert float(np.sqrt(np.mean(mix * mix))) < 0.05

    monkeypatch.setattr(batch, "BLOCK_S", 5.0)
    out = tmp_path / "out"
    opts = BatchOptions(out_dir=out, format="jsonl", channels="split")
    summary = run_batch(plan(discover([stereo_call]).files, opts), opts, lambda: tiny_whisper)
    assert [r.status for r in summary.results] == ["done"], summary.results
    records = read_jsonl(out / "call.jsonl")
    header, segs = records[0], [r for r in records if r["type"] == "segment"]
    assert header["duration"] == pytest.approx(14.0, abs=0.01)
    assert [(t["speaker"], t["channel"]) for t in header["tracks"]] == [("caller", 0), ("agent", 1)]
    assert wer(JFK, segments_text(out / "call.jsonl", "caller")) <= WER_BOUND + 0.1
    assert wer(ONE_TWO_THREE, segments_text(out / "call.jsonl", "agent")) <= WER_BOUND
    assert max(s["end"] for s in segs) > 10.0  # the last block's segments carry its offset
    assert [s["start"] for s in segs] == sorted(s["start"] for s in segs)
    assert all(0 <= s["start"] <= s["end"] <= header["duration"] for s in segs)
