"""`make profile`'s pieces: the processes' profile switch (every thread, or nothing at all) and
bench/profile.md from the dumps (merging by process, shortened names, tables per fault)."""

from __future__ import annotations

import os
import pstats
import signal
import sys
import sysconfig
import threading
import time
from pathlib import Path

from infra.bench.profile_report import (
    ProfileRun,
    describe,
    load_by_process,
    render,
    shorten,
    top_rows,
)
from infra.local.profiling import (
    DUMP_SIGNAL,
    PROFILE_VARIABLE,
    ThreadProfiles,
    pid_of,
    profile_path,
    profiled,
)


def _spin_in_thread() -> None:
    total = 0
    for value in range(20_000):
        total += value * value


def _spin_in_main() -> None:
    total = 0
    for value in range(20_000):
        total -= value


def _functions(stats: pstats.Stats) -> set[str]:
    return {name for (_file, _line, name) in stats.stats}  # type: ignore[attr-defined]


# ---- the processes' switch ----------------------------------------------------------------


def test_without_the_variable_nothing_is_profiled_or_written(tmp_path):
    # Given no AFTERCARE_PROFILE_DIR
    with profiled("SomeFunction", environ={}):
        # Then no profiler is installed while the process runs
        assert sys.getprofile() is None
        assert threading.getprofile() is None
    assert list(tmp_path.iterdir()) == []


def test_every_thread_is_profiled_and_merged_into_one_dump(tmp_path):
    # Given the switch on
    with profiled("SomeFunction", environ={PROFILE_VARIABLE: str(tmp_path)}):
        # When the main thread and a thread started meanwhile both work
        worker = threading.Thread(target=_spin_in_thread)
        worker.start()
        worker.join()
        _spin_in_main()
    # Then one dump, named for the label and the process, holds both threads' functions
    dump = profile_path(tmp_path, "SomeFunction", os.getpid())
    assert [p.name for p in tmp_path.iterdir()] == [dump.name]
    assert {"_spin_in_thread", "_spin_in_main"} <= _functions(pstats.Stats(str(dump)))
    # and the hooks are gone afterwards
    assert threading.getprofile() is None


def test_threads_that_have_ended_hand_their_profiler_on(tmp_path):
    # Given the switch on
    profiles = ThreadProfiles()
    profiles.start()
    try:
        # When 20 short threads run one after the other
        for _ in range(20):
            worker = threading.Thread(target=_spin_in_thread)
            worker.start()
            worker.join()
        held = len(profiles._threads)
    finally:
        stats = profiles.stop()
    # Then one profiler served them all, and it saw every thread's work
    assert held == 1
    assert stats is not None
    calls = {name: figures[1] for (_f, _l, name), figures in stats.stats.items()}  # type: ignore[attr-defined]
    assert calls["_spin_in_thread"] == 20


def test_the_dump_is_written_as_soon_as_the_process_is_asked_to_stop(tmp_path):
    # Given a profiled process told how it is asked to stop
    stop = threading.Event()
    dump = profile_path(tmp_path, "SomeFunction", os.getpid())
    with profiled("SomeFunction", stop, environ={PROFILE_VARIABLE: str(tmp_path)}):
        _spin_in_main()
        # When it is asked to stop (a long poll may still keep it from returning)
        stop.set()
        deadline = time.monotonic() + 10
        while not dump.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        # Then its profile is already written
        assert "_spin_in_main" in _functions(pstats.Stats(str(dump)))
        written = dump.stat().st_mtime_ns
    # and not written again when the block ends
    assert dump.stat().st_mtime_ns == written


def test_the_dump_signal_writes_the_profile_while_the_process_runs_on(tmp_path):
    # Given a profiled process (the harness asks for its dump before the stack stops)
    before = signal.getsignal(DUMP_SIGNAL)
    dump = profile_path(tmp_path, "SomeFunction", os.getpid())
    with profiled("SomeFunction", threading.Event(), environ={PROFILE_VARIABLE: str(tmp_path)}):
        _spin_in_main()
        # When it gets the dump signal
        os.kill(os.getpid(), DUMP_SIGNAL)
        deadline = time.monotonic() + 10
        while not dump.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        # Then its profile is written, complete, without stopping it
        assert "_spin_in_main" in _functions(pstats.Stats(str(dump)))
    # and the signal's previous handling is back afterwards
    assert signal.getsignal(DUMP_SIGNAL) == before
    assert [p.name for p in tmp_path.iterdir()] == [dump.name]


def test_a_dump_is_found_by_the_pid_in_its_name(tmp_path):
    assert pid_of(profile_path(tmp_path, "moto-4566", 1234)) == 1234
    assert pid_of(profile_path(tmp_path, "FaultIntakeFunction", 77)) == 77
    assert pid_of(tmp_path / "notes.prof") is None


# ---- the report ---------------------------------------------------------------------------


