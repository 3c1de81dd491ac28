-- Core service-desk schema (SQLite). Never edit once released; add a new migration.
-- Timestamps are TEXT in fixed-width RFC 3339 UTC (sortable); money is INTEGER kopecks;
-- quantities are INTEGER thousandths; flags are INTEGER 0/1. See docs/ARCHITECTURE.md.

CREATE TABLE customers (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT NOT NULL,
    inn             TEXT NOT NULL UNIQUE,
    address         TEXT NOT NULL DEFAULT '',
    contact_name    TEXT NOT NULL DEFAULT '',
    contact_email   TEXT NOT NULL DEFAULT '',
    contact_phone   TEXT NOT NULL DEFAULT '',
    search          TEXT NOT NULL DEFAULT '',
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    created_by      INTEGER,
    version         INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE users (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    email           TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    phone           TEXT NOT NULL DEFAULT '',
    roles           TEXT NOT NULL,
    customer_id     INTEGER REFERENCES customers(id),
    enabled         INTEGER NOT NULL DEFAULT 1,
    password_hash   TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    created_by      INTEGER,
    version         INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX users_customer ON users(customer_id);

CREATE TABLE service_objects (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id     INTEGER NOT NULL REFERENCES customers(id),
    name            TEXT NOT NULL,
    address         TEXT NOT NULL DEFAULT '',
    kind            TEXT NOT NULL,
    serial_number   TEXT UNIQUE,
    notes           TEXT NOT NULL DEFAULT '',
    archived        INTEGER NOT NULL DEFAULT 0,
    search          TEXT NOT NULL DEFAULT '',
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    created_by      INTEGER,
    version         INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX service_objects_customer ON service_objects(customer_id);

CREATE TABLE object_engineers (
    object_id       INTEGER NOT NULL REFERENCES service_objects(id) ON DELETE CASCADE,
    user_id         INTEGER NOT NULL REFERENCES users(id),
    PRIMARY KEY (object_id, user_id)
);
CREATE INDEX object_engineers_user ON object_engineers(user_id);

CREATE TABLE projects (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id     INTEGER NOT NULL REFERENCES customers(id),
    name            TEXT NOT NULL,
    start_date      TEXT NOT NULL,
    end_date        TEXT,
    manager_id      INTEGER REFERENCES users(id),
    contract_value  INTEGER NOT NULL DEFAULT 0,
    status          TEXT NOT NULL,
    search          TEXT NOT NULL DEFAULT '',
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    created_by      INTEGER,
    version         INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX projects_customer ON projects(customer_id);

CREATE TABLE project_objects (
    project_id      INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    object_id       INTEGER NOT NULL REFERENCES service_objects(id),
    scope           TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (project_id, object_id)
);
CREATE INDEX project_objects_object ON project_objects(object_id);

CREATE TABLE service_requests (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    number          TEXT NOT NULL UNIQUE,
    type            TEXT NOT NULL,
    subject         TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    customer_id     INTEGER NOT NULL REFERENCES customers(id),
    project_id      INTEGER REFERENCES projects(id),
    object_id       INTEGER REFERENCES service_objects(id),
    assigned_to     INTEGER REFERENCES users(id),
    source          TEXT NOT NULL,
    status          TEXT NOT NULL,
    reported_at     TEXT,
    planned_start   TEXT,
    planned_end     TEXT,
    actual_start    TEXT,
    actual_end      TEXT,
    completed_at    TEXT,
    assign_by       TEXT NOT NULL,
    close_by        TEXT NOT NULL,
    search          TEXT NOT NULL DEFAULT '',
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    created_by      INTEGER,
    version         INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX service_requests_status ON service_requests(status, id);
CREATE INDEX service_requests_customer ON service_requests(customer_id, id);
CREATE INDEX service_requests_assigned ON service_requests(assigned_to, id);
CREATE INDEX service_requests_object ON service_requests(object_id);
CREATE INDEX service_requests_project ON service_requests(project_id);

CREATE TABLE request_comments (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id      INTEGER NOT NULL REFERENCES service_requests(id) ON DELETE CASCADE,
    author_id       INTEGER NOT NULL REFERENCES users(id),
    body            TEXT NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX request_comments_request ON request_comments(request_id, id);

CREATE TABLE request_history (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id      INTEGER NOT NULL REFERENCES service_requests(id) ON DELETE CASCADE,
    user_id         INTEGER NOT NULL REFERENCES users(id),
    from_status     TEXT,
    to_status       TEXT NOT NULL,
    comment         TEXT NOT NULL DEFAULT '',
    created_at      TEXT NOT NULL
);
CREATE INDEX request_history_request ON request_history(request_id, id);

CREATE TABLE service_reports (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    number          TEXT NOT NULL UNIQUE,
    request_id      INTEGER NOT NULL UNIQUE REFERENCES service_requests(id),
    work_date       TEXT NOT NULL,
    engineer_id     INTEGER NOT NULL REFERENCES users(id),
    status          TEXT NOT NULL,
    total           INTEGER NOT NULL DEFAULT 0,
    engineer_bonus  INTEGER NOT NULL DEFAULT 0,
    notes           TEXT NOT NULL DEFAULT '',
    submitted_at    TEXT,
    approved_at     TEXT,
    approved_by     INTEGER REFERENCES users(id),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    created_by      INTEGER,
    version         INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX service_reports_engineer ON service_reports(engineer_id);

CREATE TABLE report_items (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    report_id       INTEGER NOT NULL REFERENCES service_reports(id) ON DELETE CASCADE,
    position        INTEGER NOT NULL,
    description     TEXT NOT NULL,
    quantity        INTEGER NOT NULL,
    unit            TEXT NOT NULL DEFAULT '',
    unit_price      INTEGER NOT NULL,
    amount          INTEGER NOT NULL
);
CREATE INDEX report_items_report ON report_items(report_id, position);

CREATE TABLE number_sequences (
    kind            TEXT NOT NULL,
    year            INTEGER NOT NULL,
    last            INTEGER NOT NULL,
    PRIMARY KEY (kind, year)
);

CREATE TABLE audit_log (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at              TEXT NOT NULL,
    user_id         INTEGER,
    ip              TEXT NOT NULL DEFAULT '',
    action          TEXT NOT NULL,
    entity          TEXT NOT NULL,
    entity_id       INTEGER,
    before_json     TEXT,
    after_json      TEXT
);
CREATE INDEX audit_log_entity ON audit_log(entity, entity_id);
