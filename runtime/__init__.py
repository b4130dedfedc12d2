"""What every job needs at run time, on a TaskManager or a Spark executor as much as on the
operator's machine: the configuration (:mod:`runtime.config`, :mod:`runtime.settings`), the
job registry (:mod:`runtime.registry`), the Kafka clients' settings and secrets
(:mod:`runtime.kafka_clients`), the upgrade's savepoint handoff (:mod:`runtime.handoff`) and
the error base class (:mod:`runtime.errors`).

It imports the semantics (``udfs``) and nothing above it: the jobs and the operator tool
(``payline``) import it, never the other way round (``make lint`` checks this).
"""
