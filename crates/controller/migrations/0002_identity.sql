-- Identity (Keystone v3 subset), for SQLite and PostgreSQL alike. Names are unique where Keystone makes them
-- unique (domains globally, projects and users per domain, roles globally); creates rely on
-- these constraints with ON CONFLICT DO NOTHING, never on a failed statement.

CREATE TABLE domains (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX domains_name ON domains (name);

CREATE TABLE projects (
    id TEXT PRIMARY KEY,
    domain_id TEXT NOT NULL REFERENCES domains (id),
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    -- A JSON array of strings.
    tags TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX projects_name ON projects (domain_id, name);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    domain_id TEXT NOT NULL REFERENCES domains (id),
    name TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    -- An argon2id PHC string; '' for a user without a password (cannot authenticate).
    password_hash TEXT NOT NULL,
    default_project_id TEXT NOT NULL,
    -- A JSON object of the optional attributes (description, email).
    extra TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX users_name ON users (domain_id, name);

CREATE TABLE roles (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX roles_name ON roles (name);

-- A user's role on a project. Tokens do not copy roles: validation reads them from here.
CREATE TABLE role_assignments (
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    role_id TEXT NOT NULL,
    PRIMARY KEY (project_id, user_id, role_id)
);
CREATE INDEX role_assignments_user ON role_assignments (user_id, project_id);
CREATE INDEX role_assignments_role ON role_assignments (role_id);

-- Issued tokens, by a hash of the token (the token itself is never stored). Deleting a row
-- revokes the token.
CREATE TABLE tokens (
    hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    -- '' for an unscoped token.
    project_id TEXT NOT NULL,
    -- Space-separated: 'password', 'token'.
    methods TEXT NOT NULL,
    -- Space-separated: this token's audit id, then the one it was rescoped from.
    audit_ids TEXT NOT NULL,
    -- Microseconds since the Unix epoch.
    issued_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX tokens_user ON tokens (user_id);
CREATE INDEX tokens_project ON tokens (project_id);
CREATE INDEX tokens_expiry ON tokens (expires_at);
