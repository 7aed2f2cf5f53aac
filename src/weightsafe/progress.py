"""Progress reporting for long transfers and hashes: tqdm bars on a terminal, plain lines in logs.

The library calls these hooks from worker threads; it never prints. Each reporter is
thread-safe. The CLI picks one: bars when stderr is a terminal, lines otherwise, none with
--quiet or --json.
"""

from __future__ import annotations

import sys
import threading
import time


class Progress:
    """The hooks a pull or a verify calls. The base class ignores them all."""

    def start(self, total_bytes: int, files: int) -> None: ...

    def file_start(self, path: str, size: int | None) -> None: ...

    def advance(self, path: str, n: int) -> None: ...

    def file_end(self, path: str, status: str) -> None: ...

    def retry(self, message: str) -> None:
        """A request or transfer is being retried (called from worker threads)."""

    def close(self) -> None: ...


class RetryLines(Progress):
    """No progress, but every retry as one line: what ``--json`` runs show on stderr."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr

    def retry(self, message):
        print(f"weightsafe: retry: {message}", file=self.stream, flush=True)


class TqdmProgress(Progress):
    """An overall byte bar plus one bar per file in flight."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self._lock = threading.Lock()
        self._bars: dict = {}
        self._total = None

    def start(self, total_bytes, files):
        from tqdm import tqdm

        self._total = tqdm(total=total_bytes, unit="B", unit_scale=True, unit_divisor=1024,
                           desc=f"{files} file(s)", file=self.stream, position=0, dynamic_ncols=True)

    def file_start(self, path, size):
        from tqdm import tqdm

        with self._lock:
            self._bars[path] = tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024,
                                    desc=path[-40:], file=self.stream, leave=False, dynamic_ncols=True)

    def advance(self, path, n):
        with self._lock:
            bar = self._bars.get(path)
            if bar is not None:
                bar.update(n)
            if self._total is not None:
                self._total.update(n)

    def retry(self, message):
        from tqdm import tqdm

        with self._lock:
            tqdm.write(f"weightsafe: retry: {message}", file=self.stream)

    def file_end(self, path, status):
        with self._lock:
            bar = self._bars.pop(path, None)
            if bar is not None:
                bar.close()

    def close(self):
        with self._lock:
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()
            if self._total is not None:
                self._total.close()
                self._total = None


class LineProgress(Progress):
    """Plain lines for logs: one when a file starts and ends, and a byte count every few seconds."""

    def __init__(self, stream=None, every: float = 10.0, stop: threading.Event | None = None):
        self.stream = stream or sys.stderr
        self.every = every
        self.stop = stop  # once set (Ctrl-C), workers winding down print nothing more
        self._lock = threading.Lock()
        self._done = 0
        self._total = 0
        self._last = time.monotonic()

    def _say(self, text: str) -> None:
        if self.stop is None or not self.stop.is_set():
            print(text, file=self.stream, flush=True)

    def start(self, total_bytes, files):
        self._total = total_bytes
        self._say(f"fetching {files} file(s), {total_bytes / 1e6:.1f} MB")

    def file_start(self, path, size):
        with self._lock:
            self._say(f"  get  {path}" + (f" ({size / 1e6:.1f} MB)" if size else ""))

    def advance(self, path, n):
        with self._lock:
            self._done += n
            now = time.monotonic()
            if now - self._last >= self.every and self._total:
                self._last = now
                self._say(f"  {self._done / 1e6:.1f} / {self._total / 1e6:.1f} MB "
                          f"({100 * self._done / self._total:.0f}%)")

    def file_end(self, path, status):
        with self._lock:
            self._say(f"  {'done' if status == 'ok' else status:4} {path}")

    def retry(self, message):
        with self._lock:
            self._say(f"weightsafe: retry: {message}")
