-- Trunks (seed 002). `trunk_ports` holds every member port, the parent with segmentation id 0:
-- its primary key keeps a port in one trunk at most, and the unique index one VLAN id per trunk.
CREATE TABLE trunks (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL,
    port_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    body TEXT NOT NULL,
    admin_body TEXT NOT NULL
);
CREATE UNIQUE INDEX trunks_port ON trunks (port_id);
CREATE INDEX trunks_project ON trunks (project_id, id);
CREATE INDEX trunks_name ON trunks (name);

CREATE TABLE trunk_ports (
    port_id TEXT PRIMARY KEY,
    trunk_id TEXT NOT NULL,
    role TEXT NOT NULL,
    segmentation_type TEXT NOT NULL,
    segmentation_id BIGINT NOT NULL
);
CREATE UNIQUE INDEX trunk_ports_vlan ON trunk_ports (trunk_id, segmentation_id);
