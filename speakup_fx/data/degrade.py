"""Reproducible speech degradation: ``draw(rng) -> DegradeParams``, then ``apply(clean, params) -> noisy``.

The chain, in order: room (a real or simulated impulse response, reshaped in
RT60 and direct-to-reverberant ratio as in Bryan 2019, "Impulse response data
augmentation and deep neural networks for speech enhancement"), additive real
noise (optionally coloured by random EQ) at a drawn SNR, microphone/phone EQ and band limits, clipping, and a
lossy codec round trip. The reverberant signal is shifted by the impulse
response's direct-path delay, so the target is the dry clean speech scaled by
the drawn level (``target``). Every random choice lives in the params; ``apply``
is deterministic.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field

import numpy as np
import scipy.signal

from speakup_fx.dsp.resample import resample

logger = logging.getLogger(__name__)

DIRECT_WINDOW_S = 0.0025
"""Half-width of the window around the direct-path peak that counts as direct sound."""

TARGETS = ("dry", "reverberant", "early", "direct", "early_direct_level")
"""Kinds of training target ``Degrader.degrade`` makes."""

CODECS = ("libopus", "libmp3lame", "aac")

NOISE_SPEED_STEPS = 20
"""Noise speeds are drawn as k / 20, so each resampling ratio is a small fraction (16 kHz x 21/20 = 16.8 kHz: 20/21)."""

_CODEC_CONTAINERS = {"libopus": "ogg", "libmp3lame": "mp3", "aac": "adts"}
_MAX_CODEC_DELAY_SAMPLES = 4096


@dataclass(frozen=True)
class DegradeConfig:
    """Probabilities and ranges of every degradation."""

    sample_rate: int = field(default=16_000, metadata={"help": "rate of speech, noise and impulse responses"})
    clean_only_prob: float = field(default=0.04, metadata={"help": "share of examples left undegraded (identity)"})
    noise_prob: float = field(default=0.9, metadata={"help": "chance of additive noise"})
    snr_db_range: tuple[float, float] = field(default=(-5.0, 35.0), metadata={"help": "SNR of the noise, dB"})
    snr_tail_prob: float = field(default=0.0, metadata={"help": "chance the SNR is drawn from snr_tail_db_range instead"})
    snr_tail_db_range: tuple[float, float] = field(default=(20.0, 40.0), metadata={"help": "SNR of the tail draws, dB"})
    reverb_prob: float = field(default=0.5, metadata={"help": "chance of a room impulse response"})
    real_rir_prob: float = field(default=0.3, metadata={"help": "chance the room is a measured (not simulated) one"})
    rt60_s_range: tuple[float, float] = field(default=(0.15, 1.0), metadata={"help": "reshaped RT60, s"})
    rt60_reshape_prob: float = field(default=0.5, metadata={"help": "chance of reshaping the RT60"})
    drr_db_range: tuple[float, float] = field(default=(-3.0, 20.0), metadata={"help": "reshaped direct-to-reverberant ratio, dB"})
    drr_reshape_prob: float = field(default=0.5, metadata={"help": "chance of reshaping the DRR"})
    eq_prob: float = field(default=0.5, metadata={"help": "chance of random EQ"})
    eq_gain_db: float = field(default=12.0, metadata={"help": "largest EQ boost or cut, dB"})
    eq_max_bands: int = field(default=3, metadata={"help": "most EQ bands (peaks and shelves)"})
    noise_eq_prob: float = field(default=0.0, metadata={"help": "chance of random EQ on the noise alone, before the SNR mix (RNNoise, DeepFilterNet)"})
    noise_eq_gain_db: float = field(default=15.0, metadata={"help": "largest boost or cut of the noise EQ, dB"})
    second_noise_prob: float = field(default=0.0, metadata={"help": "chance a second noise recording plays with the first (new scenes from the same banks)"})
    second_noise_db_range: tuple[float, float] = field(default=(-10.0, 0.0), metadata={"help": "level of the second noise relative to the first, dB"})
    noise_speed_prob: float = field(default=0.0, metadata={"help": "chance the noise plays faster or slower (its pitch and spectrum shift with it)"})
    noise_speed_range: tuple[float, float] = field(default=(0.8, 1.2), metadata={"help": "slowest and fastest noise speed (drawn as k / NOISE_SPEED_STEPS)"})
    bandlimit_prob: float = field(default=0.25, metadata={"help": "chance of a phone-like band limit"})
    lowpass_hz_range: tuple[float, float] = field(default=(3400.0, 7500.0), metadata={"help": "band-limit cutoff, Hz"})
    level_db_range: tuple[float, float] = field(default=(-38.0, -18.0), metadata={"help": "RMS level of the clean speech, dBFS"})
    clip_prob: float = field(default=0.1, metadata={"help": "chance of clipping"})
    clip_ratio_range: tuple[float, float] = field(default=(0.3, 0.9), metadata={"help": "clip threshold / peak"})
    codec_prob: float = field(default=0.2, metadata={"help": "chance of a lossy codec round trip"})
    bitrate_bps_range: tuple[int, int] = field(default=(12_000, 32_000), metadata={"help": "codec bitrate, bit/s"})
    early_reflections_s: float = field(default=0.05, metadata={"help": "room response kept whole after the direct path in the 'early' target, s"})
    late_decay_s: float = field(default=0.1, metadata={"help": "extra 60 dB decay time of the tail after the early part in the 'early' target, s"})

    def __post_init__(self) -> None:
        low_speed, high_speed = self.noise_speed_range
        if not 0 < low_speed <= high_speed or round(low_speed * NOISE_SPEED_STEPS) < 1:
            raise ValueError(f"degrade.noise_speed_range {self.noise_speed_range}: expected 0 < slowest <= fastest, slowest >= 1/{NOISE_SPEED_STEPS}")
        if self.second_noise_db_range[0] > self.second_noise_db_range[1]:
            raise ValueError(f"degrade.second_noise_db_range {self.second_noise_db_range}: expected (lowest, highest)")


@dataclass(frozen=True)
class EqBand:
    """One RBJ biquad: ``kind`` is 'peak', 'low_shelf' or 'high_shelf'."""

    kind: str
    frequency_hz: float
    gain_db: float
    q: float


@dataclass(frozen=True)
class DegradeParams:
    """Every random choice of one example."""

    level_db: float
    clean_only: bool = False
    noise_index: int | None = None
    noise_offset: int = 0
    snr_db: float | None = None
    noise_eq_bands: tuple[EqBand, ...] = ()
    second_noise_index: int | None = None
    second_noise_offset: int = 0
    second_noise_db: float = 0.0
    noise_speed: float = 1.0
    rir_index: int | None = None
    rt60_s: float | None = None
    drr_db: float | None = None
    eq_bands: tuple[EqBand, ...] = ()
    lowpass_hz: float | None = None
    clip_ratio: float | None = None
    codec: str | None = None
    bitrate_bps: int = 0


def rms_db(x: np.ndarray) -> float:
    """RMS level of ``x`` in dBFS (``-inf`` for silence)."""
    power = float(np.mean(np.square(x, dtype=np.float64)))
    return 10 * np.log10(power) if power > 0 else -np.inf


def band_limit(x: np.ndarray, cutoff_hz: float, sample_rate: int, order: int = 8) -> np.ndarray:
    """``x`` (1-D) without its content above ``cutoff_hz``: a zero-phase Butterworth low-pass (nothing moves in time)."""
    if not 0 < cutoff_hz < sample_rate / 2:
        raise ValueError(f"cutoff_hz: expected 0 < cutoff < {sample_rate / 2:g} Hz, got {cutoff_hz}")
    sos = scipy.signal.butter(order, cutoff_hz, fs=sample_rate, output="sos")
    return scipy.signal.sosfiltfilt(sos, x).astype(np.float32)


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``speech + noise`` scaled so that mean power ratio speech/noise is ``snr_db`` (1-D, same length)."""
    if speech.shape != noise.shape:
        raise ValueError(f"speech {speech.shape} and noise {noise.shape} must have the same shape")
    noise_power = np.mean(np.square(noise, dtype=np.float64))
    if noise_power == 0:
        return speech.copy()
    scale = np.sqrt(np.mean(np.square(speech, dtype=np.float64)) / noise_power / 10 ** (snr_db / 10))
    return (speech + scale * noise).astype(np.float32)


