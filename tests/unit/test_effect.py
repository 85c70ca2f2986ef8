"""SpeakUp's pedalboard call semantics, parameters, presets, MIDI and input checks (with a small test chain)."""

from __future__ import annotations

import mido
import numpy as np
import pytest

import speakup_fx
import speakup_fx.engine as engine_module
import speakup_fx.stages.chain as chain_module
from speakup_fx import SpeakUp
from speakup_fx.params import PARAM_SPECS, PARAMS, ChainOptions, default_params
from speakup_fx.stages.base import Stage
from stage_doubles import DelayStage
from synthetic import chirp, impulse, noise, sine


class OutputGainStage(Stage):
    """Test stage: applies ``output_gain_db`` (jumping to new values, so the test sees when they arrive).

    It claims every parameter, so the effect lets any be set on this test chain.
    """

    uses = tuple(PARAM_SPECS)

    def __init__(self, channels: int, params: dict) -> None:
        super().__init__(channels)
        self.gain_db = params["output_gain_db"]

    def process(self, block: np.ndarray) -> np.ndarray:
        return block * np.float32(10 ** (self.gain_db / 20))

    def reset(self) -> None:
        pass

    def set_params(self, params: dict) -> None:
        self.gain_db = params.get("output_gain_db", self.gain_db)


