"""Partition keys of the per-source assets: a source's name, or `<name>~<k>` for shard k of a sharded source.

A sharded source (`shards: N`) is N partitions, each holding the files whose path hashes to it, so its shards
run as separate runs (several processes, or several pods on Kubernetes) and `splits` merges them. A file's
shard depends only on its own path, so it never moves when other files arrive.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

SHARD_MARK = "~"  # not allowed in source names (slugs), so a key parses one way only


@dataclass(frozen=True)
class SourcePartition:
    """One partition of a source: the whole source (`shards == 1`) or one of its shards."""

    source: str
    shard: int = 0
    shards: int = 1

    @property
    def key(self) -> str:
        return self.source if self.shards == 1 else f"{self.source}{SHARD_MARK}{self.shard}"

    def holds(self, rel_path: str) -> bool:
        """Whether the item at `rel_path` belongs here (items of one file, `file#k`, share its shard)."""
        return self.shards == 1 or shard_of(rel_path.split("#", 1)[0], self.shards) == self.shard


def shard_of(file_path: str, shards: int) -> int:
    return int.from_bytes(hashlib.blake2s(file_path.encode(), digest_size=8).digest(), "big") % shards


def source_partitions(source: str, shards: int) -> list[SourcePartition]:
    return [SourcePartition(source, k, shards) for k in range(shards)]


def source_of_key(key: str) -> str:
    """The source a partition key belongs to."""
    return key.split(SHARD_MARK, 1)[0]