def direct_path_index(rir: np.ndarray) -> int:
    """Index of the direct-path peak (largest magnitude) of a 1-D impulse response."""
    return int(np.argmax(np.abs(rir)))


def _energy(x: np.ndarray) -> float:
    """Sum of squares in float64."""
    return float(np.sum(np.square(x, dtype=np.float64)))


def _direct_window(rir: np.ndarray, sample_rate: int) -> tuple[int, np.ndarray]:
    """Start index and Hann weights of the direct-sound window around the peak."""
    peak = direct_path_index(rir)
    half = int(round(DIRECT_WINDOW_S * sample_rate))
    window = np.hanning(2 * half + 3)[1:-1]  # 2*half+1 points, 1 at the centre, > 0 everywhere
    start = peak - half
    lo, hi = max(start, 0), min(peak + half + 1, len(rir))
    weights = np.zeros(len(rir))
    weights[lo:hi] = window[lo - start : hi - start]
    return peak, weights


def drr_db(rir: np.ndarray, sample_rate: int) -> float:
    """Direct-to-reverberant ratio: energy inside vs outside a ±2.5 ms window at the peak, dB."""
    peak = direct_path_index(rir)
    half = int(round(DIRECT_WINDOW_S * sample_rate))
    energy = np.square(rir, dtype=np.float64)
    direct = energy[max(peak - half, 0) : peak + half + 1].sum()
    return float(10 * np.log10(direct / max(energy.sum() - direct, 1e-20)))


