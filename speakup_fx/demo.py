"""``speakup demo``: make a noisy, roomy, thin example recording and enhance it with a preset.

The repository ships no third-party recordings, so the example is spoken by
espeak-ng and degraded here: a small room's reverberation, a phone-like band
limit, background noise with mains hum. Pass your own file to enhance it instead.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile

logger = logging.getLogger(__name__)

DEMO_TEXT = (
    "Welcome back to the show. Today we talk about recording speech at home: "
    "why your laptop microphone sounds distant, and how a few careful steps "
    "make a voice sound close, clear and even."
)


def speak(text: str, path: Path) -> None:
    """Write espeak-ng's reading of ``text`` to ``path`` (WAV)."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng), or pass your own file")
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(path), text], check=True, capture_output=True)


def degrade(clean: np.ndarray, sample_rate: int, seed: int = 0) -> np.ndarray:
    """Room reverb (RT60 ~0.5 s), phone band limit, noise at ~8 dB SNR and 50 Hz hum; ``clean`` is 1-D."""
    rng = np.random.default_rng(seed)
    rt60_s = 0.5
    t = np.arange(int(rt60_s * sample_rate)) / sample_rate
    tail = rng.standard_normal(t.size) * np.exp(-6.91 * t / rt60_s) * 0.25
    room_ir = np.concatenate([[1.0], np.zeros(int(0.004 * sample_rate)), tail])
    wet = scipy.signal.fftconvolve(clean, room_ir)[: clean.size]
    band = scipy.signal.butter(4, [300, 3400], btype="bandpass", fs=sample_rate, output="sos")
    thin = scipy.signal.sosfilt(band, wet) + 0.3 * wet
    pink = scipy.signal.lfilter([0.049922, -0.095993, 0.050612, -0.004408], [1, -2.494956, 2.017265, -0.522189],
                                rng.standard_normal(thin.size))
    pink *= np.sqrt(np.mean(thin**2) / np.mean(pink**2) / 10 ** (8 / 10))
    hum = 0.01 * np.sin(2 * np.pi * 50 * np.arange(thin.size) / sample_rate)
    noisy = thin + pink + hum
    return (0.5 * noisy / np.max(np.abs(noisy))).astype(np.float32)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", nargs="?", type=Path, help="your own recording (default: a generated example)")
    parser.add_argument("--preset", default="podcast", help="preset name or file (default: podcast)")
    parser.add_argument("--out-dir", type=Path, default=Path("demo"), help="where the files go (default: demo/)")


def run(args: argparse.Namespace) -> int:
    from speakup_fx.bounce import bounce

    args.out_dir.mkdir(parents=True, exist_ok=True)
    source = args.input
    if source is None:
        source = args.out_dir / "example_noisy.wav"
        with tempfile.TemporaryDirectory() as tmp:
            spoken = Path(tmp) / "speech.wav"
            speak(DEMO_TEXT, spoken)
            clean, sample_rate = soundfile.read(spoken, dtype="float32")
        soundfile.write(source, degrade(clean, sample_rate), sample_rate, subtype="PCM_16")
        logger.info("wrote the noisy example %s", source)
    target = args.out_dir / f"{source.stem}_{Path(args.preset).stem}.wav"
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as `speakup bounce` does by default: the chain's small models lose time to thread hand-offs
    try:
        bounce([source], target, preset=args.preset, overwrite=True, report=target.with_suffix(".png"))
    finally:
        torch.set_num_threads(threads)
    logger.info("enhanced: %s (report: %s)", target, target.with_suffix(".png"))
    return 0
