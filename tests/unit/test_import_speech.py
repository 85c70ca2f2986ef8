"""``speakup import-speech``: decoded, resampled, joined clips with a manifest training reads; inputs untouched."""

import hashlib

import numpy as np
import pytest
import soundfile as sf
import synthetic

from speakup_fx.cli import main
from speakup_fx.data.corpus import read_manifest, train_rows
from speakup_fx.data.import_speech import import_speech
from speakup_fx.dsp.resample import resample

PCM16_STEP = 1 / 32768


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def sources(tmp_path):
    """a: 3 s at 48 kHz stereo, b: 4 s and c: 5 s at 16 kHz, and a file that is not audio."""
    folder = tmp_path / "src"
    folder.mkdir()
    stereo = np.stack([synthetic.speech_like(3.0, 48_000, seed=1)[0], synthetic.noise(3.0, 48_000, seed=2)[0]], axis=1)
    sf.write(folder / "a.wav", stereo, 48_000, subtype="FLOAT")
    sf.write(folder / "b.flac", synthetic.speech_like(4.0, 16_000, seed=3)[0], 16_000)
    sf.write(folder / "c.flac", synthetic.speech_like(5.0, 16_000, seed=4)[0], 16_000)
    (folder / "bad.wav").write_bytes(b"not audio at all")
    return folder, stereo


def test_files_are_joined_into_clips_with_a_manifest_and_the_inputs_kept(tmp_path):
    folder, stereo = sources(tmp_path)
    before = digest(folder)
    out = tmp_path / "imported"
    args = ["import-speech", str(folder), "--out", str(out), "--source", "prompts", "--licence", "CC0", "--band-hz", "7000", "--clip-s", "8"]
    assert main(args) == 1  # bad.wav could not be decoded; the rest is imported
    assert digest(folder) == before
    rows = train_rows(out, "speech")
    assert [r.path.name for r in rows] == ["prompts_00000.flac", "prompts_00001.flac"]
    assert [r.duration_s for r in rows] == [7.2, 5.0]  # a + 0.2 s + b (7.2 s <= 8 s), then c alone
    assert {(r.source, r.licence, r.sample_rate, r.band_hz) for r in rows} == {("prompts", "CC0", 16_000, 7000.0)}
    clip, rate = sf.read(rows[0].path, dtype="float32")
    assert rate == 16_000 and len(clip) == round(7.2 * 16_000)
    np.testing.assert_allclose(clip[:48_000], resample(stereo[:, 0], 48_000, 16_000), atol=PCM16_STEP)  # a's first channel
    assert not clip[48_000:51_200].any()  # the gap
    np.testing.assert_allclose(clip[51_200:], sf.read(folder / "b.flac", dtype="float32")[0], atol=PCM16_STEP)

    written = digest(out)
    assert main(args) == 2  # the folder already holds an import: nothing is touched
    assert digest(out) == written


def test_full_band_imports_have_no_band_and_bad_arguments_write_nothing(tmp_path):
    folder, _ = sources(tmp_path)
    out = tmp_path / "full"
    assert main(["import-speech", str(folder / "c.flac"), "--out", str(out), "--source", "s", "--licence", "CC0"]) == 0
    assert [r.band_hz for r in read_manifest(out)] == [None]
    for bad in (["--band-hz", "8000"], ["--clip-s", "0"]):
        assert main(["import-speech", str(folder), "--out", str(tmp_path / "never"), "--source", "s", "--licence", "CC0", *bad]) == 2
    assert main(["import-speech", str(folder / "bad.wav"), "--out", str(tmp_path / "none"), "--source", "s", "--licence", "CC0"]) == 2
    assert main(["import-speech", str(tmp_path / "missing"), "--out", str(tmp_path / "none2"), "--source", "s", "--licence", "CC0"]) == 2
    assert not (tmp_path / "never").exists() and not (tmp_path / "none" / "manifest.csv").exists()


def test_a_manifest_band_outside_the_files_band_is_named(tmp_path):
    folder, _ = sources(tmp_path)
    out = tmp_path / "edited"
    import_speech([folder / "c.flac"], out, "s", "CC0", band_hz=7000.0)
    manifest = out / "manifest.csv"
    manifest.write_text(manifest.read_text().replace("7000.0", "9000.0"))
    with pytest.raises(ValueError, match=r"manifest.csv: s_00000.flac: band_hz 9000.0 outside \(0, 8000\) Hz"):
        read_manifest(out)
