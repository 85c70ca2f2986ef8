"""The one place that turns chain options into the list of stages (effect, bounce, model server, VST3 programs).

Classic engine: high-pass, de-hum, spectral denoise/dereverb, expander, EQ, leveler, compressor,
gain, true-peak limiter. Neural engine: the hosted enhancer at its own rate (16 kHz: the engine
resamples the host's audio straight to it), 16 -> 48 kHz, then the same post chain. A model with
``denoised`` and ``dereverberated`` outputs is mixed by ``denoise_amount`` and ``dereverb_amount``
apart; a model that removes noise and room together is blended by ``denoise_amount`` and followed
by late-reverb suppression for ``dereverb_amount``.
Stage modules are imported only when used.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from speakup_fx.params import ChainOptions
from speakup_fx.runtime.host import ModelHost
from speakup_fx.stages.base import ENGINE_SAMPLE_RATE, Stage

ENHANCER_KIND = "enhancer"


def _make(module: str, name: str, *args: object, **kwargs: object) -> Stage:
    return getattr(importlib.import_module(f"speakup_fx.stages.{module}"), name)(*args, **kwargs)


def _neural_stages(channels: int, params: Mapping[str, float], host: ModelHost) -> list[Stage]:
    from speakup_fx.stages.blend import BlendStage
    from speakup_fx.stages.neural import ModelStage, NoiseAndRoomStage

    if "dereverberated" in host.describe(ENHANCER_KIND).output_names:  # the model controls noise and room apart
        enhancer: Stage = NoiseAndRoomStage(channels, host, ENHANCER_KIND, params)
        room: list[Stage] = []
    else:  # it removes both together: the room is controlled by late-reverb suppression after it
        enhancer = BlendStage(ModelStage(channels, host, ENHANCER_KIND, "enhanced"), "denoise_amount", params)
        room = [_make("denoise", "SpectralDenoiseStage", channels, params, suppress_noise=False)]
    up = _make("resample", "ResampleStage", channels, enhancer.output_sample_rate, ENGINE_SAMPLE_RATE)
    return [enhancer, up, *room]


def build_chain(
    channels: int, options: ChainOptions, params: Mapping[str, float], host: ModelHost | None = None
) -> list[Stage]:
    """The stages ``options`` asks for, in processing order; the neural engine takes its model from ``host``.

    Building loads no model (a neural stage opens its stream on ``prepare()`` or its first block).
    """
    neural = options.engine == "neural"
    stages: list[Stage] = []
    if neural:
        if host is None:
            raise ValueError("the neural engine needs a ModelHost")
        stages += _neural_stages(channels, params, host)
    plan = (
        (options.highpass, "highpass", "HighpassStage"),
        (options.dehum, "dehum", "DehumStage"),
        (not neural, "denoise", "SpectralDenoiseStage"),
        (options.expander, "expander", "ExpanderStage"),  # before the leveler, whose gate then holds through pauses
        (options.eq, "eq", "EqStage"),
        (options.leveler, "leveler", "LevelerStage"),
        (options.compressor, "compressor", "CompressorStage"),
        (True, "gain", "GainStage"),
        (options.limiter, "limiter", "TruePeakLimiterStage"),
    )
    stages += [_make(module, name, channels, params) for enabled, module, name in plan if enabled]
    return stages
