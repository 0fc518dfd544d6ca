"""The one backoff formula of every retrying job (invoice numbering, webhook deliveries)."""

import random


def backoff_s(*, retries: int, base_s: float, max_s: float) -> float:
    """Exponential backoff with a cap and "equal jitter": half fixed, half random, so retries
    of many jobs spread out instead of arriving together. `retries` counts earlier failures."""
    ceiling = min(max_s, base_s * (2 ** min(max(retries, 0), 32)))
    return ceiling / 2 + random.uniform(0, ceiling / 2)
