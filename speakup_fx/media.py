"""Reading and writing audio and video files in blocks: soundfile for WAV/FLAC, PyAV (FFmpeg) for the rest.

Blocks are float32 ``(channels, frames)``. Readers give exactly the samples
the file holds: encoder priming and padding are removed where the container
records them (MP3 LAME tag, MP4 edit list and sample durations, Ogg granule
positions), so a decoded length is the length that was encoded. Every problem
with a file raises ``MediaError`` whose message starts with the file's path.

Samples are checked both ways: a reader refuses non-finite samples and samples beyond
``MAX_SAMPLE_MAGNITUDE`` (not audio), and a writer refuses to encode them (clipping alone would
turn them into full-scale garbage).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile

from speakup_fx.dsp.resample import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

logger = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".m4v")
OUTPUT_FORMATS = ("wav", "flac", "mp3")
BIT_DEPTHS = ("16", "24", "32f")
MP3_BIT_RATE = 192_000
AAC_BIT_RATE = 192_000
MAX_SAMPLE_MAGNITUDE = 1000.0
"""+60 dBFS: a float sample beyond this is not audio (a corrupt file, or a broken effect upstream)."""
DECLARED_LENGTH_TOLERANCE_S = 0.1
"""A decoded length may fall this far short of a container's duration (an estimate) before the file is truncated."""

_SOUNDFILE_SUFFIXES = (".wav", ".flac")
_PCM_SUBTYPES = {"16": "PCM_16", "24": "PCM_24", "32f": "FLOAT"}
_WAV_LIMIT_BYTES = 4_000_000_000
_SFC_SET_ADD_PEAK_CHUNK = 0x1050
"""libsndfile's command (sndfile.h) that turns the PEAK chunk of float files on or off."""
_VIDEO_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
_LAYOUTS = {1: "mono", 2: "stereo"}


class MediaError(ValueError):
    """A file cannot be read or written; the message names the file and the problem."""


def is_media_file(path: Path) -> bool:
    """Whether ``path``'s suffix is one that ``AudioReader`` reads."""
    return path.suffix.lower() in AUDIO_SUFFIXES + VIDEO_SUFFIXES


def is_video_file(path: Path) -> bool:
    """Whether ``path``'s suffix is a video container (its video is copied into the output)."""
    return path.suffix.lower() in VIDEO_SUFFIXES


