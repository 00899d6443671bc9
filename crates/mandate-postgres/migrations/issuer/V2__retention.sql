-- Retention: when a task closed, so closed tasks can be pruned some time
-- after it, and indexes for the sweeper's two pruning questions. Tasks
-- closed before this column existed keep NULL and count from their deadline.

ALTER TABLE mandate_tasks ADD COLUMN closed_ms BIGINT;

-- Closed tasks by the time retention counts from.
CREATE INDEX mandate_tasks_closed ON mandate_tasks ((COALESCE(closed_ms, deadline_ms)))
    WHERE NOT open;

-- Settled requests (granted, denied, expired) by expiry.
CREATE INDEX mandate_right_requests_settled ON mandate_right_requests (expires_ms)
    WHERE state <> 'pending';
