-- The append function of V1, unchanged in what it stores, returns and locks, now
-- carrying the new entries in its notification, signed, so that the other replicas can
-- publish them without reading the log.
--
-- Any role that can connect to the database may NOTIFY any channel, so a payload is
-- trusted only with a valid HMAC-SHA256 under the log's notification key: 32 random
-- bytes in a table of their own, readable by the role that owns the log (and
-- superusers) alone. Grant it to no other role.
CREATE TABLE mandate_revocation_notify_key (
    singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    key       BYTEA NOT NULL CHECK (octet_length(key) = 32)
);
REVOKE ALL ON mandate_revocation_notify_key FROM PUBLIC;
INSERT INTO mandate_revocation_notify_key (key)
    VALUES (decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));

-- HMAC-SHA256 (RFC 2104) of `message` under `key` (at most 64 bytes), in hex.
CREATE FUNCTION mandate_hmac_sha256(key BYTEA, message TEXT) RETURNS TEXT
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    padded BYTEA := key || decode(repeat('00', 64 - octet_length(key)), 'hex');
    inner_key BYTEA := padded;
    outer_key BYTEA := padded;
BEGIN
    FOR i IN 0..63 LOOP
        inner_key := set_byte(inner_key, i, get_byte(padded, i) # 54);
        outer_key := set_byte(outer_key, i, get_byte(padded, i) # 92);
    END LOOP;
    RETURN encode(sha256(outer_key || sha256(inner_key || convert_to(message, 'UTF8'))), 'hex');
END
$$;

-- The payload is "<hmac hex> <json>", the JSON being {"last": <newest seq>, "entries":
-- [<entry>, ...]}, each entry in the registry's wire form (RFC 3339 time to the
-- microsecond, as stored). When it would not fit under PostgreSQL's 8000-byte limit
-- (a large batch, long reasons) it is the newest seq alone, as in V1, and a listener
-- reads the entries by sequence. Either way the notification is a hint: delivered at
-- commit, in commit order, only for entries that committed; a listener that misses one
-- reads by sequence on its timer.
CREATE OR REPLACE FUNCTION mandate_append_revocations(
    p_kind TEXT[],
    p_value TEXT[],
    p_reason TEXT[],
    p_revoked_by TEXT[],
    p_lifted BOOLEAN[]
) RETURNS TABLE (new_seq BIGINT, new_at TIMESTAMPTZ) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    base BIGINT;
    stamp TIMESTAMPTZ;
    newest BIGINT;
    payload TEXT;
BEGIN
    -- 7881702200570115695 is 'mandrevo' in ASCII: the log's lock, used nowhere else.
    PERFORM pg_advisory_xact_lock(7881702200570115695);
    SELECT COALESCE(MAX(r.seq), 0) INTO base FROM mandate_revocations r;
    stamp := clock_timestamp();
    newest := base + COALESCE(cardinality(p_kind), 0);
    INSERT INTO mandate_revocations (seq, kind, value, reason, revoked_by, recorded_at, lifted)
        SELECT base + u.i, u.k, u.v, u.r, u.b, stamp, u.l
        FROM unnest(p_kind, p_value, p_reason, p_revoked_by, p_lifted)
            WITH ORDINALITY AS u(k, v, r, b, l, i);
    SELECT json_build_object(
            'last', newest,
            'entries', json_agg(json_build_object(
                'seq', base + u.i,
                'kind', u.k,
                'value', u.v,
                'reason', u.r,
                'revoked_by', u.b,
                'at', to_char(stamp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                'lifted', u.l
            ) ORDER BY u.i))::text
        INTO payload
        FROM unnest(p_kind, p_value, p_reason, p_revoked_by, p_lifted)
            WITH ORDINALITY AS u(k, v, r, b, l, i);
    payload := mandate_hmac_sha256((SELECT k.key FROM mandate_revocation_notify_key k), payload)
        || ' ' || payload;
    IF payload IS NULL OR octet_length(payload) > 7999 THEN
        payload := newest::text;
    END IF;
    PERFORM pg_notify('mandate_revocations', payload);
    RETURN QUERY SELECT base + g, stamp FROM generate_series(1, cardinality(p_kind)) AS g;
END
$$;
