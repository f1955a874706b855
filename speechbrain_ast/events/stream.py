"""Live tagging: from a stream of audio blocks
(:mod:`speechbrain_ast.events.sources`) to the windows a model scores, and
their frame scores on one time axis.

:func:`stream_windows` keeps the last window in a
:class:`~speechbrain_ast.events.sources.RingBuffer` and cuts the windows
that :func:`~speechbrain_ast.data.audio.iter_windows` cuts from a file, so
a stream scores as the recording does offline; its :class:`HopScheduler`
drops (and reports) windows that fall behind real time. A
:class:`FrameStitcher` averages overlapping windows' frame scores on the
stream's time axis, and an :class:`EventTracker` gives each event once it
is complete.

Authors
 * speechbrain-ast developers
"""

import math
import time

import numpy as np
import torch

from speechbrain_ast.data.audio import count_windows
from speechbrain_ast.events.postprocess import scores_to_events
from speechbrain_ast.events.sources import RingBuffer

__all__ = ["EventTracker", "FrameStitcher", "HopScheduler", "stream_windows"]


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
