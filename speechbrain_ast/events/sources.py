"""Audio sources of live tagging, each yielding mono float32 blocks:
:class:`PcmSource` (raw PCM, e.g. standard input), :class:`WavFileSource`
(a WAV file read as it grows), :class:`MicSource` (``sounddevice``), and
the :class:`RingBuffer` that keeps the last window of a stream.

Authors
 * speechbrain-ast developers
"""

import io
import math
import os
import queue
import time

import numpy as np
import soundfile as sf
import torch

from speechbrain_ast.data.audio import AudioError

__all__ = ["MicSource", "PcmSource", "RingBuffer", "WavFileSource"]

#: Seconds of audio a source reads or captures at a time.
BLOCK_S = 0.05
# bytes per sample of the WAV subtypes a stream decodes (soundfile's names)
_SAMPLE_BYTES = dict(PCM_U8=1, PCM_16=2, PCM_24=3, PCM_32=4, FLOAT=4, DOUBLE=8)


class RingBuffer:
    """The last ``capacity`` samples of a stream, in a fixed array.

    Arguments
    ---------
    capacity : int
        Samples kept (one window).

    Example
    -------
    >>> ring = RingBuffer(4)
    >>> ring.write(np.arange(3.0))
    >>> ring.write(np.arange(3.0, 6.0))
    >>> ring.latest(4), ring.total
    (array([2., 3., 4., 5.], dtype=float32), 6)
    """

    def __init__(self, capacity):
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}.")
        self.capacity = int(capacity)
        self.data = np.zeros(self.capacity, dtype=np.float32)
        self.total = 0  # samples written since the start

    def write(self, samples):
        """Appends ``samples`` (1-D), forgetting the oldest beyond capacity."""
        samples = np.asarray(samples, dtype=np.float32)
        count, samples = len(samples), samples[-self.capacity :]
        pos = (self.total + count - len(samples)) % self.capacity
        first = min(len(samples), self.capacity - pos)
        self.data[pos : pos + first] = samples[:first]
        self.data[: len(samples) - first] = samples[first:]
        self.total += count

    def latest(self, count):
        """A copy of the last ``count`` samples, oldest first."""
        kept = min(self.total, self.capacity)
        if not 0 <= count <= kept:
            raise ValueError(f"only {kept} samples are kept, asked {count}.")
        start = (self.total - count) % self.capacity
        return np.roll(self.data, -start)[:count].copy()


class PcmSource:
    """Raw little-endian PCM from a binary file object, decoded by
    soundfile, channels averaged. Standard input (``--stream -``, 16-bit
    mono) ends at end of file; with ``idle_s`` (a growing file) it ends
    after ``idle_s`` seconds without new data.

    Arguments
    ---------
    stream : file object
        Opened for binary reading (``sys.stdin.buffer``).
    rate : int
        The samples' rate in Hz.
    subtype, channels : str, int
        soundfile's sample format name and the interleaved channels.
    idle_s : float, optional
        Wait for more data at end of file.

    Example
    -------
    >>> pcm = np.array([0, 16384, -32768], "<i2").tobytes()
    >>> [b.tolist() for b in PcmSource(io.BytesIO(pcm), 16000).blocks()]
    [[0.0, 0.5, -1.0]]
    """

    def __init__(self, stream, rate, subtype="PCM_16", channels=1, idle_s=None):
        self.stream, self.rate, self.idle_s = stream, int(rate), idle_s
        self.frame_bytes = channels * _SAMPLE_BYTES[subtype]
        # soundfile decodes the samples; their channel mean is the block
        self.raw = dict(format="RAW", subtype=subtype, samplerate=self.rate)
        self.raw.update(channels=channels, endian="LITTLE", always_2d=True)
        self.block_bytes = self.frame_bytes * max(1, round(BLOCK_S * rate))

    def remaining(self, done):
        """Bytes still to come after ``done`` bytes (inf: unknown)."""
        return math.inf

    def blocks(self):
        """Yields ``[samples]`` float32 mono blocks as they arrive."""
        read = getattr(self.stream, "read1", self.stream.read)
        rest, done, last_new = b"", 0, time.monotonic()
        while True:
            left = self.remaining(done)
            want = int(min(self.block_bytes, left))
            got = read(want) if want > 0 else b""
            done, data = done + len(got), rest + got
            whole = len(data) - len(data) % self.frame_bytes
            data, rest = data[:whole], data[whole:]
            if got:
                last_new = time.monotonic()
                if data:
                    wav, _ = sf.read(
                        io.BytesIO(data), dtype="float32", **self.raw
                    )
                    yield torch.from_numpy(wav).mean(dim=1).numpy()
            elif self.idle_s is None or left <= 0:
                return
            elif time.monotonic() - last_new >= self.idle_s:
                return
            else:
                time.sleep(BLOCK_S)


