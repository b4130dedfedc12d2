package dev.payline.flink;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

import org.apache.flink.table.annotation.ArgumentHint;
import org.apache.flink.table.annotation.ArgumentTrait;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.StateHint;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.catalog.DataTypeFactory;
import org.apache.flink.table.functions.ProcessTableFunction;
import org.apache.flink.table.functions.TableSemantics;
import org.apache.flink.table.types.AtomicDataType;
import org.apache.flink.table.types.DataType;
import org.apache.flink.table.types.extraction.TypeInferenceExtractor;
import org.apache.flink.table.types.inference.CallContext;
import org.apache.flink.table.types.inference.TypeInference;
import org.apache.flink.table.types.logical.LocalZonedTimestampType;
import org.apache.flink.table.types.logical.TimestampKind;
import org.apache.flink.table.types.logical.utils.LogicalTypeChecks;
import org.apache.flink.types.Row;

/**
 * The dedup state of the transaction stream (docs/contract.md#deduplication), as a process table
 * function.
 *
 * <p>Called with the validated records partitioned by their dedup key (the txn_id of a valid
 * record):
 *
 * <pre>
 * SELECT * FROM dedup_first_copy(
 *   input => TABLE t PARTITION BY dedup_key, horizon_ms => 86400000, uid => 'dedup')
 * </pre>
 *
 * <p>It keeps, per txn_id, the first valid copy's fingerprint and event time (processing order)
 * and the number of valid copies so far. Every input row comes out once, unchanged, with three
 * columns added: {@code copies} (up to and including this one), {@code first_fingerprint} and
 * {@code first_event_time_ms}. The decision itself (accepted, duplicate, conflicting) stays in
 * SQL ({@code udfs.semantics.dedup_decision_sql}), the same text the batch layer runs.
 *
 * <p>The state of a txn_id is cleared by an event-time timer at the first copy's event time plus
 * the horizon: once the watermark has passed it, every later copy within the horizon of the
 * first one is behind the watermark (late), and every copy on time is a transaction of its own.
 * A row whose column {@code error_class} is not NULL (an invalid record) touches no state.
 *
 * <p>The call takes no {@code on_time} argument, on purpose: with one, Flink's PTF runtime drops
 * every row whose time is not above the current watermark (ProcessTableRunner.processEval), and
 * late transactions must come through to be routed to the late output. Timers fire on the
 * watermark all the same. The input's column {@code rowtime} (the event time, with the source's
 * watermark) comes out as the event-time attribute, so windows can follow.
 *
 * <p>Output columns: the PARTITION BY column, then the input's other columns in their order
 * without processing-time attributes, then the three columns above.
 *
 * <p>The class's output hint only lets Flink extract the arguments and the state; the output
 * type is derived from the input table in {@link #getTypeInference}.
 */
@DataTypeHint("ROW<copies BIGINT>")
public class DedupFirstCopy extends ProcessTableFunction<Row> {

    private static final long serialVersionUID = 1L;

    public static final String FINGERPRINT = "fingerprint";
    public static final String EVENT_TIME = "event_time_ms";
    public static final String ERROR_CLASS = "error_class";
    public static final String ROWTIME = "rowtime";

    /** Per txn_id; no state TTL: the timer clears it. */
    public static class First {
        public String fingerprint;
        public Long eventTimeMs;
        public Long copies;
    }

    private transient int[] passed;
    private transient int fingerprintAt;
    private transient int eventTimeAt;
    private transient int errorClassAt;

    public void eval(
            Context ctx,
            @StateHint(name = "first", ttl = "0") First first,
            @ArgumentHint(
                            name = "input",
                            value = {ArgumentTrait.SET_SEMANTIC_TABLE})
                    Row input,
            @ArgumentHint(name = "horizon_ms") Long horizonMs) {
        if (passed == null) {
            layout(ctx.tableSemanticsFor("input"));
        }
        Row out = Row.withPositions(passed.length + 3);
        for (int i = 0; i < passed.length; i++) {
            out.setField(i, input.getField(passed[i]));
        }
        if (input.getField(errorClassAt) == null) {
            if (first.copies != null) {
                first.copies += 1;
                out.setField(passed.length, first.copies);
                out.setField(passed.length + 1, first.fingerprint);
                out.setField(passed.length + 2, first.eventTimeMs);
            } else {
                String fingerprint = (String) input.getField(fingerprintAt);
                Long eventTimeMs = (Long) input.getField(eventTimeAt);
                out.setField(passed.length, 1L);
                out.setField(passed.length + 1, fingerprint);
                out.setField(passed.length + 2, eventTimeMs);
                TimeContext<Long> time = ctx.timeContext(Long.class);
                Long watermark = time.currentWatermark();
                long expiry = eventTimeMs + horizonMs;
                // a first copy already a horizon behind the watermark keeps no state: its timer
                // would be due at once (Flink does not even register it)
                if (watermark == null || expiry > watermark) {
                    first.fingerprint = fingerprint;
                    first.eventTimeMs = eventTimeMs;
                    first.copies = 1L;
                    time.registerOnTime(expiry);
                }
            }
        }
        collect(out);
    }

