"""The seed scheme: which seed drives every sample of a run, for every engine and stage.

A stage of a shard gets a seed hashed from (run seed, shard, stage). Within a stage call,
conversation i with n samples owns the n consecutive seeds

    stage seed + i·n + j,   j = 0 … n−1

so no two samples of a run share a seed. vLLM (offline and its OpenAI server) gives the j-th
of the n samples of a request seeded s the seed s + j, so a request is sent with seed
`request_seed(base, i, n)` and its samples land exactly on the scheme; Ray sends each sample as
its own row with `sample_seed`. transformers draws a whole micro-batch from one generator: the
hf engine seeds it with the scheme's seed of the batch's first conversation and records each
answer's row in the batch beside that seed.

The scheme before issue 14 gave request i the seed `base + i`, so answer j+1 of prompt i and
answer j of prompt i+1 shared a seed (and their sampling noise); runs written with it are not
resumed (`SEED_SCHEME` is recorded in the manifest).
"""

from __future__ import annotations

import hashlib

SEED_SCHEME = "stage-sha256/62 + i*n + j"  # recorded in the manifest; resume refuses another
SEED_BITS = 62  # stage seeds spread over 2^62: two stages' ranges (N·K seeds each) overlap
# with probability ~2·N·K / 2^62 per pair, negligible for any run (a 31-bit base collided in
# ~17 % of 100k-persona runs); torch, vLLM, servers and Arrow's int64 all take such seeds


def stage_seed(seed: int, shard: int, stage: str) -> int:
    """A seed per (run, shard, stage): a resumed shard replays exactly the same sampling."""
    digest = hashlib.sha256(f"{seed}:{shard}:{stage}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << SEED_BITS) - 1)


def request_seed(base: int | None, index: int, n: int) -> int | None:
    """Seed of conversation `index`'s request for `n` samples (its first sample's seed)."""
    return None if base is None else base + index * n


def sample_seed(base: int | None, index: int, n: int, j: int) -> int | None:
    """Seed of sample `j` of conversation `index` when each sample is its own request."""
    return None if base is None else base + index * n + j