def reshape_drr(rir: np.ndarray, sample_rate: int, target_db: float) -> np.ndarray:
    """Scale the direct sound (Hann-tapered, Bryan 2019) so that ``drr_db`` becomes ``target_db``.

    Targets below what the tapered window allows are clamped to the lowest reachable ratio.
    """
    peak = direct_path_index(rir)
    half = int(round(DIRECT_WINDOW_S * sample_rate))
    _, w = _direct_window(rir, sample_rate)
    lo, hi = max(peak - half, 0), peak + half + 1
    h = rir.astype(np.float64)
    energy = h**2
    late = energy.sum() - energy[lo:hi].sum()
    want = late * 10 ** (target_db / 10)
    e, ww = energy[lo:hi], w[lo:hi]
    # sum(e * (a*w + 1 - w)^2) = want, a quadratic in a
    qa, qb, qc = np.sum(e * ww**2), 2 * np.sum(e * ww * (1 - ww)), np.sum(e * (1 - ww) ** 2) - want
    disc = qb**2 - 4 * qa * qc
    a = max((-qb + np.sqrt(max(disc, 0.0))) / (2 * qa), 0.0)
    return (h * (a * w + 1 - w)).astype(np.float32)


def schroeder_rt60_s(rir: np.ndarray, sample_rate: int, fit_db: tuple[float, float] = (-5.0, -25.0)) -> float:
    """RT60 from the Schroeder backward-integrated decay, line fit between ``fit_db`` (T20 x 3)."""
    peak = direct_path_index(rir)
    energy = np.square(rir[peak:], dtype=np.float64)
    edc = np.cumsum(energy[::-1])[::-1]
    edc_db = 10 * np.log10(np.maximum(edc / edc[0], 1e-30))
    idx = np.nonzero((edc_db <= fit_db[0]) & (edc_db >= fit_db[1]))[0]
    if len(idx) < 2:
        raise ValueError("impulse response decays too little to measure RT60")
    t = idx / sample_rate
    slope, _ = np.polyfit(t, edc_db[idx], 1)
    return float(-60.0 / slope)


