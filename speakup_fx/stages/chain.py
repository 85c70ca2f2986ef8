"""The one place that turns chain options into the list of stages (effect, bounce, model server, VST3 programs).

Classic engine: high-pass, de-hum, spectral denoise/dereverb, bandwidth extension (when asked),
expander, EQ, leveler, compressor, gain, true-peak limiter. Neural engine: the hosted enhancer at
its own rate (16 kHz: the engine resamples the host's audio straight to it), 16 -> 48 kHz (by the
bandwidth-extension model when asked, else the resampler), then the same post chain. A model with
``denoised`` and ``dereverberated`` outputs is mixed by ``denoise_amount`` and ``dereverb_amount``
apart; a model that removes noise and room together is blended by ``denoise_amount`` and followed
by late-reverb suppression for ``dereverb_amount``. In the classic engine the bandwidth extension
keeps the input's own high band and adds the model's only where the input has none
(``stages/bandwidth.py``); after the enhancer there is never one to keep.
Stage modules are imported only when used.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from speakup_fx.params import ChainOptions
from speakup_fx.runtime.host import ModelHost
from speakup_fx.stages.base import ENGINE_SAMPLE_RATE, Stage

ENHANCER_KIND = "enhancer"
BANDWIDTH_EXTENSION_KIND = "bandwidth_extension"


def _make(module: str, name: str, *args: object, **kwargs: object) -> Stage:
    return getattr(importlib.import_module(f"speakup_fx.stages.{module}"), name)(*args, **kwargs)


def _neural_stages(
    channels: int, params: Mapping[str, float], host: ModelHost, bandwidth_extension: bool, enhancer_weights: str | None
) -> list[Stage]:
    from speakup_fx.stages.blend import BlendStage
    from speakup_fx.stages.neural import ModelStage, NoiseAndRoomStage

    if "dereverberated" in host.describe(ENHANCER_KIND, enhancer_weights).output_names:  # the model controls noise and room apart
        enhancer: Stage = NoiseAndRoomStage(channels, host, ENHANCER_KIND, params, enhancer_weights)
        room: list[Stage] = []
    else:  # it removes both together: the room is controlled by late-reverb suppression after it
        enhancer = BlendStage(ModelStage(channels, host, ENHANCER_KIND, "enhanced", enhancer_weights), "denoise_amount", params)
        room = [_make("denoise", "SpectralDenoiseStage", channels, params, suppress_noise=False)]
    if bandwidth_extension:
        up: Stage = ModelStage(channels, host, BANDWIDTH_EXTENSION_KIND, "extended")
    else:
        up = _make("resample", "ResampleStage", channels, enhancer.output_sample_rate, ENGINE_SAMPLE_RATE)
    return [enhancer, up, *room]


def build_chain(
    channels: int, options: ChainOptions, params: Mapping[str, float], host: ModelHost | None = None, enhancer_weights: str | None = None
) -> list[Stage]:
    """The stages ``options`` asks for, in processing order; the neural engine takes its model from ``host``
    (``enhancer_weights``: a weights file of kind ``enhancer`` instead of the shipped one).

    Building loads no model (a neural stage opens its stream on ``prepare()`` or its first block).
    """
    neural = options.engine == "neural"
    stages: list[Stage] = []
    if (neural or options.bandwidth_extension) and host is None:
        raise ValueError("the neural engine and the bandwidth extension need a ModelHost")
    if enhancer_weights is not None and not neural:
        raise ValueError(f"enhancer_weights: the {options.engine!r} engine runs no model; use engine='neural'")
    if neural:
        stages += _neural_stages(channels, params, host, options.bandwidth_extension, enhancer_weights)
    plan = (
        (options.highpass, "highpass", "HighpassStage", (params,)),
        (options.dehum, "dehum", "DehumStage", (params,)),
        (not neural, "denoise", "SpectralDenoiseStage", (params,)),
        (not neural and options.bandwidth_extension, "bandwidth", "BandwidthExtensionStage", (host,)),
        (options.expander, "expander", "ExpanderStage", (params,)),  # before the leveler, whose gate then holds through pauses
        (options.eq, "eq", "EqStage", (params,)),
        (options.leveler, "leveler", "LevelerStage", (params,)),
        (options.compressor, "compressor", "CompressorStage", (params,)),
        (True, "gain", "GainStage", (params,)),
        (options.limiter, "limiter", "TruePeakLimiterStage", (params,)),
    )
    stages += [_make(module, name, channels, *args) for enabled, module, name, args in plan if enabled]
    return stages
