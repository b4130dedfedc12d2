"""Minimal PyFlink job for the stack's integration test: copy one Kafka topic to another through
a Python operator, exactly-once (transactional KafkaSink, committed on checkpoints).

    flink run --jarfile infra/flink/target/lib/flink-sql-connector-kafka-5.0.0-2.2.jar \
        --python tests/integration/flink_jobs/copy_topic.py \
        --bootstrap 127.0.0.1:9092 --source in-topic --sink out-topic

The source is bounded (earliest to the latest offsets at start), so the job finishes, and its
final checkpoint commits the last transaction.
"""

import argparse

from pyflink.common import Types, WatermarkStrategy
from pyflink.common.serialization import SimpleStringSchema
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.connectors.base import DeliveryGuarantee
from pyflink.datastream.connectors.kafka import (
    KafkaOffsetsInitializer,
    KafkaRecordSerializationSchema,
    KafkaSink,
    KafkaSource,
)


def build_pipeline(env, source, sink):
    stream = env.from_source(source, WatermarkStrategy.no_watermarks(), "read-source")
    copied = stream.map(lambda value: value, output_type=Types.STRING()).name("copy").uid("copy")
    copied.sink_to(sink).name("write-sink").uid("write-sink")


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--source", required=True)
    p.add_argument("--sink", required=True)
    p.add_argument("--checkpoint-interval-ms", type=int, default=1000)
    args = p.parse_args(argv)

    env = StreamExecutionEnvironment.get_execution_environment()
    env.enable_checkpointing(args.checkpoint_interval_ms)
    source = (
        KafkaSource.builder()
        .set_bootstrap_servers(args.bootstrap)
        .set_topics(args.source)
        .set_group_id(f"copy-{args.source}")
        .set_starting_offsets(KafkaOffsetsInitializer.earliest())
        .set_bounded(KafkaOffsetsInitializer.latest())
        .set_value_only_deserializer(SimpleStringSchema())
        .set_property("isolation.level", "read_committed")
        .build()
    )
    sink = (
        KafkaSink.builder()
        .set_bootstrap_servers(args.bootstrap)
        .set_record_serializer(
            KafkaRecordSerializationSchema.builder()
            .set_topic(args.sink)
            .set_value_serialization_schema(SimpleStringSchema())
            .build()
        )
        .set_delivery_guarantee(DeliveryGuarantee.EXACTLY_ONCE)
        .set_transactional_id_prefix(f"copy-{args.sink}")
        .set_property("transaction.timeout.ms", "600000")
        .build()
    )
    build_pipeline(env, source, sink)
    env.execute(f"copy {args.source} -> {args.sink}")


if __name__ == "__main__":
    main()
