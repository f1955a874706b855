"""Live tagging: from a stream of audio blocks to the windows a model
scores, and their frame scores on one time axis.

Sources yield mono float32 blocks: :class:`PcmSource` (raw PCM, e.g.
standard input), :class:`WavFileSource` (a WAV file read as it grows),
:class:`MicSource` (``sounddevice``). :func:`stream_windows` keeps the last
window in a :class:`RingBuffer` and cuts the windows that
:func:`~speechbrain_ast.data.audio.iter_windows` cuts from a file, so a
stream scores as the recording does offline; its :class:`HopScheduler`
drops (and reports) windows that fall behind real time. A
:class:`FrameStitcher` averages overlapping windows' frame scores on the
stream's time axis, and an :class:`EventTracker` gives each event once it
is complete.

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

from speechbrain_ast.data.audio import AudioError, count_windows
from speechbrain_ast.events.postprocess import scores_to_events

__all__ = [
    "EventTracker",
    "FrameStitcher",
    "HopScheduler",
    "MicSource",
    "PcmSource",
    "RingBuffer",
    "WavFileSource",
    "stream_windows",
]

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


class HopScheduler:
    """Which windows of a live stream are scored: one whose audio ended
    more than a hop ago (wall clock since the first sample) is dropped,
    the next one being complete already. A file streamed faster than real
    time is behind only when the model is slower than real time. Each run
    of drops is reported once.

    Arguments
    ---------
    hop_s : float
        Seconds between window starts.
    report : callable
        Called with each report line.
    clock : callable
        Monotonic seconds.

    Example
    -------
    >>> now = [0.0]
    >>> scheduler = HopScheduler(1.0, print, clock=lambda: now[0])
    >>> scheduler.begin(0.0)
    >>> now[0] = 4.5  # windows ending at 2, 3 s are late; 4 s is not
    >>> [scheduler.keep(end) for end in (2.0, 3.0, 4.0)]
    fell behind: dropped 2 hop(s) = 2.00 s; use a larger --hop or a smaller model
    [False, False, True]
    """

    def __init__(self, hop_s, report, clock=time.monotonic):
        self.hop_s, self.report, self.clock = hop_s, report, clock
        self.start = None
        self.dropped = 0  # in the current run of drops
        self.total_dropped = 0

    def begin(self, first_block_s):
        """The first block arrived now; it holds ``first_block_s`` s."""
        self.start = self.clock() - first_block_s

    def keep(self, end_s):
        """Whether to score the window whose audio ends at ``end_s``."""
        if self.clock() - self.start - end_s > self.hop_s:
            self.dropped += 1
            self.total_dropped += 1
            return False
        self.flush()
        return True

    def flush(self):
        """Reports the current run of drops, if any."""
        if self.dropped:
            self.report(
                f"fell behind: dropped {self.dropped} hop(s) = "
                f"{self.dropped * self.hop_s:.2f} s; use a larger --hop or "
                "a smaller model"
            )
            self.dropped = 0


def stream_windows(blocks, rate, window_s, hop_s, scheduler=None):
    """The windows of a stream, as
    :func:`~speechbrain_ast.data.audio.iter_windows` cuts a file: window k
    holds samples ``[k hop, k hop + window)`` (seconds rounded to samples
    alike), given when its last block arrives; the last one ends where the
    stream ends. One window is kept in memory (:class:`RingBuffer`).

    Arguments
    ---------
    blocks : iterable of numpy.ndarray
        ``[samples]`` float32 blocks at ``rate`` Hz.
    rate : int
        Samples per second.
    window_s, hop_s : float
        Window length and hop in seconds.
    scheduler : HopScheduler, optional
        Drops late windows (never the last one).

    Yields
    ------
    index, start_s, end_s, wav : int, float, float, numpy.ndarray
        ``k`` (dropped ones skipped), the span in seconds since the stream
        began, the samples.

    Example
    -------
    >>> blocks = [np.zeros(7, np.float32)] * 3
    >>> [(k, s, e, len(w)) for k, s, e, w in stream_windows(blocks, 10, 1, 0.5)]
    [(0, 0.0, 1.0, 10), (1, 0.5, 1.5, 10), (2, 1.0, 2.0, 10), (3, 1.5, 2.1, 6)]
    """
    window = max(1, round(window_s * rate))
    hop = max(1, round(hop_s * rate))
    ring, k = RingBuffer(window), 0
    for block in blocks:
        if scheduler is not None and scheduler.start is None:
            scheduler.begin(len(block) / rate)
        pos = 0
        while pos < len(block):
            # write up to the end of window k, so that it is all kept
            take = min(len(block) - pos, k * hop + window - ring.total)
            ring.write(block[pos : pos + take])
            pos += take
            if ring.total == k * hop + window:
                end_s = ring.total / rate
                if scheduler is None or scheduler.keep(end_s):
                    yield k, k * hop / rate, end_s, ring.latest(window)
                k += 1
    total = ring.total
    if total and k < count_windows(total, window, hop):
        yield k, k * hop / rate, total / rate, ring.latest(total - k * hop)
    if scheduler is not None:
        scheduler.flush()


class FrameStitcher:
    """Frame scores of windows on the stream's time axis, averaged where
    windows overlap, handed on once no later window can change them.
    Column ``g``, centred at ``centre_s + g * step_s``, takes from each
    window the column whose span holds its centre (whatever the hop);
    columns no window covers score 0.

    Arguments
    ---------
    step_s : float
        Seconds between columns (``tstride`` feature frames).
    centre_s : float
        The centre of the first column (half a patch).
    num_classes : int
        Scores per column.

    Example
    -------
    >>> stitch = FrameStitcher(1.0, 0.5, num_classes=1)
    >>> stitch.add(0.0, [0.0, 1.0, 2.0], torch.tensor([[0.25], [0.5]]))
    >>> stitch.add(1.0, [0.0, 1.0, 2.0], torch.tensor([[0.75], [1.0]]))
    >>> first, probs = stitch.pop(before_s=2.0)  # a window may start at 2 s
    >>> first, probs.flatten().tolist()
    (0, [0.25, 0.625])
    >>> first, probs = stitch.pop()  # the end of the stream
    >>> first, probs.flatten().tolist()
    (2, [1.0])
    """

    def __init__(self, step_s, centre_s, num_classes):
        self.step_s, self.centre_s = step_s, centre_s
        self.base = 0  # stream column of sums[0]
        self.sums = np.zeros((0, num_classes), np.float32)
        self.counts = np.zeros(0)

    def _column(self, seconds):
        """The first stream column centred at or after ``seconds``."""
        return math.ceil((seconds - self.centre_s) / self.step_s - 1e-9)

    def add(self, start_s, edges, probs):
        """Adds a window starting at ``start_s``: its columns' ``[n + 1]``
        edges (seconds from its start) and ``[n, classes]`` scores."""
        probs = torch.as_tensor(probs, dtype=torch.float32).cpu().numpy()
        edges = np.asarray(edges, dtype=np.float64) + start_s
        cols = np.arange(
            max(self.base, self._column(edges[0])), self._column(edges[-1])
        )
        centres = self.centre_s + cols * self.step_s
        rows = np.searchsorted(edges, centres + 1e-9, side="right") - 1
        grow = cols[-1] + 1 - self.base - len(self.sums) if len(cols) else 0
        if grow > 0:
            zeros = np.zeros((grow, self.sums.shape[1]), np.float32)
            self.sums = np.concatenate([self.sums, zeros])
            self.counts = np.concatenate([self.counts, np.zeros(grow)])
        self.sums[cols - self.base] += probs[rows]
        self.counts[cols - self.base] += 1

    def pop(self, before_s=None):
        """``(first_column, [n, classes] scores)`` of the columns centred
        before ``before_s``, the earliest start of a later window (all
        columns when None), removed from the stitcher."""
        cut = len(self.sums)
        if before_s is not None:
            cut = min(cut, max(0, self._column(before_s) - self.base))
        probs = self.sums[:cut] / np.maximum(self.counts[:cut], 1)[:, None]
        first = self.base
        self.sums, self.counts = self.sums[cut:], self.counts[cut:]
        self.base += cut
        return first, probs


class EventTracker:
    """The events of a stream's columns (handed on by
    :class:`FrameStitcher`), each given once, as soon as it is complete:
    when a column after it is below threshold and no later column can
    change that column's median (at :meth:`finish`, all). The events are
    :func:`~speechbrain_ast.events.postprocess.scores_to_events`' of all
    columns; only those of events still open (``open``) and half a median
    window before them are kept.

    Arguments
    ---------
    labels : list of str
        Class names.
    edges : callable
        ``edges(n)``: the ``[n + 1]`` edges (seconds) of the first ``n``
        columns.
    thresholds, median_window : float or list, int
        As :func:`~speechbrain_ast.events.postprocess.scores_to_events`.

    Example
    -------
    >>> edges = lambda n: torch.arange(n + 1, dtype=torch.float32)
    >>> tracker = EventTracker(["dog"], edges)
    >>> tracker.add(0, np.array([[0.1], [0.9], [0.9]]))  # still open
    []
    >>> [(e.onset, e.offset) for e in tracker.add(3, np.array([[0.2]]))]
    [(1.0, 3.0)]
    """

    def __init__(self, labels, edges, thresholds=0.5, median_window=1):
        self.labels, self.edges = list(labels), edges
        self.settings = (thresholds, median_window)
        self.half = median_window // 2
        self.base = 0  # stream column of probs[0]
        self.probs = np.zeros((0, len(self.labels)), np.float32)
        self.emitted_until = {}  # label -> offset of its last event given
        self.open = []

    def add(self, first, probs):
        """Appends columns ``first, first + 1, ...``; returns the events
        completed by them."""
        if len(probs) == 0:
            return []
        self.probs = np.concatenate([self.probs, np.asarray(probs)])
        return self._events(final=False)

    def finish(self, end_s):
        """The events still open at the end of the stream, ``end_s``."""
        events = self._events(final=True)
        return [e._replace(offset=min(e.offset, end_s)) for e in events]

    def _events(self, final):
        """Complete events not given yet; trims the columns behind them."""
        n = self.probs.shape[0]
        if n == 0:
            return []
        edges = np.asarray(self.edges(self.base + n))[self.base :].tolist()
        events = scores_to_events(
            self.probs, edges, self.labels, *self.settings
        )
        # the median of the first `half` kept columns sees the cut edge:
        # where they stand, the columns before were inactive
        context = self.half if self.base else 0
        settled = n - 1 - (0 if final else self.half)  # last exact column
        done, self.open = [], []
        cut = settled + 1  # where events not seen yet may begin
        for event in events:
            onset = _column(edges, event.onset)
            end = _column(edges, event.offset)
            if end <= context:
                continue
            if onset < context:
                row = self.probs[context:end, self.labels.index(event.label)]
                onset = context
                event = event._replace(
                    onset=edges[onset], score=float(row.max())
                )
            if final or end <= settled:
                if event.onset >= self.emitted_until.get(event.label, -1):
                    done.append(event)
                    self.emitted_until[event.label] = event.offset
            else:
                self.open.append(event)
                cut = min(cut, onset)
        cut = max(0, cut - self.half)
        self.probs, self.base = self.probs[cut:], self.base + cut
        return done


def _column(edges, seconds):
    """The index of the edge at ``seconds`` (a value taken from edges)."""
    return int(np.searchsorted(edges, seconds - 1e-6))
