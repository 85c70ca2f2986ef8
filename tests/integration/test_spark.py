"""``speakup spark``: bounce on Spark equals a sequential bounce; degrade writes the same shards however it is split.

One local[2] Spark session (no UI, loopback only) serves every test; the CLI reuses it.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import multiprocessing
import shutil
import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet
import pytest
import soundfile as sf
import synthetic
import tomli_w
import torch
from test_bounce import encode

from speakup_fx.atomic import TEMP_PREFIX
from speakup_fx.bounce.batch import Job
from speakup_fx.cli import main
from speakup_fx.data.dataset import BlendedPairs, DegradedSpeech
from speakup_fx.data.shards import SHARD_EPOCH, JoinedPairs, ShardedPairs, read_index, shard_name, write_index, write_shard
from speakup_fx.demo import speak
from speakup_fx.dsp.resample import resample
from speakup_fx.eval.metrics import speech_level_difference_db, stoi
from speakup_fx.presets import load_preset
from speakup_fx.spark.bounce import REPORT_COLUMNS, REPORT_NAME, TaskSettings, bounce_task, spark_bounce
from speakup_fx.spark.degrade import TEACHER_MIN_LEVEL_DB, judged_label
from speakup_fx.spark.session import session_conf, spark_session
from speakup_fx.train.config import load_config
from speakup_fx.train.distributed import World
from speakup_fx.train.loop import build_datasets, build_degrader, split_speech, train

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.toml"
LOCAL = "local[2]"
PCM_24_STEP = 2.0**-23


@pytest.fixture(scope="session")
def spark():
    settings = session_conf(LOCAL, threads=1, conf={
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": "2",
    })
    with spark_session("speakup tests", settings) as session:
        yield session


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def make_inputs(folder: Path) -> Path:
    """8 files, nested: wav, flac, mp3 and m4a at 44.1 and 48 kHz, mono and stereo; ``broken.wav`` is not audio."""
    (folder / "day2").mkdir(parents=True)
    for index, (name, rate, channels) in enumerate([
        ("a.wav", 44_100, 1), ("b.flac", 48_000, 2), ("c.mp3", 44_100, 1), ("d.m4a", 48_000, 1),
        ("day2/e.wav", 48_000, 2), ("day2/f.flac", 44_100, 1), ("day2/g.mp3", 48_000, 2),
    ]):
        encode(folder / name, synthetic.noisy_speech(1.5, rate, channels, snr_db=15.0, seed=index), rate)
    (folder / "broken.wav").write_bytes(b"RIFF\0\0\0\0WAVEjunk" * 40)
    return folder


def test_spark_bounce_of_a_folder_equals_sequential_bounce_and_reports_the_bad_file(spark, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    inputs = make_inputs(tmp_path / "in")
    before = digests(inputs)
    args = [str(inputs), "--preset", "podcast", "--bit-depth", "16"]
    assert main(["spark", "bounce", *args, "-o", str(tmp_path / "spark"), "--master", LOCAL]) == 1
    assert "spark bounce: files: 8 of 8 done" in caplog.text and "1 of 8 files failed" in caplog.text
    assert main(["bounce", *args, "-o", str(tmp_path / "sequential")]) == 1
    sequential = digests(tmp_path / "sequential")
    produced = digests(tmp_path / "spark")
    assert len(sequential) == 7
    assert {name: produced[name] for name in sequential} == sequential  # byte-identical outputs
    assert set(produced) - set(sequential) == {f"{REPORT_NAME}.parquet", f"{REPORT_NAME}.csv"}
    assert digests(inputs) == before

    table = pyarrow.parquet.read_table(tmp_path / "spark" / f"{REPORT_NAME}.parquet")
    assert table.column_names == list(REPORT_COLUMNS)
    rows = {Path(row["input"]).name: row for row in table.to_pylist()}
    assert len(rows) == 8
    broken = rows.pop("broken.wav")
    assert broken["status"] == "failed" and "broken.wav" in broken["error"] and "cannot decode" in broken["error"]
    for row in rows.values():
        assert row["status"] == "bounced" and row["error"] is None
        assert row["duration_s"] == pytest.approx(1.5, abs=0.01)
        assert row["output_lufs"] == pytest.approx(-16.0, abs=0.5) and row["output_true_peak_dbtp"] <= -0.9
        assert row["input_lufs"] < -16.0
    with (tmp_path / "spark" / f"{REPORT_NAME}.csv").open() as file:
        assert [row["status"] for row in csv.DictReader(file)] == [row["status"] for row in table.to_pylist()]

    assert main(["spark", "bounce", *args, "-o", str(tmp_path / "spark"), "--master", LOCAL]) == 1
    again = pyarrow.parquet.read_table(tmp_path / "spark" / f"{REPORT_NAME}.parquet").to_pylist()
    assert sorted(row["status"] for row in again) == ["failed"] + ["skipped"] * 7
    assert {name: digests(tmp_path / "spark")[name] for name in sequential} == sequential
    assert not list((tmp_path / "spark").rglob(f"{TEMP_PREFIX}*"))


def test_spark_bounce_expands_globs_and_exits_2_when_the_one_file_fails(spark, tmp_path):
    inputs = tmp_path / "in"
    for name in ("a.wav", "b.flac", "day2/f.flac"):
        (inputs / name).parent.mkdir(parents=True, exist_ok=True)
        encode(inputs / name, synthetic.noisy_speech(0.5, 16_000), 16_000)
    (inputs / "broken.wav").write_bytes(b"RIFF\0\0\0\0WAVEjunk" * 40)
    pattern = str(inputs / "**" / "*.flac")
    assert main(["spark", "bounce", pattern, "-o", str(tmp_path / "out"), "--set", "loudness=false"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").glob("*.flac")) == ["b.flac", "f.flac"]
    assert main(["spark", "bounce", str(inputs / "b.*"), "-o", str(tmp_path / "scored"), "--preset", "restore", "--score"]) == 0
    [row] = pyarrow.parquet.read_table(tmp_path / "scored" / f"{REPORT_NAME}.parquet").to_pylist()
    assert 1.0 <= row["input_dnsmos_ovrl"] <= 5.0 and 1.0 <= row["output_dnsmos_ovrl"] <= 5.0
    assert row["input_dnsmos_ovrl"] != row["output_dnsmos_ovrl"]  # the enhancer changed the audio
    assert main(["spark", "bounce", str(inputs / "broken.wav"), "-o", str(tmp_path / "one")]) == 2
    assert main(["spark", "bounce", str(inputs / "*.ogg"), "-o", str(tmp_path / "none")]) == 2
    assert main(["spark", "bounce", str(inputs), "-o", str(tmp_path / "bad"), "--set", "nonsense=1"]) == 2
    assert main(["spark", "bounce", str(inputs / "day2" / "nothing.wav"), "-o", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()


def test_the_model_loads_once_per_executor_process_and_outputs_equal_a_sequential_bounce(spark, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for index in range(4):
        encode(folder / f"take{index}.wav", synthetic.noisy_speech(1.0, 16_000, 1, snr_db=5.0, seed=index), 16_000)
    rows = spark_bounce(spark, [folder], tmp_path / "spark", preset="restore", device="cpu")
    assert [row["status"] for row in rows] == ["bounced"] * 4
    assert all(row["models_loaded"] == 1 for row in rows)  # the enhancer, once in each process
    assert len({row["worker"] for row in rows}) < len(rows)  # so some process bounced several files with one load
    assert main(["bounce", str(folder), "-o", str(tmp_path / "sequential"), "--preset", "restore", "--device", "cpu"]) == 0
    assert digests(tmp_path / "sequential") == {k: v for k, v in digests(tmp_path / "spark").items() if k.endswith(".wav")}


def test_two_attempts_of_one_task_leave_one_complete_output(tmp_path):
    """A retried or speculative attempt (another process) finds the output complete or renames its own: never half."""
    source = encode(tmp_path / "take.wav", synthetic.noisy_speech(3.0, 48_000, 2, seed=3), 48_000)
    job = Job(source, tmp_path / "out" / "take.wav", None)
    settings = TaskSettings(load_preset("podcast"), device=None, threads=1, overwrite=False, score=False,
                            protected=frozenset(), bounce_options={"bit_depth": "24", "sample_rate": None})
    with multiprocessing.get_context("fork").Pool(2) as pool:
        rows = pool.starmap(bounce_task, [(job, settings)] * 2)
    assert sorted(row["status"] for row in rows) == ["bounced", "skipped"]
    assert main(["bounce", str(source), "-o", str(tmp_path / "sequential.wav")]) == 0
    assert job.output.read_bytes() == (tmp_path / "sequential.wav").read_bytes()
    assert sorted(p.name for p in job.output.parent.iterdir()) == ["take.wav"]


@pytest.mark.gpu
def test_the_executors_load_the_model_once_on_their_gpu(spark, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for index in range(4):
        encode(folder / f"take{index}.wav", synthetic.noisy_speech(1.0, 16_000, 1, seed=index), 16_000)
    rows = spark_bounce(spark, [folder], tmp_path / "out", preset="restore", device="cuda")
    assert [row["status"] for row in rows] == ["bounced"] * 4
    assert all(row["models_loaded"] == 1 for row in rows)
    assert len({row["worker"] for row in rows}) < len(rows)


@pytest.fixture
def config_path(corpus, tmp_path):
    values = tomllib.loads(TINY.read_text())
    values["data"] |= {"data_dir": str(corpus), "cache_dir": str(tmp_path / "cache")}
    path = tmp_path / "tiny.toml"
    path.write_text(tomli_w.dumps(values))
    return path


def degrade(config_path: Path, out: Path, seed: int, partitions: int, teacher: str | None = None) -> int:
    return main(["spark", "degrade", "--config", str(config_path), "--out", str(out), "--count", "10",
                 "--seed", str(seed), "--shard-size", "4", "--partitions", str(partitions), "--master", LOCAL,
                 *(["--teacher", teacher] if teacher else [])])


def test_degrade_gives_identical_shards_whatever_the_partitioning_and_the_training_draws(spark, config_path, tmp_path):
    assert degrade(config_path, tmp_path / "one", seed=7, partitions=1) == 0
    assert degrade(config_path, tmp_path / "two", seed=7, partitions=2) == 0
    assert degrade(config_path, tmp_path / "other", seed=8, partitions=2) == 0
    shards = digests(tmp_path / "one")
    assert sorted(shards) == ["index.json", shard_name(0), shard_name(1), shard_name(2)]
    assert digests(tmp_path / "two") == shards
    assert digests(tmp_path / "other")[shard_name(0)] != shards[shard_name(0)]

    config = load_config(config_path)
    config = replace(config, seed=7)
    segment = int(config.data.segment_s * config.degrade.sample_rate)
    training = DegradedSpeech(split_speech(config)[0], build_degrader(config), segment, 7, config.data.targets)
    stored = ShardedPairs(tmp_path / "one", config.degrade.sample_rate, segment, config.data.targets, seed=7)
    assert len(stored) == 10
    seen = set()
    for index in range(10):  # epoch 0 visits every pair once, in its own order
        position = stored._position(0, index)
        seen.add(position)
        noisy, target = stored[(0, index)]
        expected_noisy, expected_target = training[(SHARD_EPOCH, position)]
        assert noisy.shape == expected_noisy.shape and target.shape == expected_target.shape
        torch.testing.assert_close(noisy, expected_noisy, rtol=0, atol=PCM_24_STEP)
        torch.testing.assert_close(target, expected_target, rtol=0, atol=PCM_24_STEP)
    assert seen == set(range(10))


def test_training_steps_on_shards(spark, config_path, tmp_path):
    assert degrade(config_path, tmp_path / "shards", seed=0, partitions=2) == 0
    config = load_config(config_path)
    config = replace(config, data=replace(config.data, shards=str(tmp_path / "shards")))
    training, _ = build_datasets(config)
    assert isinstance(training, ShardedPairs)
    state = train(config, tmp_path / "run", World(0, 1, torch.device("cpu")), max_steps=2)
    assert state.step == 2
    longer = replace(config, data=replace(config.data, segment_s=1.0))
    with pytest.raises(ValueError, match="segment_samples"):
        build_datasets(longer)


SPOKEN = ("Recording at home.", "Speak close to the microphone.", "A quiet room helps.", "Check the levels first.")


@pytest.fixture
def dry_config_path(config_path, corpus, tmp_path):
    """The tiny config without rooms (a teacher's label then stands for every target), 1 s segments, its speech
    spoken by espeak-ng (words a teacher keeps, where the synthetic 'voice' reads to it as noise) in noise
    alone at -5..0 dB SNR: some labels the teacher's judge keeps and some it rejects."""
    spoken = tmp_path / "spoken"
    shutil.copytree(corpus, spoken)
    for index, text in enumerate(SPOKEN):
        path = spoken / "speech" / f"speech{index}.flac"
        speak(text, tmp_path / "spoken.wav")
        voice, rate = sf.read(tmp_path / "spoken.wav", dtype="float32")
        voice = resample(voice, rate, 16_000)
        clip = np.zeros(sf.info(path).frames, np.float32)  # the manifest's duration
        clip[: min(len(voice), len(clip))] = voice[: len(clip)]
        sf.write(path, 0.5 * clip / np.abs(clip).max(), 16_000, subtype="PCM_16")
    values = tomllib.loads(config_path.read_text())
    values["degrade"] = {"reverb_prob": 0.0, "snr_db_range": [-5.0, 0.0], "snr_tail_prob": 0.0, "eq_prob": 0.0,
                         "bandlimit_prob": 0.0, "codec_prob": 0.0, "clip_prob": 0.0}
    values["data"] |= {"data_dir": str(spoken), "segment_s": 1.0}
    path = config_path.with_name("tiny_dry.toml")
    path.write_text(tomli_w.dumps(values))
    return path


def test_teacher_labels_every_target_with_its_output_and_training_mixes_them_in(spark, dry_config_path, config_path, tmp_path):
    from speakup_fx.eval.benchmark import DeepFilterNet3

    out = tmp_path / "taught"
    assert degrade(dry_config_path, out, seed=3, partitions=2, teacher="deepfilternet3") == 0
    assert degrade(dry_config_path, tmp_path / "clean", seed=3, partitions=2) == 0
    config = load_config(dry_config_path)
    segment = int(config.data.segment_s * config.degrade.sample_rate)
    taught = ShardedPairs(out, config.degrade.sample_rate, segment, config.data.targets, seed=0)
    clean = ShardedPairs(tmp_path / "clean", config.degrade.sample_rate, segment, config.data.targets, seed=0)
    assert taught.teacher == "deepfilternet3" and clean.teacher is None
    rejected = read_index(out)["teacher_rejected"]
    assert 0 < len(rejected) < 10  # both outcomes are exercised
    assert taught.indices == [index for index in range(10) if index not in rejected] and len(taught) == 10 - len(rejected)
    teacher = DeepFilterNet3()
    rate = config.degrade.sample_rate
    clear = []  # the rule on the stored (24-bit) pairs, where its margins are clear of rounding
    for index in range(10):
        noisy, target = (item.numpy()[0] for item in clean.pair(index))
        label = np.clip(teacher(noisy[None], rate)[0], -1, 1)
        stoi_gain = stoi(target, label, rate) - stoi(target, noisy, rate)
        level_db = speech_level_difference_db(target, label, rate)
        if abs(stoi_gain) > 1e-3 and abs(level_db - TEACHER_MIN_LEVEL_DB) > 0.01:
            assert (index in rejected) == (stoi_gain < 0 or level_db < TEACHER_MIN_LEVEL_DB), (index, stoi_gain, level_db)
            clear.append(index)
    kept = [index for index in taught.indices if index in clear]
    assert kept and len(clear) > len(kept)  # both outcomes judged clear of rounding
    for index in kept[:3]:
        noisy, target = taught.pair(index)
        clean_noisy, clean_target = clean.pair(index)
        torch.testing.assert_close(noisy, clean_noisy, rtol=0, atol=0)  # the same draws, other targets
        expected = teacher(noisy.numpy(), config.degrade.sample_rate)
        expected = judged_label(clean_target[0].numpy(), clean_noisy[0].numpy(), expected[0], config.degrade.sample_rate)
        for channel in target:  # labelled from the unrounded pair in another process: 24-bit steps, scaled by the teacher
            np.testing.assert_allclose(channel.numpy(), np.clip(expected, -1, 1), rtol=0, atol=1e-5)
        assert float((target[0] - clean_target[0]).abs().max()) > 1e-3

    blended = replace(config, data=replace(config.data, teacher_shards=(str(out), str(out)), teacher_share=0.5))
    training, _ = build_datasets(blended)
    assert isinstance(training, BlendedPairs) and training.extra.teacher == "deepfilternet3"
    assert len(training.extra) == 2 * len(taught)  # the folders read as one set
    assert train(blended, tmp_path / "run", World(0, 1, torch.device("cpu")), max_steps=2).step == 2
    unlabelled = replace(config, data=replace(config.data, teacher_shards=(str(tmp_path / "clean"),), teacher_share=0.5))
    with pytest.raises(ValueError, match="not a teacher's labels"):
        build_datasets(unlabelled)
    assert degrade(config_path, tmp_path / "roomy", seed=3, partitions=2, teacher="deepfilternet3") == 2  # rooms: refused
    assert degrade(dry_config_path, tmp_path / "unknown", seed=3, partitions=2, teacher="model") == 2
    assert not (tmp_path / "roomy").exists() and not (tmp_path / "unknown").exists()


def test_shard_pairs_equal_the_stored_audio(tmp_path):
    noisy = np.stack([np.linspace(-1.5, 1.5, 800, dtype=np.float32)])
    target = np.stack([0.5 * noisy[0], 0.25 * noisy[0]])
    summary = write_shard(tmp_path, 0, [(0, noisy, target)], 16_000)
    assert summary.pairs == 1 and summary.clipped_samples == int(np.count_nonzero(np.abs(noisy) > 1.0 - PCM_24_STEP))
    write_index(tmp_path, {"count": 1, "shard_size": 1, "sample_rate": 16_000, "segment_samples": 800,
                           "targets": ["dry", "early"]})
    read_noisy, read_target = ShardedPairs(tmp_path, 16_000, 800, ("dry", "early"), seed=0)[(3, 0)]
    np.testing.assert_allclose(read_noisy.numpy(), np.clip(noisy, -1, 1 - PCM_24_STEP), rtol=0, atol=PCM_24_STEP)
    np.testing.assert_allclose(read_target.numpy(), target, rtol=0, atol=PCM_24_STEP)


def test_rejected_teacher_labels_are_not_read_back(tmp_path):
    pairs = [(index, np.full((1, 800), 0.1 * index, np.float32), np.full((2, 800), 0.05 * index, np.float32)) for index in range(3)]
    write_shard(tmp_path, 0, pairs, 16_000)
    info = {"count": 3, "shard_size": 3, "sample_rate": 16_000, "segment_samples": 800, "targets": ["dry", "early"],
            "teacher": "deepfilternet3", "teacher_rejected": [1]}
    write_index(tmp_path, info)
    stored = ShardedPairs(tmp_path, 16_000, 800, ("dry", "early"), seed=0)
    assert len(stored) == 2 and stored.indices == [0, 2]
    assert sorted(round(float(stored[(0, index)][0][0, 0]), 3) for index in range(4)) == [0.0, 0.0, 0.2, 0.2]  # wraps, never pair 1
    with pytest.raises(KeyError):
        stored.pair(1)
    write_index(tmp_path, {**info, "teacher_rejected": [0, 1, 2]})
    with pytest.raises(ValueError, match="every one of its 3 teacher's labels was rejected"):
        ShardedPairs(tmp_path, 16_000, 800, ("dry", "early"), seed=0)


def write_set(folder, values, teacher="deepfilternet3", rejected=()):
    """A one-shard set whose pair ``i`` is constant ``values[i]`` (noisy) and ``values[i] / 2`` (targets)."""
    folder.mkdir()
    write_shard(folder, 0, [(i, np.full((1, 800), v, np.float32), np.full((2, 800), v / 2, np.float32)) for i, v in enumerate(values)], 16_000)
    write_index(folder, {"count": len(values), "shard_size": len(values), "sample_rate": 16_000, "segment_samples": 800,
                         "targets": ["dry", "early"], "teacher": teacher, "teacher_rejected": list(rejected)})
    return ShardedPairs(folder, 16_000, 800, ("dry", "early"), seed=0)


def test_joined_sets_read_what_one_set_of_their_kept_pairs_in_order_reads(tmp_path):
    first = write_set(tmp_path / "first", [0.1, 0.2, 0.3], rejected=[1])
    second = write_set(tmp_path / "second", [0.4, 0.5])
    one = write_set(tmp_path / "one", [0.1, 0.3, 0.4, 0.5])
    joined = JoinedPairs([first, second], seed=5)
    one.seed = 5
    assert len(joined) == 4 and joined.teacher == "deepfilternet3"
    for epoch in range(3):
        seen = set()
        for index in range(6):  # an epoch longer than the set wraps around
            noisy, target = joined[(epoch, index)]
            expected_noisy, expected_target = one[(epoch, index)]
            torch.testing.assert_close(noisy, expected_noisy, rtol=0, atol=0)
            torch.testing.assert_close(target, expected_target, rtol=0, atol=0)
            seen.add(round(float(noisy[0, 0]), 3))
        assert seen == {0.1, 0.3, 0.4, 0.5}
    assert [joined[(0, i)][0][0, 0].item() for i in range(4)] != [JoinedPairs([first, second], seed=6)[(0, i)][0][0, 0].item() for i in range(4)]
    clean = write_set(tmp_path / "clean", [0.6], teacher=None)
    with pytest.raises(ValueError, match="labelled by different systems"):
        JoinedPairs([first, clean], seed=5)


def test_midi_automation_reaches_the_executors_and_a_bad_midi_file_fails_before_any_task(spark, tmp_path):
    import mido

    folder = tmp_path / "in"
    folder.mkdir()
    for index in range(2):
        encode(folder / f"take{index}.wav", synthetic.noisy_speech(1.0, 16_000, 1, snr_db=5.0, seed=index), 16_000)
    ramp = [mido.Message("control_change", control=11, value=v, time=24) for v in range(0, 128, 8)]
    midi = synthetic.write_midi(tmp_path / "mix.mid", [ramp])
    args = [str(folder), "--preset", "podcast", "--set", "loudness=false", "--midi", str(midi)]
    assert main(["spark", "bounce", *args, "-o", str(tmp_path / "spark"), "--master", LOCAL]) == 0
    assert main(["bounce", *args, "-o", str(tmp_path / "sequential")]) == 0
    assert main(["bounce", *args[:-2], "-o", str(tmp_path / "plain")]) == 0
    sequential = digests(tmp_path / "sequential")
    assert {name: digests(tmp_path / "spark")[name] for name in sequential} == sequential
    assert sequential != digests(tmp_path / "plain")  # the automation changed the audio
    (tmp_path / "bad.mid").write_bytes(b"MThd not really")
    assert main(["spark", "bounce", *args[:-1], str(tmp_path / "bad.mid"), "-o", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()


def test_bounce_pins_its_thread_count_and_restores_it(tmp_path):
    source = encode(tmp_path / "in.wav", synthetic.noisy_speech(0.5, 16_000), 16_000)
    before = torch.get_num_threads()
    assert main(["bounce", str(source), "-o", str(tmp_path / "out.wav"), "--threads", "2"]) == 0
    assert torch.get_num_threads() == before
    with pytest.raises(SystemExit):
        main(["bounce", str(source), "-o", str(tmp_path / "out2.wav"), "--threads", "0"])
