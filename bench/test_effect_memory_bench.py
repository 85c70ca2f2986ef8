"""Memory of the one-call API: ``SpeakUp(preset)(audio, 44100)`` on long stereo arrays.

Each case runs in a fresh interpreter (this file as a script) so its peak RSS is its own: the
effect is prepared first, then one call processes the whole array. The growth of the peak over
the prepared state is the output (as large as the input) plus the working memory, which must stay
bounded whatever the length. Run: ``pytest bench/test_effect_memory_bench.py -s``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import pytest

SAMPLE_RATE = 44_100


def measure(preset: str, minutes: float) -> dict[str, float]:
    import numpy as np

    from speakup_fx import SpeakUp

    audio = np.empty((2, int(minutes * 60 * SAMPLE_RATE)), np.float32)
    rng = np.random.default_rng(0)
    for start in range(0, audio.shape[1], SAMPLE_RATE):  # no float64 temporary to inflate the baseline
        piece = audio[:, start : start + SAMPLE_RATE]
        piece[:] = 0.1 * rng.standard_normal(piece.shape, dtype=np.float32)
    effect = SpeakUp(preset=preset, device="cpu")
    effect.prepare(SAMPLE_RATE, 2)
    before_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    began = time.perf_counter()
    out = effect(audio, SAMPLE_RATE)
    seconds = time.perf_counter() - began
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert out.shape == audio.shape
    return {"input_mib": audio.nbytes / 2**20, "growth_mib": peak_mib - before_mib, "rtf": seconds / (minutes * 60)}


@pytest.mark.parametrize(("preset", "minutes"), [("podcast", 10.0), ("restore", 3.0)])
def test_one_call_on_a_long_array_needs_little_beyond_its_output(preset, minutes):
    result = subprocess.run([sys.executable, __file__, preset, str(minutes)], capture_output=True, text=True, check=True)
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    working_mib = figures["growth_mib"] - figures["input_mib"]  # the output is as large as the input
    print(f"\nSpeakUp({preset!r}) on {minutes:g} min of 44.1 kHz stereo ({figures['input_mib']:.0f} MiB): peak grows "
          f"{figures['growth_mib']:.0f} MiB = output + {working_mib:.0f} MiB working memory; RTF {figures['rtf']:.3f}")
    assert working_mib < 0.25 * figures["input_mib"] + 64


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Print one case's memory figures as JSON.")
    parser.add_argument("preset")
    parser.add_argument("minutes", type=float)
    args = parser.parse_args()
    print(json.dumps(measure(args.preset, args.minutes)))
