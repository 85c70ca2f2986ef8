"""Pack a training run for a lent GPU machine: ``python -m speakup_fx.train.travel --config C --out .travel``.

A lent machine (`device` in the workplace's library) gets a copy of the repository's working tree plus up to 8
carried paths, 64 MiB in all, has its own Python with torch, and can download nothing. This packs what a config's
run needs beside the repository into one folder to carry (``.travel/`` is ignored by git):

- ``data/``: the training speech and noise as Ogg Opus (libsndfile, which decodes them there too; speech at about
  40 kbit/s, PESQ-WB about 4.6 against the FLAC) named ``NAME.opus`` after each source ``NAME``, so the validation
  split (a hash of the name) holds the same files, the impulse responses as they are, and a ``manifest.csv``;
- ``cache/``: the simulated room bank (the same rooms; pyroomacoustics is not there) and the clean-speech scores
  keyed by the packed files' bytes, so the DNSMOS filter keeps the same files without scoring there;
- ``wheels/``: the packages training imports that the machine's image lacks, for its Python (``DEVICE_PYTHON``).

The folder is written next to OUT and renamed into place only when it and the repository fit ``limit_mib``.
Training there runs from the source tree (README, "Training on a lent GPU"); runs with codec round trips
(``degrade.codec_prob`` > 0) need PyAV, whose wheel alone is half the limit, so they are refused here.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import soundfile as sf

from speakup_fx.data.corpus import ManifestRow, simulated_rooms_cached, simulated_rooms_path, train_rows, write_manifest
from speakup_fx.data.dataset import PACKED_SUFFIX, is_validation_file
from speakup_fx.data.quality import CACHE_NAME, clean_speech_scores, content_key, write_scores
from speakup_fx.train.config import Config, load_config

logger = logging.getLogger(__name__)

SPEECH_OPUS_LEVEL = 0.85
"""libsndfile's Opus compression level for speech: about 40 kbit/s at 16 kHz (the shared data's 2 h: 39 MB)."""
NOISE_OPUS_LEVEL = 0.9
"""The level for noise, about 30 kbit/s: noise is heard under speech, not scored."""
OPUS_RATES = (8_000, 12_000, 16_000, 24_000, 48_000)
DEVICE_PYTHON = "3.12"
"""The lent machines' ``python3`` (device/KINDS.md)."""
DEVICE_WHEELS = ("soundfile", "cffi", "pycparser")
"""What training imports that the lent machines' image lacks, with what it needs (the image has numpy, scipy, torch,
safetensors, tensorboard; device/KINDS.md lists it)."""
WHEEL_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
LIMIT_MIB = 64.0
"""What a lent machine takes per call: the working tree and the carried paths together."""


@dataclass(frozen=True)
class Packed:
    """What ``pack`` wrote: audio files, the pack's bytes, the repository's bytes that travel with it, and the
    wheels it carries."""

    files: int
    data_bytes: int
    repository_bytes: int
    wheels: tuple[str, ...]


def check_travels(config: Config) -> None:
    """Raise ``ValueError`` naming the setting when ``config``'s run needs more than ``pack`` carries."""
    unpacked = {
        "data.extra_speech": config.data.extra_speech, "data.shards": config.data.shards, "data.teacher_shards": config.data.teacher_shards,
    }
    for key, value in unpacked.items():
        if value:
            raise ValueError(f"{key}: only data.data_dir travels; pack a config without {key}")
    if config.degrade.codec_prob > 0:
        raise ValueError(f"degrade.codec_prob: codec round trips need PyAV, which a lent machine lacks (its wheel alone is half the limit); set it to 0, got {config.degrade.codec_prob}")


def wheel_download_command(out: Path, python_version: str = DEVICE_PYTHON) -> list[str]:
    """``pip download`` of ``DEVICE_WHEELS`` at the versions installed here, built for a lent machine's Python."""
    platforms = [arg for platform in WHEEL_PLATFORMS for arg in ("--platform", platform)]
    return [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--python-version", python_version,
        "--implementation", "cp", *platforms, "--dest", str(out), *(f"{name}=={version(name)}" for name in DEVICE_WHEELS),
    ]


def repository_bytes(repository: Path, leave_out: tuple[Path, ...]) -> int:
    """Bytes of the files a lent machine copies from ``repository``: tracked and untracked-not-ignored, bar ``leave_out``."""
    listing = subprocess.run(
        ["git", "-C", str(repository), "ls-files", "-z", "--cached", "--others", "--exclude-standard"], capture_output=True, text=True,
    )
    if listing.returncode != 0:
        raise ValueError(f"{repository}: git cannot list it ({listing.stderr.strip()}); run from the git checkout a lent machine copies")
    listed = listing.stdout.split("\0")
    paths = [repository / name for name in listed if name]
    return sum(p.stat().st_size for p in paths if p.is_file() and not any(p.is_relative_to(skip) for skip in leave_out))


def _encode(row: ManifestRow, source_dir: Path, data_dir: Path, level: float) -> ManifestRow:
    if row.sample_rate not in OPUS_RATES:
        raise ValueError(f"{row.path}: Opus takes {OPUS_RATES} Hz, the manifest says {row.sample_rate}")
    audio, rate = sf.read(row.path, dtype="float32", always_2d=True)
    path = data_dir / row.path.relative_to(source_dir)
    path = path.with_name(path.name + PACKED_SUFFIX)  # the source's name kept: the validation split hashes it
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio[:, 0], rate, format="OGG", subtype="OPUS", compression_level=level)  # training reads the first channel
    return dataclasses.replace(row, path=path)


