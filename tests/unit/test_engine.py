"""The engine: chain building, rate checks, re-blocking, latency, mix and parameters (with small test stages)."""

from __future__ import annotations

import sys
import types
from collections.abc import Mapping

import numpy as np
import pytest

import speakup_fx.engine as engine_module
from speakup_fx.engine import Engine, build_chain, chain_latency_frames
from speakup_fx.params import ChainOptions
from speakup_fx.stages.base import Stage
from stage_doubles import DelayStage
from synthetic import noise, sine


class ScaleStage(Stage):
    """Test stage: multiplies by ``scale`` and records the parameter updates it receives."""

    def __init__(self, channels: int, scale: float = 1.0) -> None:
        super().__init__(channels)
        self.scale = scale
        self.updates: list[dict] = []
        self.block_sizes: list[int] = []

    def process(self, block: np.ndarray) -> np.ndarray:
        self.block_sizes.append(block.shape[1])
        return block * np.float32(self.scale)

    def reset(self) -> None:
        pass

    def set_params(self, params: dict) -> None:
        self.updates.append(dict(params))


def use_chain(monkeypatch: pytest.MonkeyPatch, make_stages) -> None:
    def build_chain(channels, options, params, device=None):
        return make_stages(channels)

    monkeypatch.setattr(engine_module, "build_chain", build_chain)


def run_in_pieces(engine: Engine, audio: np.ndarray, sizes: list[int]) -> np.ndarray:
    outputs, start = [], 0
    for size in sizes:
        piece = audio[:, start : start + size]
        out = engine.process(piece)
        assert out.shape == piece.shape
        outputs.append(out)
        start += size
    return np.concatenate(outputs, axis=1)


def lag_of(reference: np.ndarray, delayed: np.ndarray) -> int:
    """Lag (frames) that best aligns ``delayed`` with ``reference`` (1-D), by cross-correlation."""
    correlation = np.correlate(delayed, reference, mode="full")
    return int(np.argmax(correlation)) - (reference.size - 1)


# --- chain building -----------------------------------------------------------------------------

STAGE_MODULES = {
    "highpass": "HighpassStage",
    "dehum": "DehumStage",
    "denoise": "SpectralDenoiseStage",
    "eq": "EqStage",
    "leveler": "LevelerStage",
    "compressor": "CompressorStage",
    "gain": "GainStage",
    "limiter": "TruePeakLimiterStage",
    "neural": "NeuralEnhanceStage",
}


