//! User data for integrity checks: rows written straight to each acting primary (as
//! utility-mode sessions would), and a digest over every committed row.

use sha2::{Digest, Sha256};

use crate::catalog::{self, SegmentRow};
use crate::conn;
use crate::error::{invalid, Context, Result};

const TABLE: &str = "gplab_load";

pub fn create_table(port: u16) -> Result<()> {
    let mut c = conn::connect(port)?;
    c.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {TABLE} (id bigint PRIMARY KEY, content integer NOT NULL, payload text NOT NULL)"
    ))
    .ctx(|| format!("creating {TABLE} on port {port}"))
}

fn acting_primaries(coordinator_port: u16) -> Result<Vec<SegmentRow>> {
    let rows = catalog::read_segments_at(coordinator_port)?;
    Ok(rows
        .into_iter()
        .filter(|r| r.content >= 0 && r.role == 'p')
        .collect())
}

/// Inserts `rows` new rows, row i going to content i mod N, continuing after the highest id
/// already stored. Returns the number inserted.
pub fn load(coordinator_port: u16, rows: u64) -> Result<u64> {
    let primaries = acting_primaries(coordinator_port)?;
    let n = primaries.len() as i64;
    if n == 0 {
        return invalid("the catalog lists no acting primary");
    }
    let mut start = 0i64;
    for p in &primaries {
        let mut c = conn::connect(p.port)?;
        let max: i64 = c
            .query_one(&format!("SELECT coalesce(max(id), 0) FROM {TABLE}"), &[])
            .ctx(|| format!("reading {TABLE} on content {}", p.content))?
            .get(0);
        start = start.max(max);
    }
    let rows = i64::try_from(rows).or_else(|_| invalid("too many rows"))?;
    for p in &primaries {
        let mut c = conn::connect(p.port)?;
        c.execute(
            &format!(
                "INSERT INTO {TABLE} (id, content, payload) \
                 SELECT g, $1::bigint::integer, md5(g::text) FROM generate_series($2::bigint + 1, $2::bigint + $3::bigint) g \
                 WHERE (g % $4::bigint) = $1::bigint"
            ),
            &[&i64::from(p.content), &start, &rows, &n],
        )
        .ctx(|| format!("loading rows into content {}", p.content))?;
    }
    Ok(rows as u64)
}

/// Digest and count of every committed row, read from the acting primaries in content
/// order. Stable across failover and recovery when nothing was lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub rows: u64,
    pub digest: String,
}

impl std::fmt::Display for Checksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} rows sha256:{}", self.rows, self.digest)
    }
}

pub fn checksum(coordinator_port: u16) -> Result<Checksum> {
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    for p in acting_primaries(coordinator_port)? {
        let mut c = conn::connect(p.port)?;
        let row = c
            .query_one(
                &format!(
                    "SELECT count(*), coalesce(md5(string_agg(id::text || ':' || content || ':' || payload, ',' ORDER BY id)), '') FROM {TABLE}"
                ),
                &[],
            )
            .ctx(|| format!("checksumming content {}", p.content))?;
        let n: i64 = row.get(0);
        let d: String = row.get(1);
        hasher.update(format!("{}:{n}:{d};", p.content));
        total += n as u64;
    }
    let digest = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Checksum {
        rows: total,
        digest,
    })
}
