//! Reading and writing the coordinator's catalog rows.
//!
//! Greenplum's catalog relations are global; PostgreSQL's are per database, so the lab keeps
//! one copy in every database that has them and applies each change to all of them.

use std::fs::{File, OpenOptions};
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};
use postgres::Client;

use crate::catalog_sql::quote_literal;
use crate::conn;
use crate::error::{Context, Error, Result};

/// One row of `gp_segment_configuration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRow {
    pub dbid: i16,
    pub content: i16,
    pub role: char,
    pub preferred_role: char,
    pub mode: char,
    pub status: char,
    pub port: u16,
    pub hostname: String,
    pub address: String,
    pub datadir: String,
}

impl SegmentRow {
    pub fn is_up(&self) -> bool {
        self.status == 'u'
    }
    pub fn in_preferred_role(&self) -> bool {
        self.role == self.preferred_role
    }
}

fn first_char(s: &str) -> char {
    s.chars().next().unwrap_or('?')
}

pub fn read_segments(client: &mut Client) -> Result<Vec<SegmentRow>> {
    let rows = client
        .query(
            "SELECT dbid, content, role::text, preferred_role::text, mode::text, status::text, \
             port, coalesce(hostname, ''), coalesce(address, ''), coalesce(datadir, '') \
             FROM pg_catalog.gp_segment_configuration ORDER BY content, role DESC",
            &[],
        )
        .ctx(|| "reading gp_segment_configuration".into())?;
    rows.iter()
        .map(|r| {
            let port: i32 = r.get(6);
            Ok(SegmentRow {
                dbid: r.get(0),
                content: r.get(1),
                role: first_char(r.get(2)),
                preferred_role: first_char(r.get(3)),
                mode: first_char(r.get(4)),
                status: first_char(r.get(5)),
                port: u16::try_from(port)
                    .map_err(|_| Error::Invalid(format!("catalog port {port} out of range")))?,
                hostname: r.get(7),
                address: r.get(8),
                datadir: r.get(9),
            })
        })
        .collect()
}

/// Reads the catalog of the coordinator on `port`.
pub fn read_segments_at(port: u16) -> Result<Vec<SegmentRow>> {
    let mut c = conn::connect(port)?;
    read_segments(&mut c)
}

/// The acting primary and the mirror of one content, from catalog rows.
pub fn pair(rows: &[SegmentRow], content: i16) -> (Option<&SegmentRow>, Option<&SegmentRow>) {
    let p = rows.iter().find(|r| r.content == content && r.role == 'p');
    let m = rows.iter().find(|r| r.content == content && r.role == 'm');
    (p, m)
}

/// A change to the catalog, rendered to SQL once and applied to every database.
#[derive(Debug, Clone, Default)]
pub struct Change {
    statements: Vec<String>,
}

impl Change {
    pub fn new() -> Self {
        Change::default()
    }

    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    /// Sets role, status and mode of one instance.
    pub fn set(&mut self, dbid: i16, role: char, status: char, mode: char) -> &mut Self {
        self.statements.push(format!(
            "UPDATE pg_catalog.gp_segment_configuration SET role = '{role}', status = '{status}', mode = '{mode}' WHERE dbid = {dbid}"
        ));
        self
    }

    /// Sets role, status and mode and writes FTS's history line for it.
    pub fn fts_set(
        &mut self,
        dbid: i16,
        content: i16,
        role: char,
        status: char,
        mode: char,
    ) -> &mut Self {
        self.set(dbid, role, status, mode);
        self.history(
            dbid,
            &format!("FTS: update role, status, and mode for dbid {dbid} with contentid {content} to {role}, {status}, and {mode}"),
        )
    }

    pub fn history(&mut self, dbid: i16, text: &str) -> &mut Self {
        self.statements.push(format!(
            "INSERT INTO pg_catalog.gp_configuration_history VALUES (clock_timestamp(), {dbid}, {})",
            quote_literal(text)
        ));
        self
    }

    pub fn sql(&mut self, statement: impl Into<String>) -> &mut Self {
        self.statements.push(statement.into());
        self
    }

    /// Applies the change in one transaction per database (coordinator-local commit: the
    /// lab's own writes never wait on a standby that may be dead).
    pub fn apply(&self, coordinator_port: u16) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let body = self.statements.join(";\n");
        for db in catalog_databases(coordinator_port)? {
            let mut c = conn::connect_db(coordinator_port, &db)?;
            c.batch_execute(&format!(
                "SET synchronous_commit = local; BEGIN; {body}; COMMIT;"
            ))
            .ctx(|| format!("updating the catalog in database {db}"))?;
        }
        Ok(())
    }
}

/// Databases that carry the lab's catalog relations.
pub fn catalog_databases(coordinator_port: u16) -> Result<Vec<String>> {
    let mut c = conn::connect(coordinator_port)?;
    let mut dbs = Vec::new();
    for row in c
        .query(
            "SELECT datname FROM pg_database WHERE datallowconn ORDER BY datname",
            &[],
        )
        .ctx(|| "listing databases".into())?
    {
        let db: String = row.get(0);
        let mut dc = conn::connect_db(coordinator_port, &db)?;
        let has: bool = dc
            .query_one(
                "SELECT to_regclass('pg_catalog.gp_segment_configuration') IS NOT NULL",
                &[],
            )
            .ctx(|| format!("checking catalog relations in {db}"))?
            .get(0);
        if has {
            dbs.push(db);
        }
    }
    Ok(dbs)
}

/// Read-modify-write sections of the FTS daemon and the tool stand-ins take this lock, so
/// a probe never writes over a change made while it looked (Greenplum serializes them in
/// the coordinator).
pub fn lock(dir: &Path) -> Result<Flock<File>> {
    let path = dir.join("catalog.lock");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .ctx(|| format!("opening {}", path.display()))?;
    Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| Error::Io {
        context: format!("locking {}", path.display()),
        source: e.into(),
    })
}

/// The insert for one catalog row.
pub fn insert_row_sql(r: &SegmentRow) -> String {
    format!(
        "INSERT INTO pg_catalog.gp_segment_configuration (dbid, content, role, preferred_role, mode, status, port, hostname, address, datadir) \
         VALUES ({}, {}, '{}', '{}', '{}', '{}', {}, {}, {}, {})",
        r.dbid,
        r.content,
        r.role,
        r.preferred_role,
        r.mode,
        r.status,
        r.port,
        quote_literal(&r.hostname),
        quote_literal(&r.address),
        quote_literal(&r.datadir)
    )
}