def _copy(row: ManifestRow, source_dir: Path, data_dir: Path) -> ManifestRow:
    path = data_dir / row.path.relative_to(source_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(row.path, path)
    return dataclasses.replace(row, path=path)


def pack(config: Config, out: Path, repository: Path, wheels: bool = True, limit_mib: float = LIMIT_MIB) -> Packed:
    """Write ``out`` (``data/``, ``cache/``, ``wheels/``) for ``config``'s run; see the module's docstring."""
    check_travels(config)
    if out.exists():
        raise FileExistsError(f"{out} exists; choose a new folder or remove it")
    partial = out.with_name(out.name + ".partial")
    travelling = repository_bytes(repository, (out, partial))
    inside = out.resolve().is_relative_to(repository.resolve())
    if inside and subprocess.run(["git", "-C", str(repository), "check-ignore", "-q", str(out.resolve())]).returncode != 0:
        raise ValueError(f"{out}: inside the repository and not ignored by git, so it would travel twice (in the tree and carried); use .travel")
    shutil.rmtree(partial, ignore_errors=True)  # an earlier pack's leftover: never a finished folder
    try:
        source_dir = Path(config.data.data_dir)
        data_dir = partial / "data"
        speech = train_rows(source_dir, "speech", config.degrade.sample_rate)
        packed_speech = [_encode(r, source_dir, data_dir, SPEECH_OPUS_LEVEL) for r in speech]
        rows = packed_speech + [_encode(r, source_dir, data_dir, NOISE_OPUS_LEVEL) for r in train_rows(source_dir, "noise")]
        rows += [_copy(r, source_dir, data_dir) for r in train_rows(source_dir, "rir")]
        write_manifest(data_dir, rows)
        (partial / "cache").mkdir()
        rooms = (config.data.simulated_rooms, config.degrade.sample_rate, config.seed)
        simulated_rooms_cached(config.data.cache_dir, *rooms)  # made here when the cache lacks it
        shutil.copyfile(simulated_rooms_path(config.data.cache_dir, *rooms), simulated_rooms_path(partial / "cache", *rooms))
        if config.data.min_clean_dnsmos_bak > 0:  # training files only: validation files are never filtered
            filtered = [(s, p) for s, p in zip(speech, packed_speech) if not is_validation_file(s.path)]
            scores = clean_speech_scores([s for s, _ in filtered], config.data.cache_dir)
            keys = {p.path: content_key(p.path) for _, p in filtered}
            write_scores(
                partial / "cache" / CACHE_NAME,
                {keys[p.path]: scores[s.path] for s, p in filtered},
                {keys[p.path]: p.path.relative_to(partial).as_posix() for _, p in filtered},
            )
        wheel_names: tuple[str, ...] = ()
        if wheels:
            (partial / "wheels").mkdir()
            subprocess.run(wheel_download_command(partial / "wheels"), check=True)
            wheel_names = tuple(sorted(p.name for p in (partial / "wheels").glob("*.whl")))
        data_bytes = sum(p.stat().st_size for p in partial.rglob("*") if p.is_file())
        if data_bytes + travelling > limit_mib * 2**20:
            raise ValueError(
                f"the pack ({data_bytes / 2**20:.1f} MiB) and the repository ({travelling / 2**20:.1f} MiB) exceed {limit_mib:g} MiB; "
                "pack a config with less data, or lower the Opus levels' bit rates"
            )
        partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return Packed(len(rows), data_bytes, travelling, wheel_names)


def device_command(config_path: Path, out: Path, init_from: Path, minutes: float) -> str:
    """The shell command a lent machine runs from the repository root (``$OUT`` is what comes back)."""
    train = f"python3 -m speakup_fx.cli train --config {config_path} --run-dir /tmp/run"
    return (
        f"python3 -m pip install -q --no-index --no-deps --target /tmp/site {out}/wheels/*.whl && export PYTHONPATH=/tmp/site:$PWD && "
        f"{train} --data-dir {out}/data --cache-dir {out}/cache --init-from {init_from} --max-minutes {minutes:g} 2>&1 | tee $OUT/train.log; "
        f"{train} --export $OUT/enhancer.safetensors && cp /tmp/run/best.pt /tmp/run/checkpoint.pt $OUT/"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m speakup_fx.train.travel", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--out", type=Path, default=Path(".travel"), help="new folder to carry (default: .travel)")
    parser.add_argument("--init-from", type=Path, default=Path("speakup_fx/weights/enhancer.safetensors"), help="for the printed command")
    parser.add_argument("--minutes", type=float, default=8.5, help="training minutes in the printed command (a call runs at most 10)")
    parser.add_argument("--no-wheels", action="store_true", help="leave the wheels out (the machine has them)")
    parser.add_argument("--limit-mib", type=float, default=LIMIT_MIB)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        packed = pack(load_config(args.config), args.out, Path.cwd(), not args.no_wheels, args.limit_mib)
    except (ValueError, FileNotFoundError, FileExistsError, subprocess.CalledProcessError) as error:  # pip download fails as CalledProcessError
        logger.error("%s", error)
        return 2
    print(f"packed {packed.files} files, {packed.data_bytes / 2**20:.1f} MiB (+ {packed.repository_bytes / 2**20:.1f} MiB of repository); wheels: {', '.join(packed.wheels) or 'none'}")
    print(f"run there with carry [{str(args.out)!r}]:\n{device_command(args.config, args.out, args.init_from, args.minutes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
