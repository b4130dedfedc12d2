"""The one Flink client: the distribution inside the apache-flink wheel and its rendered
configuration (:mod:`.dist`), the JobManager's REST API (:mod:`.rest`) and `flink run`
(:mod:`.submit`). Nothing else in the project talks to Flink."""
