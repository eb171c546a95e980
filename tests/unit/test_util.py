"""The shared helpers: seconds(), rss_bytes(), call_with_timeout()."""

from __future__ import annotations

import contextvars
import math
import os
import threading
import time

import pytest

from otel_tdd._util import ThreadCall, call_with_timeout, rss_bytes, seconds, start_call


@pytest.mark.parametrize("value", [0.5, 3, 1e-9])
def test_seconds_accepts_positive_finite_numbers(value: float) -> None:
    assert seconds("timeout_s", value) == float(value)


@pytest.mark.parametrize(
    ("value", "error"),
    [(0, ValueError), (-1, ValueError), (math.inf, ValueError), (math.nan, ValueError),
     (True, TypeError), ("5", TypeError), (None, TypeError)],
)  # fmt: skip
def test_seconds_names_the_argument_and_what_is_accepted(value: object, error: type) -> None:
    with pytest.raises(error, match=r"^timeout_s=.* is invalid: expected a number of seconds > 0$"):
        seconds("timeout_s", value)


def test_seconds_allow_zero_takes_zero_and_still_refuses_negatives() -> None:
    assert seconds("drain_s", 0, allow_zero=True) == 0.0
    with pytest.raises(ValueError, match="expected a number of seconds >= 0"):
        seconds("drain_s", -0.1, allow_zero=True)


def test_rss_bytes_is_this_processes_resident_memory() -> None:
    rss = rss_bytes()
    assert rss is not None
    with open("/proc/self/status") as status:  # the kernel's own figure, in kB
        vm_rss = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
    # The two readings are a few instructions apart; allow 16 MB of drift either way.
    assert abs(rss - vm_rss) < 16 * 1024 * 1024
    assert rss % os.sysconf("SC_PAGE_SIZE") == 0


def test_call_with_timeout_returns_the_value_error_and_duration() -> None:
    ok = call_with_timeout(lambda: 42, 5, name="t-ok")
    assert (ok.done.is_set(), ok.value, ok.error) == (True, 42, None)
    assert ok.duration_s >= 0

    def exits() -> None:
        raise SystemExit(3)

    failed = call_with_timeout(exits, 5, name="t-exit")
    assert failed.done.is_set()
    assert isinstance(failed.error, SystemExit)
    assert failed.value is None


def test_call_with_timeout_gives_up_on_a_hung_call_and_leaves_it_running() -> None:
    release = threading.Event()
    started = time.monotonic()
    call = call_with_timeout(lambda: release.wait(30), 0.1, name="t-hang")
    try:
        assert not call.done.is_set()
        assert time.monotonic() - started < 5  # bounded, not a benchmark
        thread = next(t for t in threading.enumerate() if t.name == "t-hang")
        assert thread.daemon  # a hung call must not keep the process from exiting
    finally:
        release.set()
    assert call.wait(5)
    assert call.value is True


def test_a_call_runs_in_a_copy_of_the_starters_context_and_on_done_follows_done() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    token = var.set("caller")
    seen: list[tuple[str, bool]] = []
    finished = threading.Event()

    def on_done(call: ThreadCall[str]) -> None:
        seen.append(("on_done", call.done.is_set()))
        finished.set()

    try:
        call = start_call(lambda: (var.get(), var.set("inner"))[0], name="t-ctx", on_done=on_done)
        assert finished.wait(5)
        assert var.get() == "caller"  # the call's own set() stayed in its copy
    finally:
        var.reset(token)
    assert call.value == "caller"
    assert seen == [("on_done", True)]
