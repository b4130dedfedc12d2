"""The one registry of the streaming jobs: what the CLI accepts, what a release bundles, which
script `flink run` starts, whose Kafka principal each job logs in as, which consumer group it
commits to and which topics it reads and writes. The CLI, releases and deployments, status,
the soak, the ACLs and the jobs themselves all read it from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.settings import Config

# the fraud job's table of the compacted payments.accounts topic (status leaves its source out
# of the event-time lag: it is idle, and a day behind, by design)
ACCOUNTS_TABLE = "raw_accounts"


@dataclass(frozen=True)
class StreamingJob:
    key: str         # what commands take: `payline deploy transactions`
    name: str        # the Flink job name, and the prefix of its sinks' transactional ids
    script: str      # the job's file, relative to a checkout or a release's tree
    component: str   # whose principal its Kafka clients log in as (security.<component>_principal)

    def group_id(self, cfg: Config) -> str:
        """The consumer group the job commits its source offsets to, unless ``--group-id``."""
        return cfg.fraud.group_id if self.key == "fraud" else self.name

    def source_topics(self, cfg: Config) -> list[str]:
        t = cfg.topics
        return [t.transactions, t.accounts] if self.key == "fraud" else [t.transactions]

    def sink_topics(self, cfg: Config) -> list[str]:
        t = cfg.topics
        return [t.alerts, t.dlq] if self.key == "fraud" else [t.aggregates, t.late, t.dlq]


TRANSACTIONS = StreamingJob("transactions", "payline-transactions",
                            "jobs/streaming/transactions.py", "transactions")
FRAUD = StreamingJob("fraud", "payline-fraud", "jobs/streaming/fraud.py", "fraud")
STREAMING_JOBS: dict[str, StreamingJob] = {j.key: j for j in (TRANSACTIONS, FRAUD)}


def by_flink_name(name: str) -> StreamingJob | None:
    """The job whose Flink job name is ``name`` (None: not one of ours)."""
    return next((j for j in STREAMING_JOBS.values() if j.name == name), None)
