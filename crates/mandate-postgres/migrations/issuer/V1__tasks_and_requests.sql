-- The issuer's tasks and agents' requests for more rights, shared by every
-- issuer replica. Each state change is one conditional UPDATE of the whole
-- row (compare-and-swap): the row is the record, column for column.

CREATE TABLE mandate_tasks (
    id          TEXT PRIMARY KEY,
    principal   TEXT NOT NULL,
    agent       TEXT NOT NULL,
    agent_key   TEXT NOT NULL,
    rights      TEXT[] NOT NULL,
    description TEXT NOT NULL,
    open        BOOLEAN NOT NULL,
    created_ms  BIGINT NOT NULL,
    deadline_ms BIGINT NOT NULL,
    mandates    BIGINT NOT NULL,
    closed_by   TEXT,
    -- The login the task was opened with (JSON), for run-time requests' policy.
    identity    TEXT
);

-- The sweeper's question: open tasks past their deadline.
CREATE INDEX mandate_tasks_open_deadline ON mandate_tasks (deadline_ms) WHERE open;

CREATE TABLE mandate_right_requests (
    id            TEXT PRIMARY KEY,
    task          TEXT NOT NULL,
    principal     TEXT NOT NULL,
    agent         TEXT NOT NULL,
    rights        TEXT[] NOT NULL,
    reason        TEXT NOT NULL,
    policy_reason TEXT NOT NULL,
    state         TEXT NOT NULL,
    created_ms    BIGINT NOT NULL,
    expires_ms    BIGINT NOT NULL,
    decided_by    TEXT
);

CREATE INDEX mandate_right_requests_created ON mandate_right_requests (created_ms, id);
