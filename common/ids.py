import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_last_counter = 0
_COUNTER_BITS = 74  # rand_a (12 bits) and rand_b (62 bits) of RFC 9562


def uuid7() -> uuid.UUID:
    """Time-ordered UUID (RFC 9562 v7): sorting by id follows creation order.

    Within one process ids are strictly increasing, also inside one millisecond (the 74
    random bits then act as a counter, RFC 9562 section 6.2 method 2) and if the clock
    steps back; across processes they are ordered to the millisecond.
    """
    global _last_ms, _last_counter
    ms = time.time_ns() // 1_000_000
    counter = int.from_bytes(os.urandom(10), "big") >> (80 - _COUNTER_BITS)
    with _lock:
        if ms <= _last_ms:
            ms, counter = _last_ms, _last_counter + 1
            if counter >> _COUNTER_BITS:  # counter exhausted: borrow the next millisecond
                ms, counter = ms + 1, 0
        _last_ms, _last_counter = ms, counter
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= (counter >> 62) << 64
    value |= 0b10 << 62
    value |= counter & ((1 << 62) - 1)
    return uuid.UUID(int=value)
