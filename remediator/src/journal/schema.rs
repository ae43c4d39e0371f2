//! The journal's tables, described once for both backends.
//!
//! The columns, keys and indexes are the same in SQLite and PostgreSQL; only three type
//! names differ (the row id, an integer that refers to one, a boolean). Each backend fills
//! those in through its [`Dialect`], so the DDL text each one runs is exactly what it ran
//! when the schema was written out twice. Existing journals are opened with the same
//! `CREATE ... IF NOT EXISTS` statements, so nothing is migrated.

/// The type names that differ between the backends.
pub(crate) struct Dialect {
    /// A row id the database assigns.
    pub id: &'static str,
    /// An integer column, such as a reference to another row's id.
    pub integer: &'static str,
    /// A boolean column.
    pub boolean: &'static str,
}

pub(crate) const SQLITE: Dialect = Dialect {
    id: "INTEGER PRIMARY KEY",
    integer: "INTEGER",
    boolean: "INTEGER",
};

pub(crate) const POSTGRES: Dialect = Dialect {
    id: "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    integer: "BIGINT",
    boolean: "BOOLEAN",
};

/// Every table and index. `{ID}`, `{INT}` and `{BOOL}` stand for the dialect's type names.
const TABLES: &str = r#"
CREATE TABLE IF NOT EXISTS deliveries (
    id {ID},
    received_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id {ID},
    delivery_id {INT} NOT NULL REFERENCES deliveries(id),
    received_at TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    status TEXT NOT NULL,
    alertname TEXT NOT NULL,
    labels TEXT NOT NULL,
    UNIQUE (fingerprint, starts_at, status)
);
CREATE TABLE IF NOT EXISTS decisions (
    id {ID},
    event_id {INT} NOT NULL UNIQUE REFERENCES events(id),
    at TEXT NOT NULL,
    decision TEXT NOT NULL,
    detail TEXT NOT NULL,
    action_id {INT}
);
CREATE TABLE IF NOT EXISTS actions (
    id {ID},
    created_at TEXT NOT NULL,
    cluster TEXT NOT NULL,
    plan TEXT NOT NULL,
    rule TEXT NOT NULL,
    intent TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS actions_intent ON actions (intent);
CREATE INDEX IF NOT EXISTS actions_cluster ON actions (cluster, rule);
CREATE TABLE IF NOT EXISTS action_states (
    id {ID},
    action_id {INT} NOT NULL REFERENCES actions(id),
    at TEXT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS action_states_action ON action_states (action_id, id);
CREATE TABLE IF NOT EXISTS approvals (
    id {ID},
    action_id {INT} NOT NULL REFERENCES actions(id),
    at TEXT NOT NULL,
    decision TEXT NOT NULL,
    who TEXT NOT NULL,
    why TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS executions (
    id {ID},
    action_id {INT} NOT NULL UNIQUE REFERENCES actions(id),
    started_at TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS execution_results (
    id {ID},
    action_id {INT} NOT NULL UNIQUE REFERENCES actions(id),
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS verifications (
    id {ID},
    action_id {INT} NOT NULL REFERENCES actions(id),
    cluster TEXT NOT NULL,
    at TEXT NOT NULL,
    succeeded {BOOL} NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS standby_sightings (
    cluster TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    in_sync {BOOL} NOT NULL,
    detail TEXT NOT NULL,
    seen_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS controls (
    id {ID},
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    cluster TEXT,
    who TEXT NOT NULL,
    why TEXT NOT NULL
);
"#;

/// The DDL a backend runs when it opens the journal.
pub(crate) fn ddl(dialect: &Dialect) -> String {
    TABLES
        .replace("{ID}", dialect.id)
        .replace("{INT}", dialect.integer)
        .replace("{BOOL}", dialect.boolean)
}

/// The current state of action `a`: its latest state row.
pub(crate) const CURRENT_STATE: &str =
    "(SELECT s.state FROM action_states s WHERE s.action_id = a.id ORDER BY s.id DESC LIMIT 1)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_filled_in() {
        for dialect in [&SQLITE, &POSTGRES] {
            let ddl = ddl(dialect);
            assert!(!ddl.contains('{'), "{ddl}");
            assert_eq!(ddl.matches("CREATE TABLE").count(), 11);
        }
    }
}