    /**
     * The watermark has passed the first copy's event time plus the horizon. The fields are set
     * to null rather than by {@code ctx.clearAll()}: Flink 2.2's PTF runner writes a value state
     * back from the object handed to the method, and clears it only when that object is empty
     * (a clearAll() in onTimer left the state in place: found by the integration test).
     */
    public void onTimer(First first) {
        first.fingerprint = null;
        first.eventTimeMs = null;
        first.copies = null;
    }

    private void layout(TableSemantics semantics) {
        List<String> names = DataType.getFieldNames(semantics.dataType());
        passed = passedColumns(semantics).stream().mapToInt(Integer::intValue).toArray();
        fingerprintAt = column(names, FINGERPRINT);
        eventTimeAt = column(names, EVENT_TIME);
        errorClassAt = column(names, ERROR_CLASS);
    }

    private static int column(List<String> names, String name) {
        int at = names.indexOf(name);
        if (at < 0) {
            throw new IllegalArgumentException(
                    "dedup_first_copy: the input table has no column " + name);
        }
        return at;
    }

    /** The input columns that come out as they went in. */
    static List<Integer> passedColumns(TableSemantics semantics) {
        List<DataType> types = DataType.getFieldDataTypes(semantics.dataType());
        List<Integer> keys = new ArrayList<>();
        for (int k : semantics.partitionByColumns()) {
            keys.add(k);
        }
        List<Integer> out = new ArrayList<>();
        for (int i = 0; i < types.size(); i++) {
            if (!keys.contains(i)
                    && !LogicalTypeChecks.isProctimeAttribute(types.get(i).getLogicalType())) {
                out.add(i);
            }
        }
        return out;
    }

    @Override
    public TypeInference getTypeInference(DataTypeFactory typeFactory) {
        TypeInference extracted =
                TypeInferenceExtractor.forProcessTableFunction(typeFactory, getClass());
        return TypeInference.newBuilder()
                .staticArguments(extracted.getStaticArguments().orElseThrow())
                .inputTypeStrategy(extracted.getInputTypeStrategy())
                .stateTypeStrategies(extracted.getStateTypeStrategies())
                .outputTypeStrategy(DedupFirstCopy::outputType)
                .build();
    }

    private static Optional<DataType> outputType(CallContext call) {
        Optional<TableSemantics> semantics = call.getTableSemantics(0);
        if (semantics.isEmpty()) {
            return Optional.empty();
        }
        List<String> names = DataType.getFieldNames(semantics.get().dataType());
        List<DataType> types = DataType.getFieldDataTypes(semantics.get().dataType());
        List<DataTypes.Field> fields = new ArrayList<>();
        for (int i : passedColumns(semantics.get())) {
            DataType type = types.get(i);
            if (names.get(i).equals(ROWTIME)
                    && type.getLogicalType() instanceof LocalZonedTimestampType) {
                LocalZonedTimestampType t = (LocalZonedTimestampType) type.getLogicalType();
                type =
                        new AtomicDataType(
                                new LocalZonedTimestampType(
                                        t.isNullable(), TimestampKind.ROWTIME, t.getPrecision()));
            }
            fields.add(DataTypes.FIELD(names.get(i), type));
        }
        fields.add(DataTypes.FIELD("copies", DataTypes.BIGINT()));
        fields.add(DataTypes.FIELD("first_fingerprint", DataTypes.STRING()));
        fields.add(DataTypes.FIELD("first_event_time_ms", DataTypes.BIGINT()));
        return Optional.of(DataTypes.ROW(fields).bridgedTo(Row.class));
    }
}
