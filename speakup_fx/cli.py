"""The ``speakup`` command.

Subcommands: ``bounce``, ``spark``, ``presets``, ``train``, ``import-speech``, ``eval``, ``demo``, ``serve``, ``install-plugin``. Each lives in the
module that owns it, which provides ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their subcommand runs.

Exit codes: 0 success; 1 some of several inputs failed (the rest were processed);
2 bad usage, or the one input could not be processed (nothing was written);
130 / 143 interrupted by SIGINT / SIGTERM (see README.md, "Exit codes").
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from speakup_fx import __version__

SUBCOMMANDS = {
    "bounce": ("speakup_fx.bounce.cli", "enhance audio/video files or folders"),
    "spark": ("speakup_fx.spark.cli", "bounce files or write training shards on Apache Spark (local or a cluster)"),
    "presets": ("speakup_fx.presets", "list or show presets"),
    "train": ("speakup_fx.train.cli", "train the enhancement model (launch with torchrun for DDP)"),
    "import-speech": ("speakup_fx.data.import_speech", "turn clean speech from elsewhere into a training folder (data.extra_speech)"),
    "eval": ("speakup_fx.eval.cli", "score noisy input, the classic engine and the model"),
    "demo": ("speakup_fx.demo", "enhance a generated (or your own) example recording with a preset"),
    "serve": ("speakup_fx.server.serve", "run the per-user model server behind SpeakUp.vst3 (the plugin starts it)"),
    "install-plugin": ("speakup_fx.server.install", "install SpeakUp VST3 bundles to ~/.vst3 and record this interpreter"),
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``speakup``; returns the exit code."""
    parser = argparse.ArgumentParser(prog="speakup", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    wanted = next((a for a in (argv if argv is not None else sys.argv[1:]) if a in SUBCOMMANDS), None)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text)
        if name == wanted:
            importlib.import_module(module_name).add_arguments(sub_parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    return importlib.import_module(SUBCOMMANDS[args.command][0]).run(args)


if __name__ == "__main__":
    sys.exit(main())
