"""The model server steps the model calls of all its slots as one batch, and no slot waits for another.

The slots are real bridge segments served in this process (``Server.step`` is one loop iteration).
Batched and alone differ only by the batch's floating-point rounding (other BLAS shapes), far below 1e-5.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import pytest
from synthetic import noisy_speech

from speakup_fx._native import BridgeSegment, bridge_segment_prefix
from speakup_fx.params import PARAMS, default_params
from speakup_fx.presets import list_presets, load_preset
from speakup_fx.server.serve import Server, add_arguments

SAMPLE_RATE = 48000
BLOCK_FRAMES = 512
PRESET = "restore"  # the neural engine, nothing else
WET_LATENCY_SAMPLES = 4096
TOLERANCE = 1e-5


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    """A private runtime dir, so segment names (and their prefix) are this test's alone."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    created: list[BridgeSegment] = []
    yield created
    for segment in created:
        segment.unlink()


def open_segment(created: list[BridgeSegment], index: int, channels: int) -> BridgeSegment:
    """A segment as a plugin instance makes it: every parameter of ``PRESET`` and its program index written."""
    name = f"{bridge_segment_prefix()}{os.getpid()}-{index}"
    segment = BridgeSegment.create(
        name, channels, SAMPLE_RATE, BLOCK_FRAMES, len(PARAMS) + 1, WET_LATENCY_SAMPLES, 4 * WET_LATENCY_SAMPLES
    )
    created.append(segment)
    values = {**default_params(), **load_preset(PRESET).params}
    for position, spec in enumerate(PARAMS):
        segment.set_param(position, values[spec.name])
    segment.set_param(len(PARAMS), list_presets().index(PRESET))
    return segment


def counting_batches(server: Server, monkeypatch) -> list[int]:
    """Streams in each ``process_batch`` call the server's host makes from now on."""
    sizes: list[int] = []
    original = server.host.process_batch

    def counted(items):
        sizes.append(len(items))
        return original(items)

    monkeypatch.setattr(server.host, "process_batch", counted)
    return sizes


def serve(segments: list[BridgeSegment], inputs: list[list[np.ndarray]], monkeypatch) -> tuple[list[np.ndarray], list[list[int]]]:
    """Serve ``segments`` together in one server, one loop iteration per block.

    Returns their outputs, less the padding the server writes first (the output trails the
    input by the segment's latency), and the batch sizes of each iteration.
    """
    server = Server(idle_exit_s=1.0, device="cpu")
    for segment in segments:
        server.open_slot(segment.name)
    for build in server.building.values():
        build.engine.result()  # what the loop would wait for while serving
    server.take_built()
    assert len(server.slots) == len(segments)
    paddings = [segment.wet_latency_samples - server.slots[segment.name].engine.latency_samples for segment in segments]
    sizes = counting_batches(server, monkeypatch)
    outputs: list[list[np.ndarray]] = [[segment.output.read(segment.output.available())] for segment in segments]
    batches = []
    for blocks in zip(*inputs, strict=True):
        for segment, block in zip(segments, blocks, strict=True):
            assert segment.input.write(block) == block.shape[1]
        sizes.clear()
        server.step()
        batches.append(list(sizes))
        for output, segment in zip(outputs, segments, strict=True):
            output.append(segment.output.read(segment.output.available()))
    served = [np.concatenate(output, axis=1) for output in outputs]
    for output, padding in zip(served, paddings, strict=True):
        assert padding > 0 and not output[:, :padding].any()
    return [output[:, padding:] for output, padding in zip(served, paddings, strict=True)], batches


def blocks_of(audio: np.ndarray) -> list[np.ndarray]:
    return [np.ascontiguousarray(audio[:, start : start + BLOCK_FRAMES]) for start in range(0, audio.shape[1], BLOCK_FRAMES)]


def test_two_slots_served_together_equal_each_served_alone_and_share_one_batch_per_iteration(runtime, monkeypatch):
    stereo = blocks_of(noisy_speech(0.5, SAMPLE_RATE, channels=2, seed=1))
    mono = blocks_of(noisy_speech(0.5, SAMPLE_RATE, channels=1, seed=2))
    together, batches = serve([open_segment(runtime, 0, 2), open_segment(runtime, 1, 1)], [stereo, mono], monkeypatch)
    stereo_alone, alone_batches = serve([open_segment(runtime, 2, 2)], [stereo], monkeypatch)
    mono_alone, _ = serve([open_segment(runtime, 3, 1)], [mono], monkeypatch)

    for served, alone, blocks in ((together[0], stereo_alone[0], stereo), (together[1], mono_alone[0], mono)):
        assert served.shape == alone.shape == (blocks[0].shape[0], sum(block.shape[1] for block in blocks))
        assert np.abs(alone).max() > 0.01  # the comparison means something
        np.testing.assert_allclose(served, alone, rtol=0, atol=TOLERANCE)
    # Both slots get the same hops at the same time: every iteration with a hop steps both in one call.
    assert sum(map(len, batches)) == sum(map(len, alone_batches)) > 0.8 * len(stereo)
    assert all(sizes in ([], [2]) for sizes in batches)


def test_a_slot_without_a_whole_hop_never_delays_another(runtime, monkeypatch):
    speech = blocks_of(noisy_speech(0.3, SAMPLE_RATE, channels=2, seed=3))
    trickle = [np.full((2, 1), 0.1, np.float32)] * len(speech)  # one frame per iteration: a hop every 30 iterations
    (served, slow), batches = serve([open_segment(runtime, 0, 2), open_segment(runtime, 1, 2)], [speech, trickle], monkeypatch)
    (alone,), _ = serve([open_segment(runtime, 2, 2)], [speech], monkeypatch)

    assert served.shape == alone.shape  # every iteration answered the full block at once
    np.testing.assert_allclose(served, alone, rtol=0, atol=TOLERANCE)
    assert slow.shape[1] == len(trickle)
    assert all(len(sizes) <= 1 for sizes in batches)
    assert [1] in batches  # iterations where only the full slot had a hop ready stepped it alone


def test_the_server_runs_torch_on_one_thread_unless_told_otherwise(capsys):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args([]).threads == 1
    assert parser.parse_args(["--threads", "4"]).threads == 4
    with pytest.raises(SystemExit):
        parser.parse_args(["--threads", "0"])
    assert "--threads: expected a whole number >= 1, got 0" in capsys.readouterr().err
