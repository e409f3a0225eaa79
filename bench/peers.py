"""keyshield (PyPI release, pinned in requirements-bench.txt), timed the way bench/authorizer.py times
keygate: ``verify_key`` through ``ApiKeyService`` and ``CachedApiKeyService``, in-memory repository,
the same Argon2id parameters, the key verified once before timing.

keyshield adds a random 100-300 ms sleep to every answer by default (against timing signals); it is
set to 0 here, so these figures are its compute, as keygate's are.
"""

import asyncio
import time

from argon2 import PasswordHasher
from keyshield import ApiKeyService
from keyshield.hasher.argon2 import Argon2ApiKeyHasher
from keyshield.repositories.in_memory import InMemoryApiKeyRepository
from keyshield.services.cached import CachedApiKeyService

from keygate.hashing import HASH_BYTES, SALT_BYTES, Argon2Params


def keyshield_samples(params: Argon2Params, rounds: int) -> dict[str, list[float]]:
    """Milliseconds per verify_key, for each of keyshield's two services."""

    async def run() -> dict[str, list[float]]:
        results = {}
        for label, service_class in (("ApiKeyService", ApiKeyService), ("CachedApiKeyService", CachedApiKeyService)):
            hasher = Argon2ApiKeyHasher(
                pepper="p" * 64,
                password_hasher=PasswordHasher(
                    time_cost=params.time_cost, memory_cost=params.memory_kib, parallelism=params.parallelism,
                    hash_len=HASH_BYTES, salt_len=SALT_BYTES,
                ),
            )  # fmt: skip
            service = service_class(repo=InMemoryApiKeyRepository(), hasher=hasher, min_delay=0, max_delay=0)
            _, api_key = await service.create(name="bench")
            await service.verify_key(api_key)  # warm, and fills the cached service's cache
            samples = []
            for _ in range(rounds):
                started = time.perf_counter()
                await service.verify_key(api_key)
                samples.append((time.perf_counter() - started) * 1000)
            results[label] = samples
        return results

    return asyncio.run(run())