def reshape_rt60(rir: np.ndarray, sample_rate: int, target_s: float) -> np.ndarray:
    """Reshape the tail after the direct window with an exponential so its RT60 becomes ``target_s``."""
    current = schroeder_rt60_s(rir, sample_rate)
    peak = direct_path_index(rir)
    start = peak + int(round(DIRECT_WINDOW_S * sample_rate)) + 1
    t = np.maximum(np.arange(len(rir)) - start, 0) / sample_rate
    envelope = np.exp(-3 * np.log(10) * t * (1 / target_s - 1 / current))
    return (rir * envelope).astype(np.float32)


def _biquad(band: EqBand, sample_rate: int) -> np.ndarray:
    """RBJ cookbook biquad as one SOS row."""
    big_a = 10 ** (band.gain_db / 40)
    w0 = 2 * np.pi * band.frequency_hz / sample_rate
    alpha = np.sin(w0) / (2 * band.q)
    cos = np.cos(w0)
    if band.kind == "peak":
        b = [1 + alpha * big_a, -2 * cos, 1 - alpha * big_a]
        a = [1 + alpha / big_a, -2 * cos, 1 - alpha / big_a]
    elif band.kind in ("low_shelf", "high_shelf"):
        sign = 1 if band.kind == "low_shelf" else -1
        sq = 2 * np.sqrt(big_a) * alpha
        b = [
            big_a * ((big_a + 1) - sign * (big_a - 1) * cos + sq),
            sign * 2 * big_a * ((big_a - 1) - sign * (big_a + 1) * cos),
            big_a * ((big_a + 1) - sign * (big_a - 1) * cos - sq),
        ]
        a = [
            (big_a + 1) + sign * (big_a - 1) * cos + sq,
            -sign * 2 * ((big_a - 1) + sign * (big_a + 1) * cos),
            (big_a + 1) + sign * (big_a - 1) * cos - sq,
        ]
    else:
        raise ValueError(f"EqBand.kind: unknown {band.kind!r}")
    return np.array([*b, *a]) / a[0]


def _equalise(x: np.ndarray, bands: tuple[EqBand, ...], sample_rate: int) -> np.ndarray:
    """``x`` through the biquads of ``bands`` in series (``x`` itself when there are none)."""
    if not bands:
        return x
    return scipy.signal.sosfilt(np.stack([_biquad(band, sample_rate) for band in bands]), x).astype(np.float32)


def codec_roundtrip(x: np.ndarray, sample_rate: int, codec: str, bitrate_bps: int) -> np.ndarray:
    """Encode and decode 1-D ``x`` with a lossy codec (PyAV), realigned to ``x`` and of the same length."""
    import av  # here, not at the top: runs without codec round trips train where PyAV is not installed (train/travel.py)

    if codec not in CODECS:
        raise ValueError(f"codec: expected one of {CODECS}, got {codec!r}")
    sample_format = "flt" if codec == "libopus" else "fltp"
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=_CODEC_CONTAINERS[codec]) as container:
        stream = container.add_stream(codec, rate=sample_rate)
        stream.bit_rate = bitrate_bps
        stream.layout = "mono"
        stream.format = sample_format
        frame_size = stream.codec_context.frame_size or 1024
        padded = np.concatenate([x, np.zeros(frame_size, np.float32)]).astype(np.float32)
        for start in range(0, len(padded) - frame_size + 1, frame_size):
            frame = av.AudioFrame.from_ndarray(padded[None, start : start + frame_size], format=sample_format, layout="mono")
            frame.sample_rate = sample_rate
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    buffer.seek(0)
    chunks, decoded_rate = [], sample_rate
    with av.open(buffer, "r") as container:
        for frame in container.decode(audio=0):
            chunks.append(frame.to_ndarray().astype(np.float32).reshape(-1))
            decoded_rate = frame.sample_rate
    y = np.concatenate(chunks)
    if decoded_rate != sample_rate:
        y = resample(y, decoded_rate, sample_rate)
    # realign: the codec adds a priming delay
    n = min(len(x), 4 * sample_rate)
    corr = scipy.signal.fftconvolve(y[: n + _MAX_CODEC_DELAY_SAMPLES], x[:n][::-1], mode="valid")
    delay = int(np.argmax(np.abs(corr[: _MAX_CODEC_DELAY_SAMPLES + 1])))
    out = y[delay : delay + len(x)]
    return np.pad(out, (0, len(x) - len(out))).astype(np.float32)


