"""The failure limiter's promises, for any sequence of failures: no key gets more than its
bucket plus what refilled, a key that waits ``Retry-After`` may try again, memory stays
bounded."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from collector.http.ratelimit import FailureLimiter

events = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.floats(0, 30, allow_nan=False)),
    max_size=200,
)


@settings(max_examples=200, deadline=None)
@given(capacity=st.integers(1, 20), window=st.integers(1, 600), seq=events)
def test_a_key_never_fails_more_than_its_bucket_and_refill(
    capacity: int, window: int, seq: list[tuple[str, float]]
) -> None:
    lim = FailureLimiter(capacity, window, max_tracked=100)
    now = 0.0
    allowed: dict[str, int] = {}
    for key, dt in seq:
        now += dt
        if lim.retry_after(key, now) is None:
            lim.failed(key, now)
            allowed[key] = allowed.get(key, 0) + 1
    for n in allowed.values():
        assert n <= capacity + now * capacity / window + 1e-9


@settings(max_examples=200, deadline=None)
@given(capacity=st.integers(1, 20), window=st.integers(1, 600), n=st.integers(0, 60))
def test_waiting_retry_after_is_enough(capacity: int, window: int, n: int) -> None:
    lim = FailureLimiter(capacity, window, max_tracked=100)
    for _ in range(n):
        lim.failed("k", 0.0)
    wait = lim.retry_after("k", 0.0)
    if n < capacity:
        assert wait is None
    else:
        assert wait is not None and wait > 0
        assert lim.retry_after("k", wait + 1e-6) is None


@settings(max_examples=200, deadline=None)
@given(keys=st.lists(st.text(max_size=8), max_size=300), cap=st.integers(1, 50))
def test_memory_is_bounded(keys: list[str], cap: int) -> None:
    lim = FailureLimiter(3, 60, max_tracked=cap)
    for k in keys:
        lim.failed(k, 0.0)
        assert len(lim) <= cap
