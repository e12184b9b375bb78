"""eventually and wait_until: a condition polled against a deadline."""

from __future__ import annotations

import threading

import pytest

from tests.support.wait import eventually, wait_until


async def test_a_plain_predicate_is_polled_until_true() -> None:
    calls: list[int] = []

    def third_time() -> bool:
        calls.append(1)
        return len(calls) >= 3

    took = await eventually(third_time, 5, "the third call")
    assert len(calls) == 3 and 0 <= took < 5


async def test_an_async_predicate_is_awaited() -> None:
    calls: list[int] = []

    async def second_time() -> bool:
        calls.append(1)
        return len(calls) >= 2

    await eventually(second_time, 5, "the second call")
    assert len(calls) == 2


async def test_a_timeout_names_what_it_waited_for_and_the_detail() -> None:
    with pytest.raises(AssertionError, match=r"timed out after 0.05s waiting for the moon: still dark"):
        await eventually(lambda: False, 0.05, "the moon", interval_s=0.01, detail=lambda: ": still dark")


async def test_alive_ends_the_wait_early() -> None:
    def dead() -> None:
        raise AssertionError("the process exited")

    with pytest.raises(AssertionError, match="the process exited"):
        await eventually(lambda: False, 30, "never", alive=dead)


def test_wait_until_blocks_until_another_thread_sets_the_condition() -> None:
    done = threading.Event()
    threading.Timer(0.05, done.set).start()
    took = wait_until(done.is_set, 5, "the timer")
    assert done.is_set() and took >= 0.04


def test_wait_until_times_out_with_the_same_message() -> None:
    with pytest.raises(AssertionError, match=r"timed out after 0.05s waiting for the timer"):
        wait_until(lambda: False, 0.05, "the timer")
