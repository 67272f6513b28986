"""cProfile of a whole local stand-in process, every thread included (`make profile`).

With `AFTERCARE_PROFILE_DIR` set, a worker (or the IoT rules bridge) profiles itself from the
moment its spec is read until it is asked to stop or sent `SIGUSR1`, and writes
`<label>-<pid>.prof` (pstats format) there at once: a busy worker can take longer to stop than
the stack's grace period and be killed, so `make profile` asks for the dumps and waits for them
before it stops the stack. Without the variable nothing is installed. The moto
servers have their own switch (`infra.local.motoserver`: only the serial work under their lock).

cProfile follows one thread per profiler on Python 3.11 (`sys.setprofile`), so each thread the
process starts through `threading` gets a profiler of its own (`threading.setprofile` runs the
hook in the new thread before its target) and the dump merges them. From 3.12 cProfile uses
`sys.monitoring`, which sees every thread: there the first profiler covers them all.

The profilers keep cProfile's wall clock: a thread's CPU clock (`time.thread_time`) would make
own time CPU time, but it is a system call (~4 us here), which made a profiled stack cost three
times the CPU of the wall-clock profile and fall far behind its load. So the built-ins that
wait (a long poll's socket read, `select`, a lock, a sleep) carry wall time; the report sets
them apart (`infra.bench.profile_report.WAITING`).
"""

from __future__ import annotations

import cProfile
import os
import pstats
import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

PROFILE_VARIABLE = "AFTERCARE_PROFILE_DIR"
_SEES_EVERY_THREAD = sys.version_info >= (3, 12)  # cProfile on sys.monitoring


class ThreadProfiles:
    """One cProfile per running thread, started here and in every later `threading` thread.

    A thread that has ended hands its profiler on to the next new thread: the workers start a
    short-lived thread per SQS batch (the lease renewal), and a profiler per thread ever
    started made thousands to merge at the dump, longer than the stack waits for a stopping
    process. A profiler is only ever enabled in one running thread."""

    def __init__(self) -> None:
        self._main: cProfile.Profile | None = None
        self._threads: list[tuple[threading.Thread, cProfile.Profile]] = []  # last owner
        self._lock = threading.Lock()

    def start(self) -> None:
        self._main = self._enabled()
        if not _SEES_EVERY_THREAD:
            threading.setprofile(self._in_new_thread)

    def _in_new_thread(self, _frame: FrameType, _event: str, _arg: Any) -> None:
        # Runs once, in the new thread: its profiler replaces this hook.
        with self._lock:
            free = next(
                (i for i, (owner, _) in enumerate(self._threads) if not owner.is_alive()), None
            )
            if free is None:
                profiler = cProfile.Profile()
                self._threads.append((threading.current_thread(), profiler))
            else:
                profiler = self._threads[free][1]
                self._threads[free] = (threading.current_thread(), profiler)
        profiler.enable()

    @staticmethod
    def _enabled() -> cProfile.Profile:
        profiler = cProfile.Profile()
        profiler.enable()
        return profiler

    def stop(self) -> pstats.Stats | None:
        """Stop profiling and merge every thread's figures (None when nothing was recorded).

        `disable()` acts on the calling thread: another thread's profiler keeps recording while
        its figures so far are read (its thread may still run), which only the dump sees."""
        threading.setprofile(None)
        if self._main is None:
            return None
        self._main.disable()
        with self._lock:
            others = [profiler for _, profiler in self._threads]
        merged: pstats.Stats | None = None
        for profiler in [self._main, *others]:
            profiler.disable()  # a thread may still run: its figures so far are merged
            profiler.create_stats()
            if not profiler.stats:  # set by create_stats
                continue  # a thread that called nothing (pstats refuses an empty profile)
            if merged is None:
                merged = pstats.Stats(profiler)
            else:
                merged.add(profiler)
        return merged


def profile_path(directory: Path, label: str, pid: int) -> Path:
    """Where a process's profile goes: the label says what it is, the pid which process."""
    return directory / f"{label}-{pid}.prof"


def pid_of(path: Path) -> int | None:
    """The pid of a `profile_path` (None for another file name)."""
    tail = path.stem.rpartition("-")[2]
    return int(tail) if tail.isdigit() else None


DUMP_SIGNAL = signal.SIGUSR1  # "write your profile now" (`make profile`, before the stack stops)


class _Dump:
    """Writes the profiles once: on `DUMP_SIGNAL`, when `stop` is set (from a thread of its
    own) or at the end of the block, whichever comes first. The file appears complete (written
    under another name, then renamed): the harness waits for it."""

    def __init__(self, profiles: ThreadProfiles, path: Path) -> None:
        self._profiles = profiles
        self._path = path
        self._lock = threading.Lock()
        self._done = False
        self._previous_handler: Any = None

    def __call__(self) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
            stats = self._profiles.stop()
            if stats is not None:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                partial = self._path.with_suffix(".partial")
                stats.dump_stats(partial)
                partial.rename(self._path)

    def on(self, stop: threading.Event | None) -> None:
        """Dump from a thread of its own when `stop` is set or `DUMP_SIGNAL` arrives (the
        handler is installed here: call from the main thread)."""
        wanted = threading.Event()
        self._previous_handler = signal.signal(DUMP_SIGNAL, lambda _signum, _frame: wanted.set())

        def dump_when_wanted() -> None:
            while not wanted.wait(0.2):
                if self._done or (stop is not None and stop.is_set()):
                    break
            self()

        threading.Thread(target=dump_when_wanted, name="profile-dump", daemon=True).start()

    def restore_signal(self) -> None:
        signal.signal(DUMP_SIGNAL, self._previous_handler or signal.SIG_DFL)


@contextmanager
def profiled(
    label: str, stop: threading.Event | None = None, environ: Mapping[str, str] = os.environ
) -> Iterator[None]:
    """Profile the process's threads while the block runs (until `stop` is set, if given),
    when `AFTERCARE_PROFILE_DIR` says where to write the result; a no-op otherwise."""
    directory = environ.get(PROFILE_VARIABLE)
    if not directory:
        yield
        return
    profiles = ThreadProfiles()
    profiles.start()
    dump = _Dump(profiles, profile_path(Path(directory), label, os.getpid()))
    dump.on(stop)
    try:
        yield
    finally:
        dump()
        dump.restore_signal()
