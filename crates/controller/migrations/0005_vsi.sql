-- The VSI type database and VDP associations (issue 7, seed 000's network manager; contract in
-- docs/vsi.md). A type maps (type_id, type_version) to a network profile; the unique index makes
-- a duplicate a 409 even under concurrent creates. Numeric attributes are filtered in Rust (the
-- list machinery binds text), so only text columns are indexed for lists.
CREATE TABLE vsi_types (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL,
    network_id TEXT NOT NULL,
    type_id BIGINT NOT NULL,
    type_version BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    body TEXT NOT NULL,
    admin_body TEXT NOT NULL
);
CREATE UNIQUE INDEX vsi_types_type ON vsi_types (type_id, type_version);
CREATE INDEX vsi_types_project ON vsi_types (project_id, id);
CREATE INDEX vsi_types_network ON vsi_types (network_id);
CREATE INDEX vsi_types_name ON vsi_types (name);

-- One record per (bridge, VSI): a VSI moving between ports of one bridge keeps its record, a
-- VSI migrating to another bridge gets a second one (the old becomes `deassociated`). `name` is
-- the VSI id again, so the shared row helpers (which rewrite `name`) apply unchanged.
CREATE TABLE vsi_associations (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL,
    vsi_id TEXT NOT NULL,
    vsi_type_id TEXT NOT NULL,
    bridge TEXT NOT NULL,
    port TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at TEXT NOT NULL,
    body TEXT NOT NULL,
    admin_body TEXT NOT NULL
);
CREATE UNIQUE INDEX vsi_associations_vsi ON vsi_associations (bridge, vsi_id);
CREATE INDEX vsi_associations_project ON vsi_associations (project_id, id);
CREATE INDEX vsi_associations_type ON vsi_associations (vsi_type_id);
CREATE INDEX vsi_associations_vsi_id ON vsi_associations (vsi_id);

-- The VLANs live associations hold on a bridge port, one row per (association, VLAN), with the
-- network each carries: a VLAN on a port means one network, so a VLAN held for another network
-- is not free there.
CREATE TABLE vsi_vlans (
    bridge TEXT NOT NULL,
    port TEXT NOT NULL,
    vlan BIGINT NOT NULL,
    association_id TEXT NOT NULL,
    network_id TEXT NOT NULL,
    PRIMARY KEY (bridge, port, vlan, association_id)
);
CREATE INDEX vsi_vlans_association ON vsi_vlans (association_id);

-- One row per bridge port that ever asked: decides on one port take its row FOR UPDATE, which
-- serialises VLAN choices on that port under PostgreSQL (SQLite has one writer anyway).
CREATE TABLE vsi_ports (
    bridge TEXT NOT NULL,
    port TEXT NOT NULL,
    PRIMARY KEY (bridge, port)
);
