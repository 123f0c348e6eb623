-- pg_waits.sql — what rasterstage's PostgreSQL backends wait on during a load.
-- Run from a third session while `rasterstage load` runs (docs/BENCHMARKS.md, "load: where
-- the time goes"):
--   psql -X "$DATABASE_URL" -f scripts/bench/pg_waits.sql
-- Samples pg_stat_activity every 20 ms for 8 s; "CPU" = active without a wait event.
CREATE TEMP TABLE samples (t timestamptz, pid int, wait_type text, wait text, state text);
DO $$
BEGIN
    FOR i IN 1..400 LOOP
        -- pg_stat_activity is a snapshot per transaction: take a fresh one every time.
        PERFORM pg_stat_clear_snapshot();
        INSERT INTO samples
        SELECT clock_timestamp(), pid, coalesce(wait_event_type, 'CPU'), coalesce(wait_event, '-'), state
        FROM pg_stat_activity
        WHERE application_name LIKE 'rasterstage%';
        PERFORM pg_sleep(0.02);
    END LOOP;
END $$;
SELECT wait_type, wait, count(*) FROM samples WHERE state = 'active' GROUP BY 1, 2 ORDER BY 3 DESC;
