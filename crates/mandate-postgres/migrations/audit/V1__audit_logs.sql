-- The audit trail shared by every server replica on this database: one hash-chained
-- log per writer (each replica signs with its own key), and one merged order over all
-- of them. Applied by refinery at start-up; its history is kept in
-- mandate_audit_migrations.

-- One row per writer: its log's id (signed into its heads) and its public key.
CREATE TABLE mandate_audit_logs (
    log_id     TEXT PRIMARY KEY CHECK (length(log_id) BETWEEN 1 AND 64),
    writer     TEXT NOT NULL UNIQUE CHECK (length(writer) BETWEEN 1 AND 256),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Touched by a synchronous commit to flush a buffered writer's earlier ones.
    flushed_at TIMESTAMPTZ
);

-- One row per record, as the writer stored it: seq and prev link it into its writer's
-- chain (hashes are over these bytes, never re-serialized); pos is its place in the
-- merged trail, allocated in commit order.
CREATE TABLE mandate_audit_entries (
    log_id TEXT NOT NULL REFERENCES mandate_audit_logs (log_id),
    seq    BIGINT NOT NULL CHECK (seq > 0),
    prev   BYTEA NOT NULL CHECK (length(prev) = 32),
    body   BYTEA NOT NULL,
    pos    BIGINT NOT NULL UNIQUE CHECK (pos > 0),
    PRIMARY KEY (log_id, seq)
);

-- Signed heads, one JSON object each (the writer's SignedHead), in the order written.
CREATE TABLE mandate_audit_heads (
    id     BIGSERIAL PRIMARY KEY,
    log_id TEXT NOT NULL REFERENCES mandate_audit_logs (log_id),
    seq    BIGINT NOT NULL,
    head   TEXT NOT NULL
);
CREATE INDEX mandate_audit_heads_by_log ON mandate_audit_heads (log_id, seq);

-- Appends one writer's batch (consecutive seqs following its log's newest) and, when
-- given, a signed head, in the caller's transaction. Positions are allocated under one
-- lock held until commit, as the revocation log's seqs are: the next append from any
-- replica waits, then sees this one committed, so a reader following pos never skips a
-- position that commits later. A batch that does not start right after the log's newest
-- entry is refused: two processes writing one log (one key) cannot fork its chain.
CREATE FUNCTION mandate_append_audit(
    p_log TEXT,
    p_seq BIGINT[],
    p_prev BYTEA[],
    p_body BYTEA[],
    p_head_seq BIGINT,
    p_head TEXT
) RETURNS VOID LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    base BIGINT;
    newest BIGINT;
BEGIN
    IF cardinality(p_seq) > 0 THEN
        -- 7881702200285946996 is 'mandaudt' in ASCII: the trail's lock, used nowhere else.
        PERFORM pg_advisory_xact_lock(7881702200285946996);
        SELECT COALESCE(MAX(e.seq), 0) INTO newest FROM mandate_audit_entries e
            WHERE e.log_id = p_log;
        IF p_seq[1] <> newest + 1 THEN
            RAISE EXCEPTION 'audit log % ends at #%, not #%: another process writes it with the same key',
                p_log, newest, p_seq[1] - 1;
        END IF;
        SELECT COALESCE(MAX(e.pos), 0) INTO base FROM mandate_audit_entries e;
        INSERT INTO mandate_audit_entries (log_id, seq, prev, body, pos)
            SELECT p_log, u.s, u.p, u.b, base + u.i
            FROM unnest(p_seq, p_prev, p_body) WITH ORDINALITY AS u(s, p, b, i);
    END IF;
    IF p_head IS NOT NULL THEN
        INSERT INTO mandate_audit_heads (log_id, seq, head) VALUES (p_log, p_head_seq, p_head);
    END IF;
END
$$;
