-- The revocation log shared by every registry replica on this database.
-- Applied by refinery at start-up; its history is kept in mandate_registry_migrations.

-- The log's identity: exactly one row, written by whichever replica starts first.
CREATE TABLE mandate_revocation_log (
    singleton  BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    epoch      TEXT NOT NULL CHECK (length(epoch) BETWEEN 1 AND 64),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per entry; seq is 1, 2, 3, ... with no gap, in commit order.
CREATE TABLE mandate_revocations (
    seq         BIGINT PRIMARY KEY CHECK (seq > 0),
    kind        TEXT NOT NULL,
    value       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    revoked_by  TEXT NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    lifted      BOOLEAN NOT NULL
);

-- Appends a batch of entries (one replica's concurrent writers, group-committed) and
-- returns their seqs and time, in the order given. Every append, from every replica,
-- goes through here, so allocation and publication happen under one lock:
-- pg_advisory_xact_lock is held until the calling transaction commits; the next
-- append waits for it and then (a fresh snapshot per statement: VOLATILE, READ
-- COMMITTED) sees the committed rows, so seq = max + i is allocated in commit order
-- and a reader can never see seq n+1 without seq n. The notification is delivered at
-- commit, never for entries that did not commit.
CREATE FUNCTION mandate_append_revocations(
    p_kind TEXT[],
    p_value TEXT[],
    p_reason TEXT[],
    p_revoked_by TEXT[],
    p_lifted BOOLEAN[]
) RETURNS TABLE (new_seq BIGINT, new_at TIMESTAMPTZ) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    base BIGINT;
    stamp TIMESTAMPTZ;
BEGIN
    -- 7881702200570115695 is 'mandrevo' in ASCII: the log's lock, used nowhere else.
    PERFORM pg_advisory_xact_lock(7881702200570115695);
    SELECT COALESCE(MAX(r.seq), 0) INTO base FROM mandate_revocations r;
    stamp := clock_timestamp();
    INSERT INTO mandate_revocations (seq, kind, value, reason, revoked_by, recorded_at, lifted)
        SELECT base + u.i, u.k, u.v, u.r, u.b, stamp, u.l
        FROM unnest(p_kind, p_value, p_reason, p_revoked_by, p_lifted)
            WITH ORDINALITY AS u(k, v, r, b, l, i);
    PERFORM pg_notify('mandate_revocations', (base + cardinality(p_kind))::text);
    RETURN QUERY SELECT base + g, stamp FROM generate_series(1, cardinality(p_kind)) AS g;
END
$$;