class AudioReader:
    """The first audio stream of a file, decoded in blocks; a context manager.

    Attributes: ``sample_rate``, ``channels``, ``frames_estimate`` (exact for
    WAV/FLAC, from the container's duration otherwise; None when unknown),
    ``frames_declared`` (the length the file promises: a WAV's data chunk, FLAC's
    STREAMINFO, the audio stream's duration; None when it promises none), ``frames_decoded``
    (counted by ``blocks``), ``start_s`` (presentation time of the first audio sample,
    kept in video remuxes). Raises ``MediaError`` for a missing, empty or corrupt file,
    no audio stream, more than two channels, a rate outside 8..192 kHz, or non-finite or
    absurd (beyond ``MAX_SAMPLE_MAGNITUDE``) samples. A truncated file is not an error
    here: ``truncation()`` says how much is missing.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise MediaError(f"{self.path}: no such file")
        if not self.path.is_file():
            raise MediaError(f"{self.path}: not a file")
        if self.path.stat().st_size == 0:
            raise MediaError(f"{self.path}: empty file")
        self._container: av.container.InputContainer | None = None
        self._soundfile: soundfile.SoundFile | None = None
        self.start_s = 0.0
        self.frames_decoded = 0
        self._declared_tolerance = 0
        if self.path.suffix.lower() in _SOUNDFILE_SUFFIXES:
            try:
                self._soundfile = soundfile.SoundFile(self.path)
            except (soundfile.LibsndfileError, RuntimeError) as error:
                raise MediaError(f"{self.path}: cannot decode: {error}") from None
            self.sample_rate = self._soundfile.samplerate
            self.channels = self._soundfile.channels
            self.frames_estimate: int | None = self._soundfile.frames
            self.frames_declared: int | None = self._soundfile.frames or None
            if self._soundfile.format in ("WAV", "RF64", "WAVEX"):
                self.frames_declared = _wav_declared_frames(self.path)
        else:
            self._open_with_av()
        try:
            self._check_format()
        except MediaError:
            self.close()
            raise

    def _open_with_av(self) -> None:
        try:
            self._container = av.open(str(self.path))
        except (av.FFmpegError, UnicodeDecodeError) as error:
            raise MediaError(f"{self.path}: cannot decode: {_av_message(error)}") from None
        if not self._container.streams.audio:
            self.close()
            raise MediaError(f"{self.path}: no audio stream")
        self._stream = self._container.streams.audio[0]
        if len(self._container.streams.audio) > 1:
            logger.warning(
                "%s: %d audio streams; only the first is used, the others are dropped",
                self.path, len(self._container.streams.audio),
            )
        self._container_used = False
        self.sample_rate = self._stream.codec_context.sample_rate
        self.channels = self._stream.codec_context.channels
        self.frames_estimate = self.frames_declared = None
        if self._stream.duration is not None and self._stream.time_base is not None:
            self.frames_estimate = round(self._stream.duration * self._stream.time_base * self.sample_rate)
            if _stream_duration_is_exact(self.path):  # the audio stream's own (a container's may be the video's)
                self.frames_declared = self.frames_estimate
        elif self._container.duration is not None:
            self.frames_estimate = round(self._container.duration / av.time_base * self.sample_rate)
        if self._stream.start_time is not None and self._stream.time_base is not None:
            self.start_s = float(self._stream.start_time * self._stream.time_base)
        self._declared_tolerance = round(DECLARED_LENGTH_TOLERANCE_S * self.sample_rate)

    def _check_format(self) -> None:
        if self.channels not in (1, 2):
            raise MediaError(f"{self.path}: {self.channels} channels; only mono and stereo are supported")
        if not MIN_SAMPLE_RATE <= self.sample_rate <= MAX_SAMPLE_RATE:
            raise MediaError(
                f"{self.path}: sample rate {self.sample_rate} Hz is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz"
            )
        if self.frames_estimate == 0:
            raise MediaError(f"{self.path}: no audio samples")

    def blocks(self, block_frames: int) -> Iterator[np.ndarray]:
        """Yield the audio as float32 ``(channels, n)`` blocks with ``n <= block_frames``; checked to be audio."""
        source = self._soundfile_blocks(block_frames) if self._soundfile else self._av_blocks(block_frames)
        self.frames_decoded = 0
        for block in source:
            problem = sample_problem(block, self.frames_decoded, self.sample_rate)
            if problem:
                raise MediaError(f"{self.path}: {problem}")
            self.frames_decoded += block.shape[1]
            yield block
        if self.frames_decoded == 0:
            raise MediaError(f"{self.path}: no audio samples")

    def truncation(self) -> str | None:
        """After ``blocks``: how the decoded audio falls short of the declared length, or None if it does not."""
        declared, decoded = self.frames_declared, self.frames_decoded
        if declared is None or decoded >= declared - self._declared_tolerance:
            return None
        rate = self.sample_rate
        return (
            f"truncated: the file declares {declared:,} frames ({declared / rate:.3f} s) "
            f"but holds {decoded:,} ({decoded / rate:.3f} s)"
        )

    def _soundfile_blocks(self, block_frames: int) -> Iterator[np.ndarray]:
        assert self._soundfile is not None
        self._soundfile.seek(0)
        try:
            for block in self._soundfile.blocks(block_frames, dtype="float32", always_2d=True):
                yield np.ascontiguousarray(block.T)
        except (soundfile.LibsndfileError, RuntimeError) as error:
            raise MediaError(f"{self.path}: cannot decode: {error}") from None

    def _av_blocks(self, block_frames: int) -> Iterator[np.ndarray]:
        assert self._container is not None
        pending: list[np.ndarray] = []
        pending_frames = 0
        for frame in self._decoded_frames():
            pending.append(frame)
            pending_frames += frame.shape[1]
            while pending_frames >= block_frames:
                joined = np.concatenate(pending, axis=1)
                yield joined[:, :block_frames]
                pending = [joined[:, block_frames:]]
                pending_frames -= block_frames
        if pending_frames:
            yield np.concatenate(pending, axis=1)

    def _decoded_frames(self) -> Iterator[np.ndarray]:
        """Decoded samples, cut where the container says the stream ends (encoder padding)."""
        if self._container_used:  # reopen rather than seek: seeking Matroska drops the first audio frame
            assert self._container is not None
            self._container.close()
            self._container = av.open(str(self.path))
            self._stream = self._container.streams.audio[0]
        self._container_used = True
        container, stream = self._container, self._stream
        packets_end_s: Fraction | None = None
        # Trim only where the packet clock can name single samples; a coarse one (Matroska's ms) would cut real audio.
        exact_clock = stream.time_base is not None and (1 / stream.time_base) % self.sample_rate == 0
        try:
            for packet in container.demux(stream):
                if exact_clock and packet.pts is not None and packet.duration:
                    end_s = (packet.pts + packet.duration) * stream.time_base
                    packets_end_s = end_s if packets_end_s is None else max(packets_end_s, end_s)
                for frame in packet.decode():
                    samples = _frame_samples(frame, self.path)
                    if samples.shape[0] != self.channels or frame.sample_rate != self.sample_rate:
                        raise MediaError(f"{self.path}: channel count or sample rate changes mid-stream")
                    if packets_end_s is not None and frame.pts is not None and frame.time_base is not None:
                        start_s = frame.pts * frame.time_base
                        keep = round((packets_end_s - start_s) * self.sample_rate)
                        samples = samples[:, : max(keep, 0)]
                    if samples.shape[1]:
                        yield samples
        except av.FFmpegError as error:
            raise MediaError(f"{self.path}: cannot decode: {_av_message(error)}") from None

    def close(self) -> None:
        if self._soundfile is not None:
            self._soundfile.close()
        if self._container is not None:
            self._container.close()

    def __enter__(self) -> AudioReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def sample_problem(block: np.ndarray, start_frame: int, sample_rate: int) -> str | None:
    """Why ``block`` (starting at ``start_frame``) is not audio: a non-finite or absurd sample; None if it is."""
    finite = np.isfinite(block)
    if not finite.all():
        at = start_frame + int(np.argmin(finite.all(axis=0)))
        return f"NaN or infinite sample at {at / sample_rate:.3f} s"
    magnitude = np.abs(block).max(axis=0, initial=0.0)
    if magnitude.size and magnitude.max() > MAX_SAMPLE_MAGNITUDE:
        at = int(np.argmax(magnitude))
        value = block[int(np.argmax(np.abs(block[:, at]))), at]
        return (
            f"sample of {value:.3g} at {(start_frame + at) / sample_rate:.3f} s "
            f"(beyond +-{MAX_SAMPLE_MAGNITUDE:g}, +{20 * np.log10(MAX_SAMPLE_MAGNITUDE):.0f} dBFS: not audio)"
        )
    return None


def _stream_duration_is_exact(path: Path) -> bool:
    """Whether FFmpeg reads the audio stream's duration from the file rather than estimating it from the bit rate.

    MP3 has a frame count only in a Xing/Info/VBRI tag in its first frame; raw AAC (ADTS) has none.
    """
    suffix = path.suffix.lower()
    if suffix == ".aac":
        return False
    if suffix != ".mp3":
        return True
    with path.open("rb") as file:
        head = file.read(10)
        start = 0
        if head[:3] == b"ID3" and len(head) == 10:  # ID3v2: a synchsafe size, plus a footer when flagged
            start = 10 + sum((byte & 0x7F) << (7 * (3 - i)) for i, byte in enumerate(head[6:10]))
            start += 10 if head[5] & 0x10 else 0
        file.seek(start)
        data = file.read(4096)
    sync = next((i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] & 0xE0 == 0xE0), None)
    first_frame = data[sync : sync + 64] if sync is not None else b""  # the tag sits 13..36 bytes in (VBRI: 36)
    return any(tag in first_frame for tag in (b"Xing", b"Info", b"VBRI"))


def _wav_declared_frames(path: Path) -> int | None:
    """Frames a WAV (RIFF or RF64) header declares in its data chunk; None when it declares none (streamed WAV)."""
    with path.open("rb") as file:
        head = file.read(12)
        if head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
            return None
        block_align = data_size_64 = None
        for _ in range(64):  # chunks before the data: fmt, ds64, fact, LIST, ...
            header = file.read(8)
            if len(header) < 8:
                return None
            chunk_id, size = header[:4], int.from_bytes(header[4:], "little")
            if chunk_id == b"data":
                if head[:4] == b"RF64" and size == 0xFFFFFFFF:
                    size = data_size_64
                if not block_align or not size or size == 0xFFFFFFFF:
                    return None
                return size // block_align
            body = file.read(size + (size & 1))
            if chunk_id == b"fmt " and len(body) >= 14:
                block_align = int.from_bytes(body[12:14], "little")
            elif chunk_id == b"ds64" and len(body) >= 16:
                data_size_64 = int.from_bytes(body[8:16], "little")
    return None


def _frame_samples(frame: av.AudioFrame, path: Path) -> np.ndarray:
    """A decoded frame as float32 ``(channels, n)``."""
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if not frame.format.is_planar:
        data = data.reshape(-1, channels).T
    if data.dtype.kind == "f":
        return data.astype(np.float32)
    if data.dtype == np.uint8:
        return ((data.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    if data.dtype.kind == "i":
        return (data.astype(np.float64) / float(2 ** (8 * data.dtype.itemsize - 1))).astype(np.float32)
    raise MediaError(f"{path}: unsupported sample format {frame.format.name}")


def _av_message(error: BaseException) -> str:
    return getattr(error, "strerror", None) or str(error)


class _SampleGuard:
    """Checks every block before encoding (``MediaError`` for samples that are not audio) and clips to [-1, 1]
    for integer and lossy formats, counting the clipped samples."""

    def __init__(self, name: str, sample_rate: int, clip: bool) -> None:
        self.name, self.sample_rate, self.clip = name, sample_rate, clip
        self.clipped_samples = 0
        self._frames = 0

    def __call__(self, block: np.ndarray) -> np.ndarray:
        problem = sample_problem(block, self._frames, self.sample_rate)
        if problem:
            raise MediaError(f"{self.name}: not written: {problem}")
        self._frames += block.shape[1]
        over = np.abs(block) > 1.0
        if self.clip and over.any():
            self.clipped_samples += int(over.sum())
            return np.clip(block, -1.0, 1.0)
        return block


class AudioWriter:
    """Writes float32 ``(channels, n)`` blocks to a WAV/FLAC (soundfile) or MP3 (PyAV) file; a context manager.

    ``bit_depth`` ('16', '24', '32f') applies to WAV and FLAC (FLAC has no
    float); ``frames_estimate`` lets long WAV files switch to RF64. Samples
    outside [-1, 1] are clipped (except 32-bit float) and counted in
    ``clipped_samples``; non-finite or absurd samples raise ``MediaError`` naming
    ``name`` (default: ``path``; a caller writing a temporary file names its
    destination). Leaving the context with an exception closes the file without
    finishing it (the caller deletes it).
    """

    def __init__(
        self,
        path: Path,
        output_format: str,
        sample_rate: int,
        channels: int,
        bit_depth: str = "24",
        frames_estimate: int | None = None,
        name: str | None = None,
    ) -> None:
        check_output_format(path, output_format, sample_rate, bit_depth)
        self.path = path
        self._guard = _SampleGuard(name or str(path), sample_rate, clip=bit_depth != "32f" or output_format == "mp3")
        self._soundfile: soundfile.SoundFile | None = None
        self._container: av.container.OutputContainer | None = None
        if output_format == "mp3":
            self._container = av.open(str(path), "w", format="mp3")
            self._encoder = _AvAudioEncoder(self._container, "libmp3lame", MP3_BIT_RATE, sample_rate, channels)
        else:
            container = output_format.upper()
            bytes_per_sample = {"16": 2, "24": 3, "32f": 4}[bit_depth]
            if container == "WAV" and (frames_estimate or 0) * channels * bytes_per_sample > _WAV_LIMIT_BYTES:
                container = "RF64"
            self._soundfile = soundfile.SoundFile(
                path, "w", samplerate=sample_rate, channels=channels, format=container, subtype=_PCM_SUBTYPES[bit_depth]
            )
            # libsndfile stamps a float file's PEAK chunk with the wall clock: without it, the same audio gives the same bytes
            soundfile._snd.sf_command(self._soundfile._file, _SFC_SET_ADD_PEAK_CHUNK, soundfile._ffi.NULL, 0)

    @property
    def clipped_samples(self) -> int:
        return self._guard.clipped_samples

    def write(self, block: np.ndarray) -> None:
        block = self._guard(block)
        if self._soundfile is not None:
            self._soundfile.write(block.T)
        else:
            self._encoder.write(block)

    def close(self, finish: bool = True) -> None:
        """Finish (flush the encoder) and close; ``finish=False`` only releases the file."""
        if self._soundfile is not None:
            self._soundfile.close()
        if self._container is not None:
            try:
                if finish:
                    self._encoder.flush()
            finally:
                self._container.close()

    def __enter__(self) -> AudioWriter:
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        self.close(finish=exc_type is None)


def check_output_format(path: Path, output_format: str, sample_rate: int, bit_depth: str) -> None:
    """Raise ``MediaError`` when ``output_format`` cannot hold audio at ``sample_rate`` / ``bit_depth``."""
    if output_format not in OUTPUT_FORMATS:
        expected = ", ".join(OUTPUT_FORMATS)
        raise MediaError(f"{path}: unknown output format {output_format!r}; expected one of {expected}")
    if bit_depth not in BIT_DEPTHS:
        raise MediaError(f"{path}: unknown bit depth {bit_depth!r}; expected one of {', '.join(BIT_DEPTHS)}")
    if output_format == "flac" and bit_depth == "32f":
        raise MediaError(f"{path}: FLAC has no 32-bit float; use --bit-depth 16 or 24, or WAV")
    if output_format == "flac" and sample_rate > 655_350:
        raise MediaError(f"{path}: FLAC cannot store {sample_rate} Hz")
    if output_format == "mp3":
        _check_codec_rate(path, "libmp3lame", "MP3", sample_rate)


def _check_codec_rate(path: Path, codec_name: str, label: str, sample_rate: int) -> None:
    rates = av.Codec(codec_name, "w").audio_rates
    if rates and sample_rate not in rates:
        raise MediaError(
            f"{path}: {label} cannot store {sample_rate} Hz (supported: {', '.join(map(str, sorted(rates)))}); "
            "choose one with --sample-rate"
        )


class _AvAudioEncoder:
    """Encodes float32 blocks into one new audio stream of an FFmpeg output container."""

    def __init__(
        self,
        container: av.container.OutputContainer,
        codec_name: str,
        bit_rate: int,
        sample_rate: int,
        channels: int,
        start_pts: int = 0,
    ) -> None:
        self._container = container
        self._layout = _LAYOUTS[channels]
        self.stream = container.add_stream(codec_name, rate=sample_rate, layout=self._layout)
        self.stream.bit_rate = bit_rate
        self.stream.time_base = Fraction(1, sample_rate)
        self.sample_rate = sample_rate
        self.next_pts = start_pts

    def write(self, block: np.ndarray) -> None:
        if block.shape[1] == 0:
            return
        samples = np.ascontiguousarray(block, dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout=self._layout)
        frame.sample_rate = self.sample_rate
        frame.time_base = Fraction(1, self.sample_rate)
        frame.pts = self.next_pts
        self.next_pts += block.shape[1]
        self._container.mux(self.stream.encode(frame))

    def flush(self) -> None:
        self._container.mux(self.stream.encode(None))


class VideoRemuxWriter:
    """Writes a copy of ``source``'s first video stream (packets copied, not re-encoded) plus AAC audio from blocks.

    Audio blocks are interleaved with the video packets by time, so memory
    stays bounded; the audio starts at ``audio_start_s`` as in the source.
    Blocks are checked and clipped as ``AudioWriter`` does (messages name ``name``).
    Leaving the context with an exception closes without finishing.
    """

    def __init__(
        self,
        source: Path,
        path: Path,
        sample_rate: int,
        channels: int,
        audio_start_s: float = 0.0,
        name: str | None = None,
    ) -> None:
        _check_codec_rate(path, "aac", "AAC", sample_rate)
        self.path = path
        self._guard = _SampleGuard(name or str(path), sample_rate, clip=True)
        self._input = av.open(str(source))
        try:
            if not self._input.streams.video:
                raise MediaError(f"{source}: no video stream to copy")
            video_in = self._input.streams.video[0]
            kept = {video_in.index} | {stream.index for stream in self._input.streams.audio}  # AudioReader warns
            dropped = [stream for stream in self._input.streams if stream.index not in kept]
            if dropped:
                logger.warning(
                    "%s: only the first video and audio streams are kept; %d other stream(s) dropped",
                    source, len(dropped),
                )
            self._output = av.open(str(path), "w", format=_VIDEO_FORMATS[source.suffix.lower()])
        except BaseException:
            self._input.close()
            raise
        try:
            self._video_out = self._output.add_stream_from_template(video_in)
            self._audio = _AvAudioEncoder(
                self._output, "aac", AAC_BIT_RATE, sample_rate, channels, start_pts=round(audio_start_s * sample_rate)
            )
            self._output.metadata.update(self._input.metadata)
            self._video_out.metadata.update(video_in.metadata)
            self._audio.stream.metadata.update(self._input.streams.audio[0].metadata)
        except BaseException:
            self.close(finish=False)
            raise
        self._video_packets = self._input.demux(video_in)
        self._video_done = False

    @property
    def clipped_samples(self) -> int:
        return self._guard.clipped_samples

    def write(self, block: np.ndarray) -> None:
        self._audio.write(self._guard(block))
        self._mux_video_until(Fraction(self._audio.next_pts, self._audio.sample_rate))

    def _mux_video_until(self, time_s: Fraction | None) -> None:
        """Copy video packets up to the first one decoded at or after ``time_s`` (all remaining when None)."""
        while not self._video_done:
            packet = next(self._video_packets, None)
            if packet is None:
                self._video_done = True
                return
            if packet.dts is None and packet.size == 0:  # the demuxer's end-of-stream marker
                continue
            packet_s = packet.dts * packet.time_base if packet.dts is not None else None
            packet.stream = self._video_out
            self._output.mux(packet)
            if time_s is not None and packet_s is not None and packet_s >= time_s:
                return

    def close(self, finish: bool = True) -> None:
        """Finish (flush the audio, copy the remaining video, write the trailer) and close.

        ``finish=False`` only releases the files.
        """
        try:
            if finish:
                self._audio.flush()
                self._mux_video_until(None)
            self._output.close()
        finally:
            self._input.close()

    def __enter__(self) -> VideoRemuxWriter:
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        self.close(finish=exc_type is None)