def _wav_data_chunk(path):
    """``(data_start, declared_bytes)`` of a RIFF/WAVE file."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) == 12 and (head[:4], head[8:]) != (b"RIFF", b"WAVE"):
            raise AudioError(
                f"--stream {path!r} is not a WAV file (no RIFF/WAVE "
                "header): stream a WAV file, or pipe raw 16-bit PCM to "
                "--stream -."
            )
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk, length = np.frombuffer(f.read(8), "<u4").tolist()
            if chunk == int.from_bytes(b"data", "little"):
                return pos + 8, length
            pos += 8 + length + length % 2
    raise AudioError(
        f"--stream {path!r} has no complete WAV header (yet): start once "
        "the recorder has written it."
    )


class WavFileSource(PcmSource):
    """A WAV file (PCM 8/16/24/32-bit, float, double) read as a recorder
    writes it. Ends when the header's data size is reached (set when the
    writer closes the file: 0 or too large until then) or after
    ``idle_s`` seconds without new samples.

    Arguments
    ---------
    path : str
        The WAV file (it must exist).
    idle_s : float
        Seconds without new data that end the stream.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> sf.write(path, np.full((800, 2), 0.5), 8000)
    >>> source = WavFileSource(path, idle_s=0.1)
    >>> source.rate, sum(b.shape[0] for b in source.blocks())
    (8000, 800)
    """

    def __init__(self, path, idle_s=2.0):
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise AudioError(
                f"--stream {self.path!r} does not exist: give a WAV file "
                "(being written or complete), '-' for standard input or "
                "'mic'."
            )
        self.data_start = _wav_data_chunk(self.path)[0]
        info = sf.info(self.path)
        if info.subtype not in _SAMPLE_BYTES:
            raise AudioError(
                f"--stream {self.path!r} holds {info.subtype} samples: "
                f"stream a WAV of {', '.join(_SAMPLE_BYTES)} samples."
            )
        stream = open(self.path, "rb")
        stream.seek(self.data_start)
        rate, subtype, channels = info.samplerate, info.subtype, info.channels
        super().__init__(stream, rate, subtype, channels, idle_s)

    def remaining(self, done):
        """Bytes of the declared data not read yet, once the writer has
        set its size (inf before)."""
        declared = _wav_data_chunk(self.path)[1]
        end = self.data_start + declared
        if declared in (0, 0xFFFFFFFF) or end > os.path.getsize(self.path):
            return math.inf
        return declared - done

    def blocks(self):
        """Yields ``[samples]`` float32 mono blocks as the file grows."""
        with self.stream:
            yield from super().blocks()


class MicSource:
    """A microphone through ``sounddevice`` (imported when the stream
    starts), whose callback queues blocks; ends when the device stops.

    Arguments
    ---------
    rate : int
        The capture rate in Hz.
    device : int, optional
        ``sounddevice``'s input device index (default: the system's).

    Example
    -------
    >>> MicSource(16000).rate
    16000
    """

    def __init__(self, rate, device=None):
        self.rate, self.device = int(rate), device
        self.block_size = max(1, round(BLOCK_S * self.rate))
        self.max_backlog = 0  # most blocks ever queued: stays small

    def blocks(self):
        """Yields ``[samples]`` float32 blocks as the device delivers them."""
        try:
            import sounddevice as sd
        except (ImportError, OSError) as err:  # OSError: no PortAudio
            raise AudioError(
                f"--stream mic needs sounddevice and the PortAudio library "
                f"({type(err).__name__}: {' '.join(str(err).split())}): "
                "`pip install sounddevice`, install PortAudio (e.g. apt-get "
                "install libportaudio2), or stream stdin or a WAV file."
            ) from err
        blocks = queue.Queue()

        def callback(indata, frames, time_info, status):
            """Runs on the audio thread: queue a copy of the block."""
            blocks.put(np.array(indata, dtype=np.float32).mean(axis=1))

        stream = sd.InputStream(
            samplerate=self.rate,
            channels=1,
            dtype="float32",
            device=self.device,
            blocksize=self.block_size,
            callback=callback,
        )
        with stream:
            while stream.active or not blocks.empty():
                try:
                    block = blocks.get(timeout=0.1)
                except queue.Empty:
                    continue
                self.max_backlog = max(self.max_backlog, blocks.qsize() + 1)
                yield block
