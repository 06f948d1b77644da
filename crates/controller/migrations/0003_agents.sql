-- Agents (`GET /v2.0/agents`): one row per (host, agent_type), written by each agent's
-- heartbeat. Heartbeats are not revisions: they change nothing an agent acts on.
CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    agent_type TEXT NOT NULL,
    binary_name TEXT NOT NULL,
    topic TEXT NOT NULL,
    admin_state_up BOOLEAN NOT NULL,
    description TEXT NOT NULL,
    configurations TEXT NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL
);
CREATE UNIQUE INDEX agents_host_type ON agents (host, agent_type);
