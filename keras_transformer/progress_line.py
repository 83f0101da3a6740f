"""A progress line for long loops: items done, items/s and time left.

On a terminal the line is redrawn in place (`\\r`) at most 10 times a second, so `update` may be
called often (it costs a clock read); in a log (stderr not a terminal) it prints a plain line every
10 s, so logs stay readable. Time left comes from a fraction done that the caller measures (for a corpus:
bytes read of the input files over their total size), which is known before the number of items is.

Example:
    >>> line = ProgressLine("Encoding", unit="pairs")
    >>> for done, pair in enumerate(pairs, start=1):
    ...     line.update(done, fraction=reader.bytes_read / total_bytes)
    >>> line.close(done)     # Encoding: 1,000,000 pairs, 41,200 pairs/s, 24 s
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO


def format_duration(seconds: float) -> str:
    """`42 s`, `3 min 05 s`, `1 h 02 min`."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class ProgressLine:
    """Reports progress of one loop on `stream` (default stderr).

    Args:
        label: what is being done ("Encoding").
        unit: what is counted ("pairs").
        stream: where to write; None: sys.stderr at each write (so pytest's capture works).
        live: redraw one line in place; None: when the stream is a terminal.
        interval: seconds between writes; None: 0.1 when live, 10 otherwise.
        clock: seconds, monotonic (a fake one in tests).
    """

    def __init__(self, label: str, unit: str = "pairs", stream: TextIO | None = None, live: bool | None = None,
                 interval: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.label, self.unit = label, unit
        self._stream = stream
        self.live = bool(getattr(self.stream, "isatty", lambda: False)()) if live is None else live
        self.interval = (0.1 if self.live else 10.0) if interval is None else interval
        self._clock = clock
        self._start = self._last = clock()
        self._width = 0  # of the last live line, to blank its leftovers

    @property
    def stream(self) -> TextIO:
        return sys.stderr if self._stream is None else self._stream

    def text(self, done: int, fraction: float | None = None) -> str:
        """`Encoding: 120,000 pairs, 40,100 pairs/s, 37% done, 5 s left`."""
        elapsed = max(self._clock() - self._start, 1e-9)
        parts = [f"{self.label}: {done:,} {self.unit}", f"{done / elapsed:,.0f} {self.unit}/s"]
        if fraction is not None and 0 < fraction < 1:
            parts += [f"{fraction:.0%} done", f"{format_duration(elapsed * (1 - fraction) / fraction)} left"]
        return ", ".join(parts)

    def update(self, done: int, fraction: float | None = None) -> None:
        """Writes the line if `interval` has passed since the last write."""
        now = self._clock()
        if now - self._last < self.interval:
            return
        self._last = now
        self._write(self.text(done, fraction), final=False)

    def close(self, done: int) -> None:
        """The last line: the total and the rate over the whole loop, then a newline."""
        elapsed = self._clock() - self._start
        self._write(f"{self.text(done)}, {format_duration(elapsed)}", final=True)

    def _write(self, text: str, final: bool) -> None:
        if self.live:
            self.stream.write("\r" + text.ljust(self._width) + ("\n" if final else ""))
            self._width = 0 if final else len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
