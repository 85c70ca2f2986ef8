"""Board: list-like, nestable chains of pedalboard plugins and SpeakUp effects, called like one plugin."""

from __future__ import annotations

import numpy as np
import pedalboard
import pytest

from speakup_fx import Board, SpeakUp
from synthetic import noisy_speech

SAMPLE_RATE = 44100


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    return noisy_speech(1.0, SAMPLE_RATE, channels=2)


def three_plugins() -> list:
    return [pedalboard.HighpassFilter(80), SpeakUp(preset="podcast"), pedalboard.Compressor(threshold_db=-20, ratio=2)]


def test_a_board_equals_running_its_plugins_in_sequence(audio: np.ndarray) -> None:
    board_out = Board(three_plugins())(audio, SAMPLE_RATE)
    expected = audio
    for plugin in three_plugins():
        expected = plugin(expected, SAMPLE_RATE)
    assert board_out.shape == audio.shape and board_out.dtype == np.float32
    np.testing.assert_allclose(board_out, expected, atol=1e-6)


def test_a_nested_board_equals_the_flat_board(audio: np.ndarray) -> None:
    first, second, third = three_plugins()
    nested = Board([first, Board([second, Board([third])])])(audio, SAMPLE_RATE)
    flat = Board(three_plugins())(audio, SAMPLE_RATE)
    np.testing.assert_allclose(nested, flat, atol=1e-6)


def test_streaming_through_a_board_equals_one_whole_call(audio: np.ndarray) -> None:
    board = Board([pedalboard.Gain(-3), SpeakUp(preset="podcast")])
    whole = board(audio, SAMPLE_RATE, reset=False)
    board.reset()
    bounds = [0, 1000, 1001, 5000, 20000, audio.shape[1]]
    pieces = [board(audio[:, a:b], SAMPLE_RATE, buffer_size=512, reset=False) for a, b in zip(bounds, bounds[1:])]
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), whole, atol=1e-5)


def test_a_board_is_aligned_with_its_input_when_reset(audio: np.ndarray) -> None:
    board = Board([SpeakUp(preset="podcast", mix=0.0), pedalboard.Gain(0)])  # mix 0: the dry path only
    np.testing.assert_allclose(board(audio, SAMPLE_RATE), audio, atol=1e-6)


def test_latency_samples_is_the_sum_and_reset_resets_every_item(audio: np.ndarray) -> None:
    first, second = SpeakUp(preset="podcast"), SpeakUp(preset="podcast", eq=False)
    board = Board([first, pedalboard.Gain(1), Board([second])])
    board(audio[:, :4410], SAMPLE_RATE, reset=False)
    assert board.latency_samples == first.latency_samples + second.latency_samples > 0
    board.reset()
    fresh = Board([SpeakUp(preset="podcast"), pedalboard.Gain(1), Board([SpeakUp(preset="podcast", eq=False)])])
    np.testing.assert_allclose(
        board(audio[:, :4410], SAMPLE_RATE, reset=False), fresh(audio[:, :4410], SAMPLE_RATE, reset=False), atol=1e-6
    )


def test_a_board_keeps_mono_and_interleaved_layouts() -> None:
    mono = noisy_speech(0.3, SAMPLE_RATE)[0]
    board = Board([pedalboard.Gain(-6), SpeakUp(preset="podcast")])
    assert board(mono, SAMPLE_RATE).shape == mono.shape
    interleaved = np.ascontiguousarray(noisy_speech(0.3, SAMPLE_RATE, channels=2).T.astype(np.float64))
    out = board(interleaved, SAMPLE_RATE)
    assert out.shape == interleaved.shape and out.dtype == np.float32


def test_a_board_is_list_like() -> None:
    gain, speakup, highpass = pedalboard.Gain(1), SpeakUp(), pedalboard.HighpassFilter(100)
    board = Board([gain])
    board.append(speakup)
    board.insert(0, highpass)
    assert list(board) == [highpass, gain, speakup] and len(board) == 3
    assert board[0] is highpass and board[-1] is speakup and board.index(gain) == 1 and speakup in board
    assert isinstance(board[1:], Board) and list(board[1:]) == [gain, speakup]
    board[1] = pedalboard.Gain(2)
    board.remove(highpass)
    del board[-1]
    assert len(board) == 1 and board[0].gain_db == 2
    board[:] = [speakup, Board([gain])]
    assert len(board) == 2


@pytest.mark.parametrize("not_a_plugin", [42, "reverb", np.zeros(3), lambda audio, sample_rate: audio])
def test_a_board_rejects_what_is_not_a_plugin_naming_it(not_a_plugin: object) -> None:
    name = type(not_a_plugin).__name__
    with pytest.raises(TypeError, match=name):
        Board([not_a_plugin])
    board = Board()
    for put in (board.append, lambda item: board.insert(0, item)):
        with pytest.raises(TypeError, match=name):
            put(not_a_plugin)
    with pytest.raises(TypeError, match=name):
        board[:] = [pedalboard.Gain(), not_a_plugin]
    assert len(board) == 0


def test_the_same_instance_twice_in_a_board_is_refused(audio: np.ndarray) -> None:
    effect = SpeakUp(preset="podcast")
    with pytest.raises(ValueError, match="more than once"):
        Board([effect, Board([effect])])(audio, SAMPLE_RATE)


def test_an_empty_board_returns_the_input_as_float32(audio: np.ndarray) -> None:
    out = Board()(audio.astype(np.float64), SAMPLE_RATE)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, audio)
