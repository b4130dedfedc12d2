"""The configuration of a test stack of its own (integration, secure and soak tests)."""

from __future__ import annotations


def stack_toml(run, *, kafka: int, rest: int, rpc: int, prometheus: int,
               checkpoint_ms: int, extra: str = "") -> str:
    """A payline.toml for a test stack of its own: run dir, ports (Kafka ``kafka`` and
    ``kafka + 1`` for the controller, Prometheus ``prometheus``..``+10``) and checkpoint
    interval, plus ``extra`` TOML."""
    return f"""
[paths]
run_dir = "{run}"
data_dir = "{run}/data"
reports_dir = "{run}/reports"
ops_dir = "{run}/ops"
checkpoints_dir = "{run}/checkpoints"

[kafka]
port = {kafka}
controller_port = {kafka + 1}

[flink]
rest_port = {rest}
jobmanager_rpc_port = {rpc}
prometheus_port_first = {prometheus}
prometheus_port_last = {prometheus + 10}
checkpoint_interval_ms = {checkpoint_ms}
{extra}"""
