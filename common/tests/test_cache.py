"""common/cache.py: the shop's Redis cache keeps one client per connection pool and behaves
as Django's own backend, from many threads at once."""

import threading

import pytest
from django.core.cache import cache, caches

from common.cache import RedisCache


def test_the_shops_cache_is_the_one_client_per_pool_backend():
    backend = caches["default"]
    assert isinstance(backend, RedisCache)
    client = backend._cache.get_client("a")
    assert backend._cache.get_client("b", write=True) is client  # no client built per call
    assert client.connection_pool is backend._cache._get_connection_pool(True)


def test_many_threads_share_the_client_and_each_reads_its_own_writes():
    cache.clear()
    errors: list[str] = []
    start = threading.Barrier(16)

    def work(n: int) -> None:
        start.wait()
        for i in range(200):
            cache.set(f"t{n}:{i}", (n, i), 30)
            if cache.get(f"t{n}:{i}") != (n, i):
                errors.append(f"thread {n} read another value at {i}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert cache.get_many([f"t{n}:199" for n in range(16)]) == {f"t{n}:199": (n, 199) for n in range(16)}


@pytest.mark.parametrize("value", [0, "text", {"a": [1, 2]}, b"\x00bytes"])
def test_values_round_trip_as_with_djangos_backend(value):
    cache.set("round-trip", value, 30)
    assert cache.get("round-trip") == value
    assert cache.delete("round-trip") is True
    assert cache.get("round-trip", "gone") == "gone"