def _dump(directory: Path, label: str, pid: int, work) -> None:
    with profiled(label, environ={PROFILE_VARIABLE: str(directory)}):
        work()
    # profiled() names the file for this process: rename it for the pid being simulated
    profile_path(directory, label, os.getpid()).rename(profile_path(directory, label, pid))


def test_dumps_are_merged_by_process_and_strangers_left_out(tmp_path):
    # Given two dumps of one process (e.g. the server was restarted) and one of a process the
    # stack does not know
    _dump(tmp_path, "moto-1", 11, _spin_in_main)
    _dump(tmp_path, "moto-2", 11, _spin_in_thread)
    _dump(tmp_path, "Other", 99, _spin_in_main)
    # When they are loaded by the stack's pids
    found = load_by_process(tmp_path, {"moto-dynamodb": 11, "NotifierFunction": 12})
    # Then the one process has both dumps' functions, and nothing else is there
    assert list(found) == ["moto-dynamodb"]
    assert {"_spin_in_main", "_spin_in_thread"} <= _functions(found["moto-dynamodb"])


def test_file_names_are_shortened_to_what_a_reader_recognises():
    roots = ["/work/repo"]
    assert shorten("/x/.venv/lib/python3.11/site-packages/moto/core/utils.py", roots) == (
        "moto/core/utils.py"
    )
    assert shorten("/work/repo/infra/local/streams.py", roots) == "infra/local/streams.py"
    assert shorten("/elsewhere/thing.py", roots) == "/elsewhere/thing.py"
    stdlib = sysconfig.get_paths()["stdlib"]
    assert shorten(f"{stdlib}/json/decoder.py") == "<stdlib>/json/decoder.py"
    assert describe(("~", 0, "<built-in method builtins.sum>")) == "<built-in method builtins.sum>"
    assert describe(("/work/repo/a.py", 12, "f"), roots) == "a.py:12(f)"


def _stats(table: dict) -> pstats.Stats:
    stats = pstats.Stats()
    stats.stats = table  # type: ignore[attr-defined]
    stats.total_tt = sum(figures[2] for figures in table.values())  # type: ignore[attr-defined]
    return stats


def test_rows_are_ranked_and_given_per_fault_without_the_waits():
    # Given a profile where `parse` has the most own time (after a socket read, which waits)
    # and `handler` the most cumulative
    stats = _stats(
        {
            ("/r/h.py", 1, "handler"): (1, 1, 0.1, 3.0, {}),
            ("/r/p.py", 5, "parse"): (40, 40, 2.0, 2.0, {}),
            ("/r/e.py", 9, "encode"): (10, 10, 0.5, 0.9, {}),
            ("~", 0, "<method 'recv_into' of '_socket.socket' objects>"): (9, 9, 2.5, 2.5, {}),
        }
    )
    # When the top two are taken for 100 faults
    own = top_rows(stats, 100, by="own", limit=2, roots=["/r"])
    cumulative = top_rows(stats, 100, by="cumulative", limit=2, roots=["/r"])
    # Then they are ordered by the asked column, in ms per fault
    assert [row.where for row in own] == ["p.py:5(parse)", "e.py:9(encode)"]
    assert own[0].own_ms == 20.0 and own[0].calls == 40
    assert [row.where for row in cumulative] == ["h.py:1(handler)", "p.py:5(parse)"]
    assert cumulative[0].cumulative_ms == 30.0


def test_the_report_tables_the_costliest_profiled_processes():
    # Given /proc figures for three processes, two of them profiled
    phase = {
        "rate": 20.0,
        "faults": 100,
        "achieved_rate": 20.0,
        "faults_processed": 100,
        "fault_to_ticket": {"p50_s": 0.7, "p99_s": 1.3},
        "cpu_ms_per_fault": {
            "moto-dynamodb": 50.0,
            "mosquitto": 2.0,
            "Notifier": 20.0,
            "total": 72.0,
        },
    }
    profiles = {
        "moto-dynamodb": _stats({("/r/m.py", 3, "get_item"): (5, 5, 4.0, 4.0, {})}),
        "Notifier": _stats(
            {
                ("/r/n.py", 7, "send"): (5, 5, 1.0, 1.5, {}),
                ("~", 0, "<method 'recv_into' of '_socket.socket' objects>"): (9, 9, 3.0, 3.0, {}),
            }
        ),
    }
    # When only the costliest profiled process gets tables
    text = render(ProfileRun("Taken now.", phase, profiles), processes=1, limit=5)
    # Then every process has its CPU line, the profiled ones their profiled share
    # (a socket read's wait is not counted as profiled CPU)
    assert "| moto-dynamodb | 50.00 | 40.0 |" in text
    assert "| Notifier | 20.00 | 10.0 |" in text
    assert "| mosquitto | 2.00 | - |" in text
    assert "| **total** | **72.00** |" in text
    assert "700/1300 ms" in text
    # and only moto-dynamodb has function tables
    assert "## moto-dynamodb" in text and "## Notifier" not in text
    assert "get_item" in text and "(send)" not in text
