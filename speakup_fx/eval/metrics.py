"""Speech-quality metrics as pure functions of mono signals.

Paired (intrusive) metrics compare an estimate with its clean reference:
PESQ-WB (ITU-T P.862.2 through the ``pesq`` package), STOI (``pystoi``) and
SI-SDR; and the word error rate of an offline recogniser's transcript of the estimate against its
transcript of the reference (``pocketsphinx`` with the US English model it ships: no human
transcripts needed). DNSMOS P.835 needs no reference: it runs the ``sig_bak_ovr`` ONNX model
that the ``speechmos`` package ships, offline, with the segmenting and the
polynomial mapping of Microsoft's reference script. Signals are 1-D or
``(1, frames)`` arrays; none is modified.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
import onnxruntime
import pesq as pesq_package
import pystoi
import scipy.signal

logger = logging.getLogger(__name__)

METRIC_SAMPLE_RATE = 16_000
"""Rate PESQ-WB and DNSMOS are defined at."""

DNSMOS_WINDOW_S = 9.01
"""Length of the audio DNSMOS scores at once; shorter clips are repeated to fill it."""

_DNSMOS_MODEL = ("speechmos", "dnsmos_models/sig_bak_ovr.onnx")
# Raw model outputs -> P.835 scale; coefficients of DNSMOS' non-personalised model.
_DNSMOS_SIG_POLY = np.poly1d([-0.08397278, 1.22083953, 0.0052439])
_DNSMOS_BAK_POLY = np.poly1d([-0.13166888, 1.60915514, -0.39604546])
_DNSMOS_OVRL_POLY = np.poly1d([-0.06766283, 1.11546468, 0.04602535])


@dataclass(frozen=True)
class DnsmosScores:
    """DNSMOS P.835 predictions on the 1-5 MOS scale."""

    sig: float
    """speech signal quality"""
    bak: float
    """background noise (higher = less intrusive)"""
    ovrl: float
    """overall quality"""


def mean_where_defined(values) -> float:
    """The mean of the values that are not NaN (a score some files do not have, e.g. no pauses); NaN if none is."""
    defined = [v for v in values if not np.isnan(v)]
    return float(np.mean(defined)) if defined else float("nan")


def median_where_defined(values) -> float:
    """The median of the values that are not NaN; NaN if none is."""
    defined = [v for v in values if not np.isnan(v)]
    return float(np.median(defined)) if defined else float("nan")


def _mono(audio: np.ndarray, name: str) -> np.ndarray:
    """``audio`` (1-D or one channel) as a float64 1-D copy; raise ValueError naming ``name``."""
    array = np.asarray(audio)
    if array.ndim == 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 1:
        raise ValueError(f"{name}: expected mono audio, 1-D or (1, frames), got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name}: empty audio")
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"{name}: expected floating-point audio, got {array.dtype}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: contains NaN or infinity")
    return array.astype(np.float64)


def _pair(reference: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref, est = _mono(reference, "reference"), _mono(estimate, "estimate")
    if ref.size != est.size:
        raise ValueError(f"reference has {ref.size} frames but estimate has {est.size}; they must be aligned and equal")
    return ref, est


def _require_metric_rate(sample_rate: int, metric: str) -> None:
    if sample_rate != METRIC_SAMPLE_RATE:
        raise ValueError(f"sample_rate: {metric} needs {METRIC_SAMPLE_RATE} Hz audio, got {sample_rate}")


def pesq_wb(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    """Wide-band PESQ (ITU-T P.862.2, MOS-LQO about 1.04-4.64) of ``estimate`` against ``reference`` at 16 kHz."""
    _require_metric_rate(sample_rate, "PESQ-WB")
    ref, est = _pair(reference, estimate)
    return float(pesq_package.pesq(sample_rate, ref, est, "wb"))


def stoi(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    """Short-time objective intelligibility (0-1) of ``estimate`` against ``reference``."""
    ref, est = _pair(reference, estimate)
    return float(pystoi.stoi(ref, est, sample_rate, extended=False))


def si_sdr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al. 2019); both signals are made zero-mean.

    ``inf`` when ``estimate`` is an exact scaled copy of ``reference``.
    """
    ref, est = _pair(reference, estimate)
    ref = ref - ref.mean()
    est = est - est.mean()
    ref_energy = np.dot(ref, ref)
    if ref_energy == 0.0:
        raise ValueError("reference: silent (constant) signal, SI-SDR is undefined")
    target = (np.dot(est, ref) / ref_energy) * ref
    residual = est - target
    residual_energy = np.dot(residual, residual)
    if residual_energy == 0.0:
        return float("inf")
    return float(10.0 * np.log10(np.dot(target, target) / residual_energy))


