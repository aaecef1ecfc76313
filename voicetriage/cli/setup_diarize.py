"""``voicetriage setup-diarize``: the one set-up step of the optional ``diarize`` extra.

Exit status: 0 ready (or restored with --undo); 2 the extra is not installed
or a library fails for another reason than missing CUDA.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "setup-diarize",
        help="make the 'diarize' extra usable on a CPU-only torch (run once after pip install)",
        description=(
            "PyPI's torchaudio releases that match torch 2.13 are CUDA builds whose extension "
            "libraries (torchaudio/lib/*.so) need libc10_cuda.so, so 'import torchaudio' fails "
            "on the CPU build of torch. torchaudio runs without them (it checks whether they are "
            "present), and pyannote.audio uses only its pure-Python parts. This step renames "
            "each library that cannot load for want of CUDA to NAME.so.needs-cuda; libraries "
            "that load are left alone. Run it once after installing the extra; --undo restores "
            "them. Then it checks that pyannote.audio imports and the diarization weights verify."
        ),
    )
    p.add_argument("--undo", action="store_true", help="restore the libraries moved aside")
    p.add_argument("--check", action="store_true", help="only report, change nothing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from voicetriage.diarize import environment as env

    if args.check:
        for st in env.torchaudio_libraries():
            state = "moved aside" if st.disabled else ("does not load: " + st.error if st.error else "loads")
            print(f"{st.path}: {state}")
    else:
        for line in env.setup_torchaudio(undo=args.undo):
            print(line)
        if args.undo:
            return 0
    env.require()
    from voicetriage.diarize.pipeline import resolve_weights

    weights = resolve_weights()
    print("pyannote.audio imports; diarization weights verified: "
          + ", ".join(f"{k} {v}" for k, v in weights.items()))
    return 0
