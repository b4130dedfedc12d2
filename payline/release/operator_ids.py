"""Flink's operator ids, to name the operators of a refused restore: the uids a job's code
declares, their ids (murmur3_x64_128 as Flink's StreamGraphHasherV2 computes them), and the
ids in Flink's "Cannot map checkpoint/savepoint state for operator X"."""

from __future__ import annotations

import re
import struct
from pathlib import Path


def declared_uids(tree: Path) -> list[str]:
    """The uids a job's code gives its DataStream operators (``.uid("...")``)."""
    found = set()
    for f in (tree / "jobs" / "streaming").glob("*.py"):
        found |= set(re.findall(r"\.uid\(\s*[\"']([^\"']+)[\"']\s*\)", f.read_text()))
    return sorted(found)


def _fmix(k: int) -> int:
    m = 0xFFFFFFFFFFFFFFFF
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & m
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & m
    return k ^ (k >> 33)


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & 0xFFFFFFFFFFFFFFFF


def operator_id(uid: str) -> str:
    """Flink's operator id of a uid: murmur3_x64_128 (seed 0) of its UTF-8 bytes, as Guava
    and Flink's StreamGraphHasherV2 compute it, in hex."""
    m = 0xFFFFFFFFFFFFFFFF
    c1, c2 = 0x87C37B91114253D5, 0x4CF5AD432745937F
    data = uid.encode("utf-8")
    h1 = h2 = 0
    n = len(data) // 16
    for i in range(n):
        k1, k2 = struct.unpack_from("<QQ", data, i * 16)
        k1 = (_rotl((k1 * c1) & m, 31) * c2) & m
        h1 ^= k1
        h1 = (_rotl(h1, 27) + h2) & m
        h1 = (h1 * 5 + 0x52DCE729) & m
        k2 = (_rotl((k2 * c2) & m, 33) * c1) & m
        h2 ^= k2
        h2 = (_rotl(h2, 31) + h1) & m
        h2 = (h2 * 5 + 0x38495AB5) & m
    tail = data[n * 16:]
    k1 = k2 = 0
    for i in range(len(tail) - 1, 7, -1):
        k2 ^= tail[i] << (8 * (i - 8))
    if len(tail) > 8:
        h2 ^= (_rotl((k2 * c2) & m, 33) * c1) & m
    for i in range(min(len(tail), 8) - 1, -1, -1):
        k1 ^= tail[i] << (8 * i)
    if tail:
        h1 ^= (_rotl((k1 * c1) & m, 31) * c2) & m
    h1 ^= len(data)
    h2 ^= len(data)
    h1 = (h1 + h2) & m
    h2 = (h2 + h1) & m
    h1, h2 = _fmix(h1), _fmix(h2)
    h1 = (h1 + h2) & m
    h2 = (h2 + h1) & m
    return struct.pack("<QQ", h1, h2).hex()


def unmatched_operators(message: str) -> list[str]:
    """The operator ids in Flink's "Cannot map checkpoint/savepoint state for operator X"."""
    return sorted(set(re.findall(r"state for operator ([0-9a-f]{32})", message)))


def unmatched_lines(text: str) -> str:
    """Flink's restore errors, kept whole in front of a truncated stack trace."""
    ids = unmatched_operators(text)
    return "".join(f"Cannot map checkpoint/savepoint state for operator {i}. " for i in ids)


def name_operators(ids: list[str], uids: list[str]) -> list[str]:
    by_id = {operator_id(u): u for u in uids}
    return [f"uid {by_id[i]!r}" if i in by_id else f"operator {i} (a uid generated from the "
            f"SQL plan)" for i in ids]
