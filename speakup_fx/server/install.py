"""``speakup install-plugin``: copy SpeakUp VST3 bundles to ~/.vst3 and record this interpreter.

The plugin starts ``<interpreter> -m speakup_fx.cli serve`` when it first processes audio;
the interpreter is the one running this command (``sys.executable``), written to the
bundle's ``Contents/Resources/speakup-python``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

from speakup_fx.atomic import atomic_write

logger = logging.getLogger(__name__)

INTERPRETER_FILE = Path("Contents") / "Resources" / "speakup-python"


def default_vst3_folder() -> Path:
    """Where ``speakup install-plugin`` puts the bundles by default, and ``bounce --via-plugin`` finds them."""
    return Path.home() / ".vst3"


def install_plugin(bundle: Path, destination: Path) -> Path:
    """Copy ``bundle`` (a ``.vst3`` directory) into ``destination``, replacing an older copy; return it."""
    if bundle.suffix != ".vst3" or not (bundle / "Contents").is_dir():
        raise ValueError(f"{bundle} is not a VST3 bundle (a *.vst3 directory with Contents/)")
    destination.mkdir(parents=True, exist_ok=True)
    target = destination / bundle.name
    staging = destination / f".{bundle.name}.installing"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(bundle, staging)
    (staging / INTERPRETER_FILE).parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(staging / INTERPRETER_FILE) as temporary:
        temporary.write_text(sys.executable + "\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundles", nargs="+", type=Path, help="SpeakUp.vst3 / SpeakUpMono.vst3 from the CMake build (bin/)")
    parser.add_argument("--destination", type=Path, default=default_vst3_folder(), help="VST3 folder (default: ~/.vst3)")


def run(args: argparse.Namespace) -> int:
    try:
        for bundle in args.bundles:
            logger.info("installed %s (server interpreter %s)", install_plugin(bundle, args.destination), sys.executable)
    except (ValueError, OSError) as error:
        logger.error("%s", error)
        return 2
    return 0
