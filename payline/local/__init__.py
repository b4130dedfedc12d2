"""The local stack: a single-node KRaft Kafka broker, a Flink standalone cluster from the
apache-flink wheel and the raw-log archiver, as processes on loopback under ``paths.run_dir``;
the jars they need and the project's Java functions; the certificates of secure mode."""
