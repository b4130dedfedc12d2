"""Releases and their lifecycle. Everything lives under ``paths.ops_dir`` (default ``ops/``,
kept across ``payline down``):

* ``releases/<job>/<version>/``: the immutable bundle of a job version: ``bundle.zip`` (the
  semantics, the run-time layer and the jobs, with the default configuration; shipped to the
  TaskManagers with ``--pyFiles``; never the operator tool), ``tree/`` (the same files
  unpacked, read-only: the client runs the job script from there, with the version's own
  build of the Java functions, ``flink.udf_jar``) and ``manifest.json`` (job, version, git
  commit, time, the sha256 of every file and of the jar). A version is never overwritten.
  Releases made before the run-time layer existed carry ``payline/`` in place of
  ``runtime/``; they deploy, upgrade and roll back the same way.
* ``deployments.jsonl``, ``savepoints.jsonl``, ``upgrades.jsonl``: one line per deployment,
  savepoint, upgrade or rollback.
* ``audit.log``: one JSON line per release / deploy / upgrade / rollback / savepoint: who,
  when, what, from which savepoint, outcome. Only appended to.

:mod:`.bundle` builds the zip, :mod:`.releases` makes and finds releases, :mod:`.records`
keeps the records, :mod:`.client` starts a release's `flink run`, :mod:`.lifecycle` deploys,
savepoints, upgrades and rolls back, :mod:`.operator_ids` names the operators of a refused
restore.
"""