LSD_FFT = 2048
LSD_HOP = 512
_LSD_EPS = 1e-12


def magnitude_spectrogram(audio: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """``|STFT|`` ``(frames, bins)`` with a periodic Hann window, centred frames and reflect padding (as ``torch.stft``)."""
    padded = np.pad(audio, n_fft // 2, mode="reflect" if audio.size > n_fft // 2 else "constant")
    padded = np.pad(padded, (0, max(0, n_fft - padded.size)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    return np.abs(np.fft.rfft(frames * scipy.signal.get_window("hann", n_fft), axis=-1))


def log_spectral_distance(reference: np.ndarray, estimate: np.ndarray, sample_rate: int, low_hz: float = 0.0) -> float:
    """Log-spectral distance as in the NVSR authors' ``ssr_eval`` (lower is better; 0 for identical signals).

    Log10 power spectrograms (2048-point STFT, hop 512, Hann): per frame the root mean square over
    frequency of ``log10(|R|^2 / (|E| + eps)^2 + eps)``, then the mean over frames. With ``low_hz``
    the mean is over the bins at or above it only (the high-band LSD of bandwidth extension).
    ``sample_rate`` places ``low_hz``; the STFT size is fixed in samples, as in ``ssr_eval``.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate: expected a positive number of Hz, got {sample_rate}")
    if not 0 <= low_hz < sample_rate / 2:
        raise ValueError(f"low_hz: expected 0 <= low_hz < {sample_rate / 2:g}, got {low_hz}")
    ref, est = _pair(reference, estimate)
    band = np.fft.rfftfreq(LSD_FFT, 1 / sample_rate) >= low_hz
    target = magnitude_spectrogram(ref, LSD_FFT, LSD_HOP)[:, band]
    output = magnitude_spectrogram(est, LSD_FFT, LSD_HOP)[:, band]
    distance = np.log10(target**2 / (output + _LSD_EPS) ** 2 + _LSD_EPS) ** 2
    return float(np.mean(np.sqrt(np.mean(distance, axis=1))))


def band_energy_change_db(reference: np.ndarray, estimate: np.ndarray, sample_rate: int, low_hz: float, high_hz: float) -> float:
    """Mean absolute per-frame change (dB) of the energy in ``[low_hz, high_hz)`` from ``reference`` to ``estimate``.

    Frames are those of ``log_spectral_distance``; frames where the reference band is more than 60 dB
    below its loudest frame are left out (silence would weigh rounding noise).
    """
    if not 0 <= low_hz < high_hz <= sample_rate / 2:
        raise ValueError(f"band [{low_hz}, {high_hz}) Hz: expected 0 <= low < high <= {sample_rate / 2:g}")
    ref, est = _pair(reference, estimate)
    bins = np.fft.rfftfreq(LSD_FFT, 1 / sample_rate)
    band = (bins >= low_hz) & (bins < high_hz)
    ref_energy = (magnitude_spectrogram(ref, LSD_FFT, LSD_HOP)[:, band] ** 2).sum(axis=1)
    est_energy = (magnitude_spectrogram(est, LSD_FFT, LSD_HOP)[:, band] ** 2).sum(axis=1)
    loud = ref_energy > ref_energy.max() * 1e-6
    if not loud.any():
        raise ValueError("reference: silent in the band, its change is undefined")
    return float(np.mean(np.abs(10 * np.log10((est_energy[loud] + _LSD_EPS) / (ref_energy[loud] + _LSD_EPS)))))


def alignment_lag_samples(reference: np.ndarray, estimate: np.ndarray, max_lag_samples: int) -> int | None:
    """Lag of ``estimate`` behind ``reference`` (positive = delayed), searched within +-``max_lag_samples``.

    The lag is the peak of the cross-correlation; ``None`` when either signal is all zeros.
    Lengths may differ.
    """
    if max_lag_samples < 0:
        raise ValueError(f"max_lag_samples: must be >= 0, got {max_lag_samples}")
    ref, est = _mono(reference, "reference"), _mono(estimate, "estimate")
    if not ref.any() or not est.any():
        return None
    correlation = scipy.signal.correlate(est, ref, mode="full", method="fft")
    lags = scipy.signal.correlation_lags(est.size, ref.size, mode="full")
    window = np.abs(lags) <= max_lag_samples
    return int(lags[window][np.argmax(correlation[window])])


@lru_cache(maxsize=1)
def _dnsmos_session() -> onnxruntime.InferenceSession:
    package, model = _DNSMOS_MODEL
    path = resources.files(package).joinpath(model)
    if not path.is_file():
        raise FileNotFoundError(f"DNSMOS model not found at {path}; install the 'speechmos' package")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    logger.debug("loading DNSMOS model %s", path)
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def dnsmos(audio: np.ndarray, sample_rate: int) -> DnsmosScores:
    """DNSMOS P.835 SIG/BAK/OVRL of ``audio`` at 16 kHz, averaged over 9.01 s windows hopped by 1 s.

    Clips shorter than a window are repeated (doubled) until they fill one, as the reference script does.
    """
    _require_metric_rate(sample_rate, "DNSMOS")
    signal = _mono(audio, "audio").astype(np.float32)
    window_frames = int(DNSMOS_WINDOW_S * sample_rate)
    while signal.size < window_frames:
        signal = np.concatenate([signal, signal])
    hops = int(np.floor(signal.size / sample_rate) - DNSMOS_WINDOW_S) + 1
    segments = np.stack([signal[i * sample_rate : i * sample_rate + window_frames] for i in range(hops)])
    raw = _dnsmos_session().run(None, {"input_1": segments})[0].astype(np.float64)
    return DnsmosScores(
        sig=float(np.mean(_DNSMOS_SIG_POLY(raw[:, 0]))),
        bak=float(np.mean(_DNSMOS_BAK_POLY(raw[:, 1]))),
        ovrl=float(np.mean(_DNSMOS_OVRL_POLY(raw[:, 2]))),
    )


SPEECH_FRAME_S = 0.02
"""Frame of the speech-level comparison."""

SPEECH_ACTIVE_DB = -30.0
"""Reference frames within this many dB of the loudest one count as speech."""


def speech_level_difference_db(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    """Level of ``estimate`` minus level of ``reference`` over the frames where the reference speaks, dB:
    below 0 when speech was removed along with the noise (over-suppression)."""
    ref, est = _pair(reference, estimate)
    frame = int(SPEECH_FRAME_S * sample_rate)
    frames = ref.size // frame
    if frames == 0:
        raise ValueError(f"reference: shorter than one {SPEECH_FRAME_S} s frame")
    ref_energy = np.square(ref[: frames * frame].reshape(frames, frame), dtype=np.float64).sum(axis=1)
    est_energy = np.square(est[: frames * frame].reshape(frames, frame), dtype=np.float64).sum(axis=1)
    if not np.any(ref_energy > 0):
        raise ValueError("reference: silent")
    active = ref_energy > ref_energy.max() * 10 ** (SPEECH_ACTIVE_DB / 10)
    return float(10 * np.log10(max(est_energy[active].sum(), 1e-20) / ref_energy[active].sum()))


@lru_cache(maxsize=1)
def _decoder():
    from pocketsphinx import Decoder

    return Decoder(samprate=METRIC_SAMPLE_RATE, loglevel="FATAL")


def transcribe(audio: np.ndarray, sample_rate: int) -> list[str]:
    """Words pocketsphinx hears in ``audio`` at 16 kHz (its bundled US English model, offline); the same
    audio always gives the same words (the features, whose cepstral mean would carry over from the
    previous utterance, start afresh at each call)."""
    _require_metric_rate(sample_rate, "transcribe")
    pcm = np.round(np.clip(_mono(audio, "audio"), -1.0, 1.0) * 32767).astype(np.int16)
    decoder = _decoder()
    decoder.reinit_feat()
    decoder.start_utt()
    decoder.process_raw(pcm.tobytes(), full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return hypothesis.hypstr.split() if hypothesis is not None else []


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Substitutions + deletions + insertions turning ``reference`` into ``hypothesis`` (word Levenshtein)."""
    previous = list(range(len(hypothesis) + 1))
    for i, word in enumerate(reference, start=1):
        current = [i]
        for j, heard in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (word != heard)))
        previous = current
    return previous[-1]