class Degrader:
    """Draws and applies degradations from banks of noise and impulse responses (1-D float32 arrays).

    ``rirs`` lists measured responses first (``real_rir_count`` of them), then simulated ones.
    """

    def __init__(self, noises: list[np.ndarray], rirs: list[np.ndarray], real_rir_count: int, config: DegradeConfig = DegradeConfig()):
        if not noises and config.noise_prob > 0:
            raise ValueError(f"noises: need at least one noise recording (noise_prob {config.noise_prob})")
        if not 0 <= real_rir_count <= len(rirs):
            raise ValueError(f"real_rir_count {real_rir_count} outside [0, {len(rirs)}]")
        self.noises = noises
        self.rirs = rirs
        self.real_rir_count = real_rir_count
        self.config = config

    def draw(self, rng: np.random.Generator) -> DegradeParams:
        """Draw one example's params; all randomness comes from ``rng``."""
        c = self.config
        level_db = float(rng.uniform(*c.level_db_range))
        if rng.random() < c.clean_only_prob:
            return DegradeParams(level_db=level_db, clean_only=True)
        kw: dict = {}
        if rng.random() < c.noise_prob:
            kw["noise_index"] = int(rng.integers(len(self.noises)))
            kw["noise_offset"] = int(rng.integers(len(self.noises[kw["noise_index"]])))
            tail = c.snr_tail_prob > 0 and rng.random() < c.snr_tail_prob  # no draw when off: old draws stay
            kw["snr_db"] = float(rng.uniform(*(c.snr_tail_db_range if tail else c.snr_db_range)))
            if c.noise_eq_prob > 0 and rng.random() < c.noise_eq_prob:  # no draw when off: old draws stay
                kw["noise_eq_bands"] = self._draw_eq(rng, c.noise_eq_gain_db)
            if c.second_noise_prob > 0 and rng.random() < c.second_noise_prob:
                kw["second_noise_index"] = int(rng.integers(len(self.noises)))
                kw["second_noise_offset"] = int(rng.integers(len(self.noises[kw["second_noise_index"]])))
                kw["second_noise_db"] = float(rng.uniform(*c.second_noise_db_range))
            if c.noise_speed_prob > 0 and rng.random() < c.noise_speed_prob:
                low, high = (round(v * NOISE_SPEED_STEPS) for v in c.noise_speed_range)
                kw["noise_speed"] = int(rng.integers(low, high + 1)) / NOISE_SPEED_STEPS
        if self.rirs and rng.random() < c.reverb_prob:
            simulated = len(self.rirs) - self.real_rir_count
            if self.real_rir_count and (simulated == 0 or rng.random() < c.real_rir_prob):
                kw["rir_index"] = int(rng.integers(self.real_rir_count))
            else:
                kw["rir_index"] = self.real_rir_count + int(rng.integers(simulated))
            if rng.random() < c.rt60_reshape_prob:
                kw["rt60_s"] = float(rng.uniform(*c.rt60_s_range))
            if rng.random() < c.drr_reshape_prob:
                kw["drr_db"] = float(rng.uniform(*c.drr_db_range))
        if rng.random() < c.eq_prob:
            kw["eq_bands"] = self._draw_eq(rng, c.eq_gain_db)
        if rng.random() < c.bandlimit_prob:
            kw["lowpass_hz"] = float(rng.uniform(*c.lowpass_hz_range))
        if rng.random() < c.clip_prob:
            kw["clip_ratio"] = float(rng.uniform(*c.clip_ratio_range))
        if rng.random() < c.codec_prob:
            kw["codec"] = CODECS[int(rng.integers(len(CODECS)))]
            kw["bitrate_bps"] = int(rng.integers(c.bitrate_bps_range[0], c.bitrate_bps_range[1] + 1))
        return DegradeParams(level_db=level_db, **kw)

    def _draw_eq(self, rng: np.random.Generator, gain_db: float) -> tuple[EqBand, ...]:
        """1 to ``eq_max_bands`` random peaks and shelves, each boosting or cutting by up to ``gain_db``."""
        bands = []
        for _ in range(int(rng.integers(1, self.config.eq_max_bands + 1))):
            kind = ("peak", "low_shelf", "high_shelf")[int(rng.integers(3))]
            low, high = {"peak": (150.0, 6000.0), "low_shelf": (80.0, 600.0), "high_shelf": (1500.0, 6000.0)}[kind]
            bands.append(EqBand(kind, float(np.exp(rng.uniform(np.log(low), np.log(high)))), float(rng.uniform(-gain_db, gain_db)), float(rng.uniform(0.5, 2.0))))
        return tuple(bands)

    def room(self, params: DegradeParams) -> np.ndarray | None:
        """The reshaped impulse response of ``params``, direct path scaled to 1 (None when dry)."""
        if params.rir_index is None:
            return None
        sample_rate = self.config.sample_rate
        rir = self.rirs[params.rir_index]
        if params.rt60_s is not None:
            rir = reshape_rt60(rir, sample_rate, params.rt60_s)
        if params.drr_db is not None:
            rir = reshape_drr(rir, sample_rate, params.drr_db)
        return (rir / rir[direct_path_index(rir)]).astype(np.float32)

    def target(self, clean: np.ndarray, params: DegradeParams) -> np.ndarray:
        """The training target: dry ``clean`` (1-D) at the drawn level."""
        return (clean * self._gain(clean, params)).astype(np.float32)

    def early_room(self, rir: np.ndarray) -> np.ndarray:
        """A ``room`` with its late tail decayed: whole for ``early_reflections_s`` after the direct path, then
        faded by a further 60 dB per ``late_decay_s`` (the less-reverberant target of DeepFilterNet)."""
        c = self.config
        start = direct_path_index(rir) + int(round(c.early_reflections_s * c.sample_rate))
        late_s = np.maximum(np.arange(len(rir)) - start, 0) / c.sample_rate
        return (rir * np.exp(-3 * np.log(10) * late_s / c.late_decay_s)).astype(np.float32)

    def direct_room(self, rir: np.ndarray) -> np.ndarray:
        """A ``room`` cut to its direct sound: the Hann window of ``DIRECT_WINDOW_S`` around the peak that
        ``reshape_drr`` scales. A measured response's direct sound carries its loudspeaker and microphone and may
        spread over a millisecond; this is the dry speech as that room's microphone heard it."""
        return (rir * _direct_window(rir, self.config.sample_rate)[1]).astype(np.float32)

    def early_room_at_direct_level(self, rir: np.ndarray) -> np.ndarray:
        """``early_room`` scaled to the energy of ``direct_room``: the late tail decayed and the level that the early
        reflections add taken off too (3.6 dB on average on the 48 kHz room set), so that removing the room keeps the
        speech at its dry level without removing the early reflections' colour."""
        early = self.early_room(rir)
        return (early * np.sqrt(_energy(self.direct_room(rir)) / _energy(early))).astype(np.float32)

    def degrade(self, clean: np.ndarray, params: DegradeParams, kinds: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Degrade 1-D float32 ``clean`` as ``params`` say, and the targets ``(len(kinds), time)`` aligned with it:
        each of ``TARGETS`` is the clean speech at the drawn level through no room ('dry'), the whole room
        ('reverberant': the input's own convolution, before the noise), its early part ('early'; at the direct
        sound's energy: 'early_direct_level') or its direct sound alone ('direct'). The room is reshaped once for all
        of them."""
        if clean.ndim != 1:
            raise ValueError(f"clean: expected a 1-D array, got shape {clean.shape}")
        unknown = set(kinds) - set(TARGETS)
        if unknown:
            raise ValueError(f"targets: unknown {sorted(unknown)}, expected some of {TARGETS}")
        dry = self.target(clean, params)
        rir = self.room(params)
        reverberant = self._through(dry, rir)
        rooms = {"early": self.early_room, "direct": self.direct_room, "early_direct_level": self.early_room_at_direct_level}

        def through(kind: str) -> np.ndarray:
            if kind == "dry" or rir is None:
                return dry
            if kind == "reverberant":
                return reverberant
            return self._through(dry, rooms[kind](rir))

        targets = np.stack([through(kind) for kind in kinds]) if kinds else np.zeros((0, len(dry)), np.float32)
        return (dry if params.clean_only else self._corrupt(reverberant, params)), targets

    def apply(self, clean: np.ndarray, params: DegradeParams) -> np.ndarray:
        """The degraded input of ``degrade`` alone; same length as ``clean``, aligned with ``target``."""
        return self.degrade(clean, params, ())[0]

    @staticmethod
    def _through(x: np.ndarray, rir: np.ndarray | None) -> np.ndarray:
        """``x`` convolved with ``rir`` and shifted by its direct-path delay (``x`` itself when dry)."""
        if rir is None:
            return x
        delay = direct_path_index(rir)
        return scipy.signal.fftconvolve(x, rir)[delay : delay + len(x)].astype(np.float32)

    def _corrupt(self, x: np.ndarray, params: DegradeParams) -> np.ndarray:
        """``x`` (the speech through the room) with the drawn noise, EQ, band limit, clipping and codec."""
        sample_rate = self.config.sample_rate
        if params.noise_index is not None:
            x = mix_at_snr(x, self._noise(params, len(x)), params.snr_db)
        x = _equalise(x, params.eq_bands, sample_rate)
        if params.lowpass_hz is not None:
            sos = scipy.signal.butter(8, params.lowpass_hz, fs=sample_rate, output="sos")
            x = scipy.signal.sosfilt(sos, x).astype(np.float32)
        if params.clip_ratio is not None:
            limit = params.clip_ratio * float(np.max(np.abs(x)))
            x = np.clip(x, -limit, limit)
        if params.codec is not None:
            x = codec_roundtrip(x, sample_rate, params.codec, params.bitrate_bps)
        return x.astype(np.float32)

    def _gain(self, clean: np.ndarray, params: DegradeParams) -> float:
        level = rms_db(clean)
        return 1.0 if not np.isfinite(level) else float(10 ** ((params.level_db - level) / 20))

    def _noise(self, params: DegradeParams, frames: int) -> np.ndarray:
        """``frames`` of the drawn noise: its recording from the drawn offset (looped), plus the second one at its
        relative level, played at the drawn speed, through the noise EQ."""
        rate = self.config.sample_rate
        played_rate = int(round(rate * params.noise_speed))  # `frames` at `rate` hold this many frames of the recordings
        needed = -(-frames * played_rate // rate)
        noise = self._looped(params.noise_index, params.noise_offset, needed)
        if params.second_noise_index is not None:
            second = self._looped(params.second_noise_index, params.second_noise_offset, needed)
            gain_db = params.second_noise_db + rms_db(noise) - rms_db(second)
            if np.isfinite(gain_db):  # a silent stretch of either recording adds nothing
                noise = noise + second * np.float32(10 ** (gain_db / 20))
        if played_rate != rate:
            noise = resample(noise, played_rate, rate)[:frames]
        return _equalise(noise, params.noise_eq_bands, rate)

    def _looped(self, index: int, offset: int, frames: int) -> np.ndarray:
        """``frames`` of noise recording ``index`` from ``offset``, looped."""
        noise = self.noises[index]
        return np.tile(noise, -(-(offset + frames) // len(noise)))[offset : offset + frames]
