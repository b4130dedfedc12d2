"""The operator tool: the `payline` command and everything it drives. It sits on top of the
jobs (``jobs``), the run-time layer (``runtime``) and the semantics (``udfs``), and nothing
below imports it, so none of it is shipped to a cluster (``payline.release.bundle``)."""
