-- weft controller schema, one text for SQLite and PostgreSQL (TEXT, BIGINT and BOOLEAN only,
-- the types the sqlx Any driver maps). Each resource row keeps the indexed columns lists filter
-- and sort on, plus its representation: `body` (what every reader sees) and `admin_body` (the
-- admin-only attributes, a JSON object), so lists are spliced, not rebuilt.

CREATE TABLE revision_counter (id INTEGER PRIMARY KEY CHECK (id = 1), rev BIGINT NOT NULL);
INSERT INTO revision_counter (id, rev) VALUES (1, 0);

CREATE TABLE revisions (
    rev BIGINT PRIMARY KEY,
    resource TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    operation TEXT NOT NULL,
    project_id TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE networks (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL,
    shared BOOLEAN NOT NULL,
    created_at TEXT NOT NULL,
    body TEXT NOT NULL,
    admin_body TEXT NOT NULL
);
CREATE INDEX networks_project ON networks (project_id, id);
CREATE INDEX networks_name ON networks (name);

CREATE TABLE network_segments (
    network_id TEXT NOT NULL,
    seg_index BIGINT NOT NULL,
    network_type TEXT NOT NULL,
    physical_network TEXT NOT NULL,
    segmentation_id BIGINT NOT NULL,
    PRIMARY KEY (network_id, seg_index)
);

-- One row per taken segment: the primary key is what makes allocation safe under concurrency.
CREATE TABLE segment_allocations (
    network_type TEXT NOT NULL,
    physical_network TEXT NOT NULL,
    segmentation_id BIGINT NOT NULL,
    network_id TEXT NOT NULL,
    PRIMARY KEY (network_type, physical_network, segmentation_id)
);

CREATE TABLE subnets (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL,
    network_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    body TEXT NOT NULL,
    admin_body TEXT NOT NULL
);
CREATE INDEX subnets_network ON subnets (network_id);
CREATE INDEX subnets_project ON subnets (project_id, id);

CREATE TABLE ports (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL,
    network_id TEXT NOT NULL,
    mac_address TEXT NOT NULL,
    device_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    body TEXT NOT NULL,
    admin_body TEXT NOT NULL
);
CREATE UNIQUE INDEX ports_mac ON ports (network_id, mac_address);
CREATE INDEX ports_project ON ports (project_id, id);
CREATE INDEX ports_name ON ports (name);
CREATE INDEX ports_device ON ports (device_id);

-- One row per allocated address: the primary key stops two ports getting one IP.
CREATE TABLE ip_allocations (
    subnet_id TEXT NOT NULL,
    ip_address TEXT NOT NULL,
    port_id TEXT NOT NULL,
    network_id TEXT NOT NULL,
    PRIMARY KEY (subnet_id, ip_address)
);
CREATE INDEX ip_allocations_port ON ip_allocations (port_id);

CREATE TABLE security_groups (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    body TEXT NOT NULL,
    admin_body TEXT NOT NULL
);
CREATE INDEX security_groups_project ON security_groups (project_id, id);
CREATE UNIQUE INDEX security_groups_default ON security_groups (project_id) WHERE name = 'default';