@pytest.fixture
def fake_stage_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand-ins for every stage module, so chain building is tested without the real DSP or model."""
    for module, class_name in STAGE_MODULES.items():
        sample_rate = 16000 if module == "neural" else 48000
        latency = 16 if module == "neural" else 10

        def __init__(self, channels: int, params: Mapping[str, float], sample_rate=sample_rate, latency=latency, **kw):
            DelayStage.__init__(self, channels, latency, sample_rate)
            self.kwargs = kw

        fake = types.ModuleType(f"speakup_fx.stages.{module}")
        setattr(fake, class_name, type(class_name, (DelayStage,), {"__init__": __init__}))
        monkeypatch.setitem(sys.modules, f"speakup_fx.stages.{module}", fake)


POST_STAGES = [
    "HighpassStage", "DehumStage", "EqStage", "LevelerStage", "CompressorStage", "GainStage", "TruePeakLimiterStage"
]


def stage_names(stages: list[Stage]) -> list[str]:
    return [type(s).__name__ for s in stages]


def test_classic_chain_runs_the_stages_in_order(fake_stage_modules: None) -> None:
    stages = build_chain(1, ChainOptions(), {})
    assert stage_names(stages) == POST_STAGES[:2] + ["SpectralDenoiseStage"] + POST_STAGES[2:]
    assert chain_latency_frames(stages) == 80


def test_a_disabled_option_drops_its_stage_but_output_gain_always_runs(fake_stage_modules: None) -> None:
    options = ChainOptions(highpass=False, dehum=False, eq=False, leveler=False, compressor=False, limiter=False)
    assert stage_names(build_chain(2, options, {})) == ["SpectralDenoiseStage", "GainStage"]
    assert stage_names(build_chain(2, ChainOptions(eq=False), {})) == (
        POST_STAGES[:2] + ["SpectralDenoiseStage"] + POST_STAGES[3:]
    )


def test_neural_chain_wraps_the_enhancer_in_resample_stages_and_drops_spectral_denoise(
    fake_stage_modules: None,
) -> None:
    stages = build_chain(1, ChainOptions(engine="neural"), {})
    assert stage_names(stages) == ["ResampleStage", "NeuralEnhanceStage", "ResampleStage"] + POST_STAGES
    assert [s.input_sample_rate for s in stages[:4]] == [48000, 16000, 16000, 48000]
    down, enhancer, up = stages[:3]
    expected = 3 * down.latency_samples + 3 * enhancer.latency_samples + up.latency_samples + 7 * 10
    assert chain_latency_frames(stages) == expected


def test_the_device_goes_to_the_neural_stage_only_when_given(fake_stage_modules: None) -> None:
    assert build_chain(1, ChainOptions(engine="neural"), {}, device="cuda")[1].kwargs == {"device": "cuda"}
    assert build_chain(1, ChainOptions(engine="neural"), {})[1].kwargs == {}


def test_stage_modules_are_imported_only_when_their_engine_runs(
    fake_stage_modules: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "speakup_fx.stages.neural", None)  # importing it now raises ImportError
    assert len(build_chain(1, ChainOptions(engine="classic"), {})) == 8


def test_stages_whose_rates_do_not_connect_are_rejected() -> None:
    with pytest.raises(ValueError, match="16000 Hz but is fed 48000 Hz"):
        chain_latency_frames([DelayStage(1, 0), DelayStage(1, 0, sample_rate=16000)])


def test_a_chain_must_end_at_48_khz() -> None:
    from speakup_fx.stages.resample import ResampleStage

    with pytest.raises(ValueError, match="ends at 16000 Hz"):
        chain_latency_frames([ResampleStage(1, 48000, 16000)])


def test_engine_refuses_a_chain_whose_rates_do_not_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    use_chain(monkeypatch, lambda channels: [DelayStage(channels, 0, sample_rate=16000)])
    with pytest.raises(ValueError, match="never resamples silently"):
        Engine(1, 48000, ChainOptions(), {})


# --- streaming ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sample_rate", [48000, 44100, 16000, 8000, 11025, 96000, 192000, 37919])
def test_engine_returns_as_many_frames_as_it_is_given_and_the_split_does_not_matter(
    monkeypatch: pytest.MonkeyPatch, sample_rate: int
) -> None:
    use_chain(monkeypatch, lambda channels: [DelayStage(channels, 7), ScaleStage(channels, 0.5)])
    audio = noise(0.3, sample_rate, channels=2, level_db=-10)
    whole = Engine(2, sample_rate, ChainOptions(), {}).process(audio)
    assert whole.shape == audio.shape and whole.dtype == np.float32
    sizes = np.random.default_rng(sample_rate).integers(0, 2000, size=200).tolist()
    split = run_in_pieces(Engine(2, sample_rate, ChainOptions(), {}), audio, sizes)
    np.testing.assert_array_equal(split[:, : audio.shape[1]], whole)


def test_at_48_khz_latency_samples_is_the_exact_delay_of_the_wet_path(monkeypatch: pytest.MonkeyPatch) -> None:
    use_chain(monkeypatch, lambda channels: [DelayStage(channels, 123)])
    engine = Engine(1, 48000, ChainOptions(), {})
    assert engine.latency_samples == 123 + 479  # the chain plus waiting for a whole 480-frame hop
    audio = noise(0.2, 48000, level_db=-10)
    out = engine.process(audio)
    latency = engine.latency_samples
    np.testing.assert_array_equal(out[:, latency:], audio[:, :-latency])
    assert not out[:, :latency].any()


@pytest.mark.parametrize("sample_rate", [44100, 22050, 11025, 8000, 16000, 96000, 37919])
@pytest.mark.parametrize("chain_delay_frames", [0, 7, 100])
def test_at_other_rates_latency_samples_is_a_whole_number_and_the_true_delay(
    monkeypatch: pytest.MonkeyPatch, sample_rate: int, chain_delay_frames: int
) -> None:
    use_chain(monkeypatch, lambda channels: [DelayStage(channels, chain_delay_frames)])
    engine = Engine(1, sample_rate, ChainOptions(), {})
    latency = engine.latency_samples
    assert isinstance(latency, int)
    assert latency < sample_rate * 0.03  # hop + both resamplers' look-ahead + the chain, nothing wasted
    frequency_hz = 0.3 * sample_rate / 2
    audio = sine(frequency_hz, 0.4, sample_rate)
    out = engine.process(audio)[0]
    t = (np.arange(out.size) - latency) / sample_rate
    ideal = 0.5 * np.sin(2 * np.pi * frequency_hz * t)
    middle = slice(sample_rate // 10, out.size - sample_rate // 10)
    assert np.abs(out[middle] - ideal[middle]).max() < 1e-4


def test_an_impulse_comes_out_latency_samples_later(monkeypatch: pytest.MonkeyPatch) -> None:
    use_chain(monkeypatch, lambda channels: [DelayStage(channels, 31)])
    audio = np.zeros((2, 22050), np.float32)
    audio[:, 5000] = 1.0
    engine = Engine(2, 44100, ChainOptions(), {})
    out = engine.process(audio)
    assert list(np.argmax(np.abs(out), axis=1)) == [5000 + engine.latency_samples] * 2
    assert lag_of(noise(0.5, 44100, level_db=-10)[0], Engine(1, 44100, ChainOptions(), {}).process(
        noise(0.5, 44100, level_db=-10))[0]) == engine.latency_samples


def test_stages_receive_whole_hops_only(monkeypatch: pytest.MonkeyPatch) -> None:
    scale = {}
    use_chain(monkeypatch, lambda channels: [scale.setdefault("stage", ScaleStage(channels))])
    engine = Engine(1, 44100, ChainOptions(), {})
    run_in_pieces(engine, noise(0.3, 44100), [1, 5, 333, 2000, 17, 4000, 7000])
    sizes = scale["stage"].block_sizes
    assert sizes and all(size % 480 == 0 and size > 0 for size in sizes)


def test_reset_starts_a_new_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    use_chain(monkeypatch, lambda channels: [DelayStage(channels, 50)])
    engine = Engine(1, 44100, ChainOptions(), {})
    audio = noise(0.2, 44100)
    first = engine.process(audio)
    engine.process(np.ones_like(audio))
    engine.reset()
    np.testing.assert_array_equal(engine.process(audio), first)


def test_process_rejects_a_block_with_the_wrong_channel_count(monkeypatch: pytest.MonkeyPatch) -> None:
    use_chain(monkeypatch, lambda channels: [])
    with pytest.raises(ValueError, match=r"\(2, frames\)"):
        Engine(2, 48000, ChainOptions(), {}).process(np.zeros((1, 100), np.float32))


@pytest.mark.parametrize("channels", [0, 3])
def test_engine_takes_mono_or_stereo_only(monkeypatch: pytest.MonkeyPatch, channels: int) -> None:
    use_chain(monkeypatch, lambda channels: [])
    with pytest.raises(ValueError, match="channels"):
        Engine(channels, 48000, ChainOptions(), {})


# --- parameters and mix -------------------------------------------------------------------------


def test_parameter_changes_reach_every_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    stages = []
    use_chain(monkeypatch, lambda channels: stages.extend([ScaleStage(channels), ScaleStage(channels)]) or stages)
    engine = Engine(1, 48000, ChainOptions(), {"denoise_amount": 0.2})
    assert engine.params["denoise_amount"] == 0.2
    engine.set_params({"presence_db": 4.0})
    assert all(stage.updates == [{"presence_db": 4.0}] for stage in stages)
    assert engine.params["presence_db"] == 4.0


@pytest.mark.parametrize(
    ("params", "message"), [({"denoise_amount": 2.0}, "denoise_amount"), ({"bogus_db": 1.0}, "bogus_db")]
)
def test_bad_parameters_are_rejected_naming_them(monkeypatch: pytest.MonkeyPatch, params: dict, message: str) -> None:
    use_chain(monkeypatch, lambda channels: [])
    with pytest.raises(ValueError, match=message):
        Engine(1, 48000, ChainOptions(), params)
    with pytest.raises(ValueError, match=message):
        Engine(1, 48000, ChainOptions(), {}).set_params(params)


@pytest.mark.parametrize("sample_rate", [48000, 44100])
def test_mix_zero_is_the_input_delayed_by_latency_samples(monkeypatch: pytest.MonkeyPatch, sample_rate: int) -> None:
    use_chain(monkeypatch, lambda channels: [DelayStage(channels, 20), ScaleStage(channels, -1.0)])
    engine = Engine(2, sample_rate, ChainOptions(), {"mix": 0.0})
    audio = noise(0.2, sample_rate, channels=2)
    out = engine.process(audio)
    latency = engine.latency_samples
    np.testing.assert_array_equal(out[:, latency:], audio[:, :-latency])


def test_half_mix_of_an_aligned_inverted_wet_path_cancels(monkeypatch: pytest.MonkeyPatch) -> None:
    use_chain(monkeypatch, lambda channels: [DelayStage(channels, 20), ScaleStage(channels, -1.0)])
    engine = Engine(1, 44100, ChainOptions(), {"mix": 0.5})
    audio = sine(1000.0, 0.3, 44100)
    out = engine.process(audio)
    assert np.abs(out).max() < 1e-4  # wet and dry are aligned to a fraction of a frame


def test_a_mix_change_glides_without_a_jump(monkeypatch: pytest.MonkeyPatch) -> None:
    use_chain(monkeypatch, lambda channels: [ScaleStage(channels, -1.0)])
    engine = Engine(1, 48000, ChainOptions(), {})
    dc = np.full((1, 4800), 0.5, np.float32)
    engine.process(dc)  # wet = -0.5 once the delay has passed
    engine.set_params({"mix": 0.0})
    out = engine.process(dc)[0]
    assert out[0] == pytest.approx(-0.5, abs=0.01) and out[-1] == pytest.approx(0.5)
    assert np.abs(np.diff(out)).max() < 1.0 / (48000 * engine_module.MIX_RAMP_MS / 1000) * 1.01
