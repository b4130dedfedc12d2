"""`payline soak`: the chaos soak. The reconciliation is the oracle.

Generated traffic (the [generator] mix: duplicates, conflicting copies, out-of-order, late and
bad records) runs at ``soak.rate_per_s`` with ``soak.spikes`` bursts of ``spike_factor`` x for
``spike_s`` seconds, for ``duration_s``, into the local stack running the transactions job, the
fraud job (both as releases, payline.release) and the archiver. Meanwhile ``soak.faults`` faults
are injected one at a time, at moments drawn from ``soak.seed`` (when the faults take longer
than planned, the traffic goes on until ``cooldown_s`` after the last one has recovered, so every
fault of the plan happens under traffic):

- ``taskmanager_kill``: ``kill -9`` of the TaskManagers running tasks. With
  ``soak.standby_taskmanagers`` (idle TaskManagers started after the deploy, as a production
  cluster keeps spare slots) the tasks restart on a standby at once and the replacement starts
  after the recovery; without one, a new TaskManager is started at once and the jobs wait for it;
- ``jobmanager_restart``: the JobManager ``kill -9`` and started again. Without HA services
  (Flink's standalone HA needs ZooKeeper or Kubernetes) its jobs are gone; both jobs are
  deployed again from their last retained checkpoint, as an operator would;
- ``broker_kill``: the Kafka broker ``kill -9``, restarted after ``broker_down_s``;
- ``archiver_kill``: the archiver ``kill -9``, started again;
- ``upgrade`` / ``rollback``: the transactions job upgraded to the other soak release through a
  stop-with-savepoint, and rolled back with ``--keep-state`` (a savepoint of the running
  version, so nothing is replayed);
- ``checkpoint_readonly``: the checkpoint directory made read-only for ``readonly_s`` (a
  read-only bind mount over it when this process may mount, else ``chmod``); checkpoints fail
  and the jobs ride it out within ``flink.tolerable_failed_checkpoints``.

The recovery time of a fault runs from its injection (for ``checkpoint_readonly``: from the
moment the directory is writable again) until both jobs run and each has written committed
output produced after that moment (the transactions job: aggregates, late or DLQ records read
``read_committed``; the fraud job: alerts); for ``archiver_kill`` until the archiver has
written a new Parquet file.

Afterwards: every closed window of the soak is reconciled from the raw log (zero unexplained,
every alert present), every record of every topic must be in the raw log exactly once, and no
exactly-once output may hold a record twice (aggregates by key, DLQ records by source
partition/offset, late records by txn_id: docs/contract.md#outputs). A table of the faults and these
figures is printed and written to ``<run_dir>/soak/<started>/``.

:mod:`.plan` draws the faults and spikes, :mod:`.faults` injects each kind (a table from kind to
function), :mod:`.watch` follows the committed outputs, :mod:`.checks` counts what was lost or
written twice, and :mod:`.runner` runs it all.
"""
