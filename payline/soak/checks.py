"""What the soak counts after the traffic: every record of every topic in the raw log exactly
once, no exactly-once output holding a record twice (the identities of docs/contract.md#outputs),
and the table of faults and figures it prints."""

from __future__ import annotations

import json
from collections import Counter

from jobs.archiver import read_lake
from payline import kafka_admin
from payline.soak.plan import KINDS
from runtime.settings import Config


def latest_checkpoint(cfg: Config, job_id: str) -> str | None:
    """The newest complete retained checkpoint of ``job_id`` (its _metadata written)."""
    root = cfg.paths.checkpoints_dir / "checkpoints" / job_id
    done = [d for d in root.glob("chk-*") if (d / "_metadata").is_file()]
    if not done:
        return None
    return str(max(done, key=lambda d: int(d.name.removeprefix("chk-"))))


def raw_log_check(cfg: Config, committed: dict[str, list]) -> dict[str, dict]:
    """Per topic: the records a read_committed reader sees in Kafka against the raw log's rows.
    The input topics are written without transactions, so every offset from the beginning to
    the end is a record; the output topics' committed records are read one by one."""
    out = {}
    for topic in (cfg.topics.transactions, cfg.topics.accounts):
        expected = {(p, o) for p, (first, end) in kafka_admin.offset_ranges(cfg, topic).items()
                    for o in range(first, end)}
        out[topic] = compare(read_lake(cfg, topic), expected)
    for topic, records in committed.items():
        out[topic] = compare(read_lake(cfg, topic),
                              {(r.partition, r.offset) for r in records})
    return out


def compare(lake, expected: set) -> dict:
    keys = list(zip(lake.column("partition").to_pylist(), lake.column("offset").to_pylist(),
                    strict=True))
    unique = set(keys)
    return {"expected": len(expected), "rows": len(keys), "lost": len(expected - unique),
            "extra": len(unique - expected), "duplicated": len(keys) - len(unique)}


def output_duplicates(cfg: Config, committed: dict[str, list]) -> dict[str, int]:
    """Records an exactly-once output holds more than once, by the contract's identities."""
    def dup(records, key) -> int:
        seen = Counter(key(json.loads(r.value)) for r in records)
        return sum(n - 1 for n in seen.values())

    return {
        cfg.topics.aggregates: dup(committed[cfg.topics.aggregates], lambda v: (
            v["account_id"], v["currency"], v["window_start_ms"])),
        cfg.topics.dlq: dup(committed[cfg.topics.dlq], lambda v: (
            v["source_topic"], v["source_partition"], v["source_offset"])),
        cfg.topics.late: dup(committed[cfg.topics.late], lambda v: v["txn_id"]),
    }


def format_table(s: dict) -> str:
    lines = [f"chaos soak {s['started']}: {s['duration_s']} s at {s['rate_per_s']}/s "
             f"(seed {s['seed']}), spikes "
             + ", ".join(f"{x['factor']:g}x {x['duration_s']:g} s at +{x['at_s']:g} s"
                         for x in s["spikes"]), "",
             "| # | fault | at | recovery | outcome | detail |", "|---|---|---|---|---|---|"]
    for i, f in enumerate(s["faults"], 1):
        at = f"+{f['injected_at_s']:.0f} s" if f["injected_at_s"] is not None else \
            f"(+{f['planned_at_s']:.0f} s)"
        rec = f"{f['recovery_s']:.1f} s" if f["recovery_s"] is not None else "-"
        lines.append(f"| {i} | {f['kind']} | {at} | {rec} | {f['outcome']} | {f['detail']} |")
    lines += ["", "| fault kind | injected | recovered | recovery max |", "|---|---|---|---|"]
    kinds = sorted({f["kind"] for f in s["faults"]}, key=KINDS.index)
    for k in kinds:
        fs = [f for f in s["faults"] if f["kind"] == k and f["injected_at_s"] is not None
              and not f["outcome"].startswith("skipped")]
        rec = [f["recovery_s"] for f in fs if f["recovery_s"] is not None]
        lines.append(f"| {k} | {len(fs)} | {len(rec)} | "
                     f"{max(rec):.1f} s |" if rec else f"| {k} | {len(fs)} | 0 | - |")
    r = s["reconciliation"]
    lines += ["",
              "records in: " + ", ".join(f"{t} {n:,}" for t, n in s["records_in"].items()),
              "records out (committed): " + ", ".join(f"{t} {n:,}" for t, n in
                                                      s["records_out"].items()),
              "raw log: " + ", ".join(
                  f"{t} {v['rows']:,} rows / {v['expected']:,} records (lost {v['lost']}, "
                  f"twice {v['duplicated']}, extra {v['extra']})"
                  for t, v in s["raw_log"].items()),
              "exactly-once outputs held twice: " + ", ".join(
                  f"{t} {n}" for t, n in s["duplicated_in_outputs"].items()),
              f"reconciliation [{r['interval'][0]}, {r['interval'][1]}): aggregates "
              f"{r['aggregates']}, alerts {r['alerts']}, unexplained {r['unexplained']}, "
              f"accounting {'holds' if r['accounting_holds'] else 'BROKEN'}",
              f"LOST {s['lost']}, DUPLICATED {s['duplicated']}: "
              + ("PASS" if s["ok"] else "FAIL")]
    return "\n".join(lines)
