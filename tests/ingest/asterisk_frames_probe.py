"""Probe (not a test): what a real Asterisk sends on AudioSocket for AudioSocket(), Dial c(slin16) and c(ulaw).

Run: VOICETRIAGE_ASTERISK=/work/peers/asterisk python tests/ingest/asterisk_frames_probe.py sink-app sink-slin16 sink-ulaw
(prints, per call, the (kind, payload length) counts of the frames received on a raw TCP socket)."""
import sys, time, socket, threading, struct
sys.path.insert(0, str(__import__('pathlib').Path(__file__).resolve().parent))
from pathlib import Path
from asterisk_pbx import Asterisk
import numpy as np
from tel_helpers import pcm8k
import wave
# a raw TCP sink recording frames
srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(8); port = srv.getsockname()[1]
conns = []
def accept():
    while True:
        c, _ = srv.accept()
        rec = {'frames': [], 't0': time.monotonic()}
        conns.append(rec)
        def rd(c=c, rec=rec):
            buf = b''
            while True:
                d = c.recv(65536)
                if not d: rec['eof'] = time.monotonic(); break
                buf += d
                while len(buf) >= 3:
                    k, n = struct.unpack('>BH', buf[:3])
                    if len(buf) < 3 + n: break
                    rec['frames'].append((k, n, time.monotonic())); buf = buf[3+n:]
        threading.Thread(target=rd, daemon=True).start()
threading.Thread(target=accept, daemon=True).start()
clip = '/work/shared/eval/audio/en_asterisk8k_pbx_invalid.wav'
with wave.open(clip) as w: p16 = np.frombuffer(w.readframes(w.getnframes()), '<i2')
plan = f"""
[general]
[globals]
[sink-app]
exten => s,1,Answer()
 same => n,AudioSocket(${{UUID()}},127.0.0.1:{port})
 same => n,Hangup()
[sink-slin16]
exten => s,1,Dial(AudioSocket/127.0.0.1:{port}/${{UUID()}}/c(slin16))
[sink-ulaw]
exten => s,1,Dial(AudioSocket/127.0.0.1:{port}/${{UUID()}}/c(ulaw))
[player]
exten => s,1,Answer()
 same => n,Wait(0.5)
 same => n,SendDTMF(9)
 same => n,Playback(CLIP)
 same => n,Wait(1)
 same => n,Hangup()
"""
import os
a = Asterisk(Path(os.environ['VOICETRIAGE_ASTERISK']), plan.replace('CLIP', '/tmp/PLACEHOLDER'))
path = a.sound('clip', pcm8k(clip), p16)
(a.root/'etc'/'extensions.conf').write_text(plan.replace('CLIP', path))
print(a.cli('dialplan reload'))
for ctx in sys.argv[1:]:
    n = len(conns)
    print(a.cli(f'channel originate Local/s@{ctx} extension s@player'))
    time.sleep(9)
    for rec in conns[n:]:
        from collections import Counter
        print(ctx, Counter((k, n) for k, n, t in rec['frames']).most_common(6), 'eof' in rec)
print(a.log()[-3000:])
a.close()