@pytest.fixture(autouse=True)
def test_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every SpeakUp here runs a transparent chain: a 37-frame delay and the output gain."""
    monkeypatch.setattr(
        chain_module,
        "build_chain",
        lambda channels, options, params, host=None, enhancer_weights=None: [DelayStage(channels, 37), OutputGainStage(channels, params)],
    )


def lag_of(reference: np.ndarray, delayed: np.ndarray) -> int:
    correlation = np.correlate(delayed, reference, mode="full")
    return int(np.argmax(correlation)) - (reference.size - 1)


# --- call semantics -----------------------------------------------------------------------------


@pytest.mark.parametrize("sample_rate", [48000, 44100, 16000])
def test_reset_true_output_is_aligned_with_the_input(sample_rate: int) -> None:
    effect = SpeakUp()
    audio = impulse(0.3, sample_rate, channels=2, at_s=0.1)
    out = effect(audio, sample_rate)
    assert out.shape == audio.shape
    assert list(np.argmax(np.abs(out), axis=1)) == [int(0.1 * sample_rate)] * 2
    sweep = chirp(100.0, 0.4 * sample_rate, 0.5, sample_rate)
    assert lag_of(sweep[0], effect(sweep, sample_rate)[0]) == 0


@pytest.mark.parametrize("sample_rate", [48000, 44100])
def test_reset_false_output_is_the_aligned_output_delayed_by_latency_samples(sample_rate: int) -> None:
    audio = noise(0.3, sample_rate, channels=2, level_db=-10)
    aligned = SpeakUp()(audio, sample_rate)
    effect = SpeakUp()
    streamed = np.concatenate(
        [effect(audio, sample_rate, reset=False), effect(np.zeros_like(audio), sample_rate, reset=False)], axis=1
    )
    latency = effect.latency_samples
    assert 0 < latency < 0.03 * sample_rate
    np.testing.assert_allclose(streamed[:, latency : latency + audio.shape[1]], aligned, atol=1e-6)
    assert not streamed[:, : latency // 2].any()  # then, off 48 kHz, the resampling kernels' pre-ringing


def test_latency_samples_is_at_48_khz_before_any_call_then_at_the_last_rate() -> None:
    effect = SpeakUp()
    assert effect.latency_samples == 37 + 479
    effect(noise(0.05, 44100), 44100)
    latency_44k = effect.latency_samples
    assert latency_44k != 37 + 479
    chain = [DelayStage(1, 37), OutputGainStage(1, default_params())]
    assert latency_44k == engine_module.Engine(1, 44100, chain, {}).latency_samples


@pytest.mark.parametrize(
    "shape_of",
    [
        lambda audio: audio[0],  # 1-D mono
        lambda audio: audio,  # (channels, frames)
        lambda audio: np.ascontiguousarray(audio.T),  # (frames, channels), told apart as pedalboard does
    ],
    ids=["mono-1d", "channels-frames", "frames-channels"],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_output_is_float32_in_the_input_layout_and_length(shape_of, dtype) -> None:
    audio = shape_of(noise(0.1, 48000, channels=2)).astype(dtype)
    out = SpeakUp()(audio, 48000)
    assert out.shape == audio.shape and out.dtype == np.float32
    if audio.ndim == 2 and audio.shape[0] > audio.shape[1]:
        np.testing.assert_allclose(out, audio, atol=1e-6)  # a transparent chain: the same audio in the same layout


def test_interleaved_stereo_keeps_each_channel_in_its_place() -> None:
    left_right = np.stack([sine(440.0, 0.1, 48000)[0], np.zeros(4800, np.float32)], axis=1)  # (frames, 2)
    out = SpeakUp()(left_right, 48000)
    assert np.abs(out[:, 0]).max() > 0.4 and np.abs(out[:, 1]).max() == 0.0


def test_the_callers_array_is_never_modified() -> None:
    audio = np.array(noise(0.1, 48000, channels=2))
    before = audio.copy()
    SpeakUp(output_gain_db=6.0)(audio, 48000)
    np.testing.assert_array_equal(audio, before)


def test_process_and_call_are_the_same() -> None:
    audio = noise(0.1, 44100)
    np.testing.assert_array_equal(SpeakUp().process(audio, 44100, buffer_size=300), SpeakUp()(audio, 44100, 300))


def test_a_stream_carries_state_and_reset_clears_it() -> None:
    audio = noise(0.1, 48000)
    effect = SpeakUp()
    first = effect(audio, 48000, reset=False)
    second = effect(audio, 48000, reset=False)
    assert not np.allclose(first, second)  # the second call starts with the first call's tail
    effect.reset()
    np.testing.assert_array_equal(effect(audio, 48000, reset=False), first)


def test_an_empty_block_in_a_stream_returns_an_empty_block() -> None:
    effect = SpeakUp()
    assert effect(np.zeros((2, 0), np.float32), 48000, reset=False).shape == (2, 0)


def test_a_square_block_is_read_with_the_previous_calls_channel_count() -> None:
    effect = SpeakUp()
    with pytest.raises(ValueError, match="cannot tell channels from frames"):
        effect(np.zeros((2, 2), np.float32), 48000)
    effect(noise(0.01, 48000, channels=2), 48000)
    assert effect(np.ones((2, 2), np.float32), 48000, reset=False).shape == (2, 2)


# --- input checks -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("audio", "error", "message"),
    [
        (np.array([0.0, np.nan, 0.0], np.float32), ValueError, "NaN or infinite"),
        (np.array([[0.0, np.inf, 0.0]]), ValueError, "NaN or infinite"),
        (np.zeros(0, np.float32), ValueError, "empty"),
        (np.zeros((1, 2, 100), np.float32), ValueError, "3 dimensions"),
        (np.zeros((3, 100), np.float32), ValueError, "3 channels"),
        (np.zeros((0, 100), np.float32), ValueError, "0 channels"),
        (np.zeros(100, np.int16), TypeError, "int16"),
        (np.zeros(100, np.float16), TypeError, "float16"),
        (np.zeros(100, np.complex64), TypeError, "complex64"),
    ],
    ids=["nan", "inf", "empty", "3-d", "3-channels", "0-channels", "int16", "float16", "complex"],
)
def test_bad_input_raises_a_clear_error(audio: np.ndarray, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        SpeakUp()(audio, 48000)


@pytest.mark.parametrize("sample_rate", [0, 7999, 192001, 44100.5, float("inf"), "44100"])
def test_absurd_sample_rates_are_rejected(sample_rate: object) -> None:
    with pytest.raises(ValueError, match="sample_rate"):
        SpeakUp()(np.zeros(100, np.float32), sample_rate)


@pytest.mark.parametrize("buffer_size", [0, -1, 1.5, True])
def test_bad_buffer_sizes_are_rejected(buffer_size: object) -> None:
    with pytest.raises(ValueError, match="buffer_size"):
        SpeakUp()(np.zeros(100, np.float32), 48000, buffer_size=buffer_size)


def test_changing_channels_or_rate_mid_stream_raises_until_reset() -> None:
    effect = SpeakUp()
    effect(noise(0.05, 48000), 48000, reset=False)
    with pytest.raises(ValueError, match="reset"):
        effect(noise(0.05, 48000, channels=2), 48000, reset=False)
    with pytest.raises(ValueError, match="44100 Hz"):
        effect(noise(0.05, 44100), 44100, reset=False)
    assert effect(noise(0.05, 48000, channels=2), 48000).shape == (2, 2400)  # reset=True starts a new stream
    effect.reset()
    assert effect(noise(0.05, 44100), 44100, reset=False).shape == (1, 2205)


# --- parameters, options, presets, MIDI ---------------------------------------------------------


def test_every_parameter_is_an_attribute_with_its_default() -> None:
    effect = SpeakUp()
    assert {spec.name: getattr(effect, spec.name) for spec in PARAMS} == {spec.name: spec.default for spec in PARAMS}


def test_out_of_range_parameters_raise_naming_the_parameter() -> None:
    effect = SpeakUp()
    with pytest.raises(ValueError, match="denoise_amount"):
        effect.denoise_amount = 1.5
    with pytest.raises(ValueError, match="mix"):
        effect.mix = float("nan")
    with pytest.raises(ValueError, match="target_lufs"):
        SpeakUp(target_lufs=0.0)
    assert effect.denoise_amount == 0.8


def test_a_misspelt_attribute_is_an_error_not_a_silent_new_attribute() -> None:
    with pytest.raises(AttributeError):
        SpeakUp().denoise_amout = 0.5  # type: ignore[attr-defined]


def test_a_parameter_change_reaches_the_engine_at_the_next_block() -> None:
    effect = SpeakUp()
    audio = np.full((1, 48000), 0.1, np.float32)
    effect(audio, 48000, reset=False)
    effect.output_gain_db = 20 * np.log10(2.0)
    out = effect(audio, 48000, reset=False)
    assert out[0, -1] == pytest.approx(0.2, rel=1e-5)
    assert out[0, 0] == pytest.approx(0.1, rel=1e-5)  # still the previous block's audio, delayed


def test_a_new_stream_starts_at_the_parameters_set_before_it_without_a_glide() -> None:
    effect = SpeakUp(output_gain_db=6.0)
    audio = noise(0.1, 48000)
    effect(audio, 48000)
    effect.mix = 0.0
    np.testing.assert_allclose(effect(audio, 48000), audio, rtol=0, atol=1e-7)  # all dry from the first frame
    effect.mix = 1.0
    effect.reset()
    out = effect(audio, 48000, reset=False)[:, effect.latency_samples :]
    np.testing.assert_allclose(out, audio[:, : out.shape[1]] * 10 ** (6 / 20), rtol=1e-5)


def test_overrides_may_be_parameters_or_chain_options() -> None:
    effect = SpeakUp(engine="classic", highpass=False, denoise_amount=0.3)
    assert effect.options == ChainOptions(highpass=False)
    assert effect.denoise_amount == 0.3
    with pytest.raises(ValueError, match="denoise_amoun"):
        SpeakUp(denoise_amoun=0.3)
    with pytest.raises(ValueError, match="engine"):
        SpeakUp(engine="magic")


def test_options_are_fixed_for_the_life_of_the_effect() -> None:
    effect = SpeakUp()
    with pytest.raises(AttributeError):
        effect.options = ChainOptions(eq=False)  # type: ignore[misc]


def test_a_preset_sets_parameters_options_and_midi_map_and_overrides_win() -> None:
    preset = speakup_fx.load_preset("podcast")
    effect = SpeakUp(preset="podcast", presence_db=5.0)
    assert effect.presence_db == 5.0
    assert effect.options == preset.options
    assert effect.midi_map == preset.midi_map
    for name, value in preset.params.items():
        if name != "presence_db":
            assert getattr(effect, name) == value
    assert SpeakUp(preset=preset).midi_map == preset.midi_map


def test_a_midi_control_change_sets_its_parameter_linearly_over_the_range() -> None:
    effect = SpeakUp(preset="podcast")
    cc, name = next(iter(effect.midi_map.items()))
    spec = next(spec for spec in PARAMS if spec.name == name)
    middle = spec.minimum + (spec.maximum - spec.minimum) * 64 / 127
    for value, expected in [(0, spec.minimum), (127, spec.maximum), (64, middle)]:
        effect.handle_midi(mido.Message("control_change", control=cc, value=value))
        assert getattr(effect, name) == pytest.approx(expected)


def test_other_midi_messages_and_unmapped_controllers_are_ignored() -> None:
    effect = SpeakUp(preset="podcast")
    before = {spec.name: getattr(effect, spec.name) for spec in PARAMS}
    unmapped = next(cc for cc in range(128) if cc not in effect.midi_map)
    effect.handle_midi(mido.Message("control_change", control=unmapped, value=0))
    effect.handle_midi(mido.Message("note_on", note=60, velocity=100))
    effect.handle_midi(mido.Message("pitchwheel", pitch=1000))
    assert {spec.name: getattr(effect, spec.name) for spec in PARAMS} == before


def test_repr_shows_what_differs_from_the_defaults() -> None:
    assert repr(SpeakUp(denoise_amount=0.3, eq=False)) == "SpeakUp(denoise_amount=0.3, eq=False)"
