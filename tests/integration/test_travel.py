"""Packing a run for a lent GPU machine: the packed data holds the same files, splits and filter decisions, and the
printed recipe trains and exports from the source tree with only the packages that machine has."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import synthetic

from speakup_fx.data.corpus import read_manifest, simulated_rooms_path
from speakup_fx.data.dataset import is_validation_file
from speakup_fx.data.quality import clean_speech_scores, keep_clean
from speakup_fx.eval import metrics
from speakup_fx.runtime.host import ModelHost
from speakup_fx.train import travel
from speakup_fx.train.config import load_config

REPO = Path(__file__).resolve().parents[2]
RATE = 16_000

# What a lent machine's image lacks (device/KINDS.md), plus the DNSMOS scorer: the packed scores must make it unneeded.
DEVICE_SITE = '''
import importlib.metadata
import sys
for name in ("av", "pedalboard", "pyroomacoustics", "mido", "tomli_w", "pyloudnorm", "pyspark", "pocketsphinx", "pesq", "pystoi",
             "speechmos", "onnxruntime", "speakup_fx._native"):
    sys.modules[name] = None  # importing it raises ImportError; importlib.util.find_spec says None
installed = importlib.metadata.version
def version(name):
    if name == "speakup-fx":  # run from the source tree, not installed
        raise importlib.metadata.PackageNotFoundError(name)
    return installed(name)
importlib.metadata.version = version
'''


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """The tiny corpus plus one speech file with background noise, which the clean-speech filter drops."""
    folder = tmp_path_factory.mktemp("source")
    synthetic.write_tiny_corpus(folder)
    speech = synthetic.speech_like(1.5, RATE, seed=7)[0] + synthetic.noise(1.5, RATE, level_db=-12.0, seed=8)[0]
    sf.write(folder / "speech" / "noisy.flac", speech, RATE, subtype="PCM_16")
    with (folder / "manifest.csv").open("a") as f:
        f.write(f"train,speech,synthetic,speech/noisy.flac,1.5,{RATE},CC0\n")
    return folder


def write_config(path, source, cache, min_bak, data="", codec_prob=0.0):
    """tiny.toml on the source folder with a DNSMOS threshold; ``data``: more [data] lines."""
    text = (REPO / "configs" / "tiny.toml").read_text()
    path.write_text(
        text.replace("[data]", f"[data]\ndata_dir = '{source}'\ncache_dir = '{cache}'\nmin_clean_dnsmos_bak = {min_bak}\n{data}")
        + f"\n[degrade]\ncodec_prob = {codec_prob}\n"
    )
    return path


@pytest.fixture(scope="module")
def config_path(source, tmp_path_factory):
    """Codec round trips off, and a DNSMOS threshold between the clean speech and the noisy file."""
    cache = tmp_path_factory.mktemp("cache")
    rows = [r for r in read_manifest(source) if r.kind == "speech"]
    scores = clean_speech_scores(rows, cache)
    bak = {r.path.name: scores[r.path]["bak"] for r in rows}
    threshold = (bak.pop("noisy.flac") + min(bak.values())) / 2
    return write_config(tmp_path_factory.mktemp("config") / "travel.toml", source, cache, threshold)


@pytest.fixture(scope="module")
def packed(config_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("repo") / ".travel"
    travel.pack(load_config(config_path), out, REPO, wheels=False)
    return out


def test_a_packed_copy_splits_as_its_source():
    names = [f"{i:04d}-{j}.flac" for i in range(500) for j in range(2)]
    held_out = [is_validation_file(Path(n)) for n in names]
    assert any(held_out) and not all(held_out)
    assert held_out == [is_validation_file(Path(n + ".opus")) for n in names]


def test_the_pack_holds_every_training_file_decodable_at_its_length(source, packed):
    before = {(r.kind, r.path.name): r for r in read_manifest(source)}
    after = {(r.kind, r.path.name if r.kind == "rir" else r.path.name.removesuffix(".opus")): r for r in read_manifest(packed / "data")}
    assert sorted(before) == sorted(after)
    for key, old in before.items():
        new = after[key]
        original, rate = sf.read(old.path, dtype="float32")
        decoded, decoded_rate = sf.read(new.path, dtype="float32")
        assert (decoded_rate, len(decoded), new.duration_s) == (rate, len(original), pytest.approx(old.duration_s, abs=1e-3))
        if old.kind == "speech":  # a lossy copy near transparency: 4.1-4.6 on these signals (real speech 4.6; the file itself 4.64)
            assert metrics.pesq_wb(original, decoded, RATE) > 3.8
    assert (packed / "cache" / simulated_rooms_path("", 2, RATE).name).is_file()


def test_the_packed_scores_keep_the_same_training_files(config_path, source, packed):
    config = load_config(config_path)
    kept = {}
    for folder, cache in ((source, config.data.cache_dir), (packed / "data", packed / "cache")):
        training = [r for r in read_manifest(folder) if r.kind == "speech" and not is_validation_file(r.path)]
        kept[folder] = sorted(r.path.name.removesuffix(".opus") for r in keep_clean(training, cache, config.data.min_clean_dnsmos_bak))
    assert kept[source] == kept[packed / "data"]
    assert "noisy.flac" not in kept[source] and kept[source]


def test_the_printed_recipe_trains_and_exports_where_only_the_lent_machines_packages_are(config_path, packed, tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(DEVICE_SITE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(REPO)])}
    probe = subprocess.run([sys.executable, "-c", "import speakup_fx; print(speakup_fx.__version__); import av"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert (probe.stdout, probe.returncode != 0) == ("0+source\n", True)  # the stand-in for that machine is in force
    run_dir = tmp_path / "run"
    base = [sys.executable, "-m", "speakup_fx.cli", "train", "--config", str(config_path), "--run-dir", str(run_dir)]
    trained = subprocess.run(
        base + ["--data-dir", str(packed / "data"), "--cache-dir", str(packed / "cache"), "--max-steps", "1", "--device", "cpu"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    training = [r for r in read_manifest(packed / "data") if r.kind == "speech" and not is_validation_file(r.path)]
    assert f"keeps {len(training) - 1} of {len(training)} files" in trained.stderr  # all but noisy.flac
    weights = tmp_path / "enhancer.safetensors"
    exported = subprocess.run(base + ["--export", str(weights)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert ModelHost("cpu").stream("enhancer", 1, weights).process(synthetic.speech_like(0.3, RATE)).shape == (1, 1, 4800)


def test_the_printed_command_fits_a_device_call_and_names_the_pack():
    command = travel.device_command(Path("configs/dfnet_gpu.toml"), Path(".travel"), Path("speakup_fx/weights/enhancer.safetensors"), 8)
    assert len(command) <= 2000
    assert "--data-dir .travel/data --cache-dir .travel/cache" in command and "--max-minutes 8 " in command
    assert "$OUT/enhancer.safetensors" in command


def test_wheels_are_fetched_for_the_lent_machines_python_at_the_versions_here(tmp_path):
    from importlib.metadata import version

    command = travel.wheel_download_command(tmp_path, "3.12")
    assert command[command.index("--python-version") + 1] == "3.12"
    assert f"soundfile=={version('soundfile')}" in command and "--no-deps" in command


@pytest.mark.parametrize(
    ("data", "codec_prob", "key"),
    [("", 0.2, "degrade.codec_prob"), ("extra_speech = ['x']", 0.0, "data.extra_speech"), ("shards = 'x'", 0.0, "data.shards")],
)
def test_runs_that_need_more_than_the_pack_are_refused_by_name(source, tmp_path, data, codec_prob, key):
    path = write_config(tmp_path / "c.toml", source, tmp_path / "cache", 0.0, data, codec_prob)
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        travel.pack(load_config(path), tmp_path / "out", REPO, wheels=False)
    assert not (tmp_path / "out").exists()


def test_an_existing_folder_is_not_touched_and_an_oversized_pack_leaves_nothing(config_path, packed, tmp_path):
    before = sorted(p.relative_to(packed) for p in packed.rglob("*"))
    with pytest.raises(FileExistsError):
        travel.pack(load_config(config_path), packed, REPO, wheels=False)
    assert sorted(p.relative_to(packed) for p in packed.rglob("*")) == before
    with pytest.raises(ValueError, match="not ignored by git"):
        travel.pack(load_config(config_path), REPO / "speakup_fx" / "pack", REPO, wheels=False)
    assert not (REPO / "speakup_fx" / "pack").exists() and not (REPO / "speakup_fx" / "pack.partial").exists()
    (tmp_path / "copy").mkdir()  # a folder, not a git checkout
    with pytest.raises(ValueError, match="git cannot list it"):
        travel.pack(load_config(config_path), tmp_path / "elsewhere", tmp_path / "copy", wheels=False)
    assert not (tmp_path / "elsewhere").exists()
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="exceed 0.01 MiB"):
        travel.pack(load_config(config_path), out, REPO, wheels=False, limit_mib=0.01)
    assert not out.exists() and not out.with_name("out.partial").exists()
