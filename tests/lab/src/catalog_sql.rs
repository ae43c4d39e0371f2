//! The Greenplum relations the lab installs on a plain PostgreSQL 15 coordinator, per flavor.
//!
//! Greenplum's catalog relations live in `pg_catalog`; with `allow_system_table_mods` a
//! superuser may create relations and replace functions there, so unqualified names used by
//! production SQL (`gp_segment_configuration`, `version()`, `pg_current_xlog_location()`)
//! resolve exactly as on a real cluster. Helpers live in the `gplab` schema.
//!
//! Queries that Greenplum dispatches to segments (`gp_stat_replication`,
//! `gp_stat_progress_basebackup`, `gp_dist_random`) are plpgsql functions that reach every
//! acting primary through `dblink`, and fail with Greenplum's own error when one does not
//! answer.

use crate::config::Flavor;

/// Which way `gplab.segment_*` helpers get per-segment facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Live: dblink to each acting primary.
    Cluster,
    /// Catalog-only: synthetic rows in plain tables, no segment servers.
    CatalogOnly,
}

/// The full script, run once per database as a superuser.
pub fn install_script(flavor: Flavor, mode: Mode) -> String {
    let mut s = String::new();
    s.push_str(COMMON);
    s.push_str(&segment_configuration(flavor));
    s.push_str(&format!(
        "CREATE TABLE pg_catalog.gp_configuration_history (\"time\" timestamptz NOT NULL, dbid smallint NOT NULL, {} text);\n\
         GRANT SELECT ON pg_catalog.gp_configuration_history TO PUBLIC;\n",
        flavor.history_column()
    ));
    s.push_str(&format!(
        "CREATE OR REPLACE FUNCTION pg_catalog.version() RETURNS text LANGUAGE sql STABLE AS $v$ SELECT {}::text $v$;\n",
        quote_literal(flavor.version_string())
    ));
    match mode {
        Mode::Cluster => {
            s.push_str(DISPATCH);
            s.push_str(&replication_view(flavor));
            if !flavor.is_gp6() {
                s.push_str(BASEBACKUP_PROGRESS);
            }
        }
        Mode::CatalogOnly => {
            s.push_str(SYNTHETIC_DISPATCH);
            s.push_str(&synthetic_replication_table(flavor));
            if !flavor.is_gp6() {
                s.push_str(SYNTHETIC_BASEBACKUP_PROGRESS);
            }
        }
    }
    s.push_str(DIST_RANDOM);
    if flavor.is_gp6() {
        s.push_str(GP6_NAMES);
    }
    expand(&s)
}

pub fn quote_literal(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

fn segment_configuration(flavor: Flavor) -> String {
    let warehouse = if flavor == Flavor::Cloudberry {
        ",\n  warehouseid oid NOT NULL DEFAULT 0"
    } else {
        ""
    };
    format!(
        "CREATE TABLE pg_catalog.gp_segment_configuration (\n  dbid smallint NOT NULL,\n  content smallint NOT NULL,\n  role \"char\" NOT NULL,\n  preferred_role \"char\" NOT NULL,\n  mode \"char\" NOT NULL,\n  status \"char\" NOT NULL,\n  port integer NOT NULL,\n  hostname text,\n  address text,\n  datadir text{warehouse}\n);\n\
         CREATE UNIQUE INDEX gp_segment_config_dbid_index ON pg_catalog.gp_segment_configuration (dbid);\n\
         CREATE UNIQUE INDEX gp_segment_config_content_preferred_role_index ON pg_catalog.gp_segment_configuration (content, preferred_role);\n\
         GRANT SELECT ON pg_catalog.gp_segment_configuration TO PUBLIC;\n"
    )
}

/// Columns of PostgreSQL 15's `pg_stat_replication`, the shape `gplab.segment_replication()`
/// returns (after `gp_segment_id`).
const PG15_REPLICATION_COLUMNS: &str = "pid integer, usesysid oid, usename name, application_name text, \
client_addr inet, client_hostname text, client_port integer, backend_start timestamptz, backend_xmin xid, \
state text, sent_lsn pg_lsn, write_lsn pg_lsn, flush_lsn pg_lsn, replay_lsn pg_lsn, write_lag interval, \
flush_lag interval, replay_lag interval, sync_priority integer, sync_state text, reply_time timestamptz";

const COMMON: &str = r#"
SET allow_system_table_mods = on;
CREATE SCHEMA gplab;
CREATE EXTENSION IF NOT EXISTS dblink SCHEMA gplab;

-- PostgreSQL's own pg_stat_replication, kept under gplab: the gp6 flavor replaces the
-- pg_catalog view with GP6 column names, and the lab still needs the real one.
DO $do$ BEGIN
  EXECUTE 'CREATE VIEW gplab.stat_replication AS '
       || pg_get_viewdef('pg_catalog.pg_stat_replication'::regclass);
END $do$;

-- Aliases to C implementations the lab replaces in pg_catalog.
CREATE FUNCTION gplab.real_current_wal_lsn() RETURNS pg_lsn LANGUAGE internal STRICT VOLATILE
  AS 'pg_current_wal_lsn';

CREATE TABLE pg_catalog.gp_id (gpname name, numsegments smallint, dbid smallint, content smallint);
GRANT SELECT ON pg_catalog.gp_id TO PUBLIC;

CREATE FUNCTION pg_catalog.gp_execution_segment() RETURNS integer LANGUAGE sql STABLE
  AS $f$ SELECT -1 $f$;

-- gp_request_fts_probe_scan(): sequences are not transactional, so a request made inside
-- a transaction is visible to the FTS daemon at once (a NOTIFY would wait for commit). The
-- daemon advances fts_probe_done with setval() after each probe that saw the request.
CREATE SEQUENCE gplab.fts_probe_requested;
CREATE SEQUENCE gplab.fts_probe_done MINVALUE 0 START 0;
CREATE FUNCTION pg_catalog.gp_request_fts_probe_scan() RETURNS boolean LANGUAGE plpgsql VOLATILE AS $f$
DECLARE
  want bigint := nextval('gplab.fts_probe_requested');
  deadline timestamptz := clock_timestamp() + interval '120 seconds';
BEGIN
  LOOP
    IF (SELECT last_value FROM gplab.fts_probe_done) >= want THEN
      RETURN true;
    END IF;
    IF clock_timestamp() > deadline THEN
      RAISE EXCEPTION 'FTS probe did not complete within 120 seconds'
        USING HINT = 'Is the gplab FTS daemon running (gplab status)?';
    END IF;
    PERFORM pg_sleep(0.05);
  END LOOP;
END $f$;
"#;

const DISPATCH: &str = r#"
CREATE FUNCTION gplab.segment_conninfo(port integer) RETURNS text LANGUAGE sql IMMUTABLE AS $f$
  SELECT format('host=127.0.0.1 port=%s user=gpadmin dbname=postgres connect_timeout=3 application_name=gplab_dispatch', port)
$f$;

-- What Greenplum raises when a dispatched query meets a segment FTS has not acted on yet.
CREATE FUNCTION gplab.dispatch_failed() RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
  RAISE EXCEPTION 'failed to acquire resources on one or more segments'
    USING DETAIL = 'FTS detected one or more segments are down';
END $f$;

-- One row per walsender of the coordinator (gp_segment_id -1), then for every content that
-- has a mirror, every walsender of its acting primary, or one all-NULL row when none.
CREATE FUNCTION gplab.segment_replication()
RETURNS TABLE(gp_segment_id integer, PG15_COLUMNS, sync_error text)
LANGUAGE plpgsql VOLATILE AS $f$
#variable_conflict use_column
DECLARE
  seg record;
BEGIN
  RETURN QUERY SELECT -1, r.*, 'none'::text FROM gplab.stat_replication r ORDER BY r.backend_start;
  FOR seg IN
    SELECT p.content, p.port FROM pg_catalog.gp_segment_configuration p
    WHERE p.role = 'p' AND p.content >= 0
      AND EXISTS (SELECT 1 FROM pg_catalog.gp_segment_configuration m
                  WHERE m.content = p.content AND m.role = 'm')
    ORDER BY p.content
  LOOP
    BEGIN
      RETURN QUERY SELECT seg.content::integer, t.*, 'none'::text
        FROM gplab.dblink(gplab.segment_conninfo(seg.port),
          'SELECT * FROM pg_catalog.pg_stat_replication ORDER BY backend_start')
          AS t(PG15_COLUMNS);
    EXCEPTION WHEN OTHERS THEN
      PERFORM gplab.dispatch_failed();
    END;
    IF NOT FOUND THEN
      RETURN QUERY SELECT seg.content::integer, NULL::integer, NULL::oid, NULL::name, NULL::text,
        NULL::inet, NULL::text, NULL::integer, NULL::timestamptz, NULL::xid, NULL::text,
        NULL::pg_lsn, NULL::pg_lsn, NULL::pg_lsn, NULL::pg_lsn, NULL::interval, NULL::interval,
        NULL::interval, NULL::integer, NULL::text, NULL::timestamptz, 'none'::text;
    END IF;
  END LOOP;
END $f$;

-- Current WAL position of one acting primary, for gp_dist_random().
CREATE FUNCTION gplab.segment_lsn(content integer, port integer) RETURNS text LANGUAGE plpgsql VOLATILE AS $f$
DECLARE
  l text;
BEGIN
  SELECT t.lsn INTO l FROM gplab.dblink(gplab.segment_conninfo(port),
    'SELECT pg_catalog.pg_current_wal_lsn()::text') AS t(lsn text);
  RETURN l;
EXCEPTION WHEN OTHERS THEN
  PERFORM gplab.dispatch_failed();
  RETURN NULL;
END $f$;
"#;

const BASEBACKUP_PROGRESS: &str = r#"
CREATE FUNCTION gplab.segment_basebackup_progress()
RETURNS TABLE(gp_segment_id integer, pid integer, phase text, backup_total bigint,
              backup_streamed bigint, tablespaces_total bigint, tablespaces_streamed bigint)
LANGUAGE plpgsql VOLATILE AS $f$
DECLARE
  seg record;
BEGIN
  FOR seg IN SELECT p.content, p.port FROM pg_catalog.gp_segment_configuration p
             WHERE p.role = 'p' AND p.content >= 0 ORDER BY p.content
  LOOP
    BEGIN
      RETURN QUERY SELECT seg.content::integer, t.*
        FROM gplab.dblink(gplab.segment_conninfo(seg.port),
          'SELECT pid, phase, backup_total, backup_streamed, tablespaces_total, tablespaces_streamed
             FROM pg_catalog.pg_stat_progress_basebackup')
          AS t(pid integer, phase text, backup_total bigint, backup_streamed bigint,
               tablespaces_total bigint, tablespaces_streamed bigint);
    EXCEPTION WHEN OTHERS THEN
      PERFORM gplab.dispatch_failed();
    END;
  END LOOP;
END $f$;
CREATE VIEW pg_catalog.gp_stat_progress_basebackup AS
  SELECT * FROM gplab.segment_basebackup_progress();
GRANT SELECT ON pg_catalog.gp_stat_progress_basebackup TO PUBLIC;
"#;

const SYNTHETIC_DISPATCH: &str = r#"
CREATE TABLE gplab.synthetic_lsn (content integer PRIMARY KEY, lsn pg_lsn NOT NULL);
CREATE FUNCTION gplab.segment_lsn(content integer, port integer) RETURNS text LANGUAGE sql STABLE AS $f$
  SELECT s.lsn::text FROM gplab.synthetic_lsn s WHERE s.content = $1
$f$;
"#;

const SYNTHETIC_BASEBACKUP_PROGRESS: &str = r#"
CREATE TABLE pg_catalog.gp_stat_progress_basebackup (gp_segment_id integer, pid integer,
  phase text, backup_total bigint, backup_streamed bigint, tablespaces_total bigint,
  tablespaces_streamed bigint);
GRANT SELECT ON pg_catalog.gp_stat_progress_basebackup TO PUBLIC;
"#;

/// `SELECT gp_segment_id, pg_current_xlog_location() FROM gp_dist_random('gp_id')` must answer
/// one LSN per segment, but PostgreSQL evaluates the select list on the coordinator. So
/// gp_dist_random() fetches each acting primary's LSN while it builds its rows and stashes
/// them, in row order, in the session variable `gplab.dispatch`, tagged with the statement's
/// start time; pg_current_wal_lsn() (and through it pg_current_xlog_location()) pops the next
/// stashed value while the tag matches the running statement, and otherwise answers the
/// coordinator's own position, so a later plain call is never served a stale value.
const DIST_RANDOM: &str = r#"
CREATE FUNCTION pg_catalog.gp_dist_random(relation text)
RETURNS TABLE(gp_segment_id integer, gpname name, numsegments smallint, dbid smallint, content smallint)
LANGUAGE plpgsql VOLATILE AS $f$
#variable_conflict use_column
DECLARE
  seg record;
  lsns text[] := '{}';
  total smallint;
BEGIN
  IF relation NOT IN ('gp_id', 'pg_catalog.gp_id') THEN
    RAISE EXCEPTION 'gplab: gp_dist_random() knows only gp_id, not %', relation;
  END IF;
  SELECT count(*) INTO total FROM pg_catalog.gp_segment_configuration c
    WHERE c.role = 'p' AND c.content >= 0;
  FOR seg IN SELECT c.content, c.dbid, c.port FROM pg_catalog.gp_segment_configuration c
             WHERE c.role = 'p' AND c.content >= 0 ORDER BY c.content
  LOOP
    lsns := lsns || gplab.segment_lsn(seg.content, seg.port);
    gp_segment_id := seg.content;
    gpname := 'Greenplum';
    numsegments := total;
    dbid := seg.dbid;
    content := seg.content;
    RETURN NEXT;
  END LOOP;
  PERFORM set_config('gplab.dispatch', statement_timestamp()::text || '|' || array_to_string(lsns, ','), false);
END $f$;

CREATE FUNCTION gplab.current_wal_lsn() RETURNS pg_lsn LANGUAGE plpgsql VOLATILE AS $f$
DECLARE
  stash text := current_setting('gplab.dispatch', true);
  items text[];
BEGIN
  IF stash IS NOT NULL AND split_part(stash, '|', 1) = statement_timestamp()::text THEN
    items := string_to_array(split_part(stash, '|', 2), ',');
    IF coalesce(array_length(items, 1), 0) >= 1 THEN
      PERFORM set_config('gplab.dispatch',
        statement_timestamp()::text || '|' || array_to_string(items[2:], ','), false);
      RETURN items[1]::pg_lsn;
    END IF;
  END IF;
  RETURN gplab.real_current_wal_lsn();
END $f$;

-- fmgr calls a built-in function by OID straight to its C code, whatever pg_proc says; but
-- the planner inlines a one-line SQL function before that, so the replacement must be SQL.
CREATE OR REPLACE FUNCTION pg_catalog.pg_current_wal_lsn() RETURNS pg_lsn LANGUAGE sql VOLATILE
  AS $f$ SELECT gplab.current_wal_lsn() $f$;
"#;

/// GP6 (PostgreSQL 9.4) names for the WAL functions and its pg_stat_replication columns.
const GP6_NAMES: &str = r#"
CREATE FUNCTION pg_catalog.pg_current_xlog_location() RETURNS pg_lsn LANGUAGE sql VOLATILE
  AS $f$ SELECT gplab.current_wal_lsn() $f$;
CREATE FUNCTION pg_catalog.pg_current_xlog_insert_location() RETURNS pg_lsn LANGUAGE sql VOLATILE
  AS $f$ SELECT pg_catalog.pg_current_wal_insert_lsn() $f$;
CREATE FUNCTION pg_catalog.pg_last_xlog_receive_location() RETURNS pg_lsn LANGUAGE sql VOLATILE
  AS $f$ SELECT pg_catalog.pg_last_wal_receive_lsn() $f$;
CREATE FUNCTION pg_catalog.pg_last_xlog_replay_location() RETURNS pg_lsn LANGUAGE sql VOLATILE
  AS $f$ SELECT pg_catalog.pg_last_wal_replay_lsn() $f$;
CREATE FUNCTION pg_catalog.pg_xlog_location_diff(pg_lsn, pg_lsn) RETURNS numeric LANGUAGE sql IMMUTABLE
  AS $f$ SELECT pg_catalog.pg_wal_lsn_diff($1, $2) $f$;
CREATE FUNCTION pg_catalog.pg_xlogfile_name(pg_lsn) RETURNS text LANGUAGE sql IMMUTABLE
  AS $f$ SELECT pg_catalog.pg_walfile_name($1) $f$;
DROP VIEW pg_catalog.pg_stat_replication;
CREATE VIEW pg_catalog.pg_stat_replication AS
  SELECT pid, usesysid, usename, application_name, client_addr, client_hostname, client_port,
         backend_start, backend_xmin, state, sent_lsn AS sent_location,
         write_lsn AS write_location, flush_lsn AS flush_location,
         replay_lsn AS replay_location, sync_priority, sync_state
  FROM gplab.stat_replication;
GRANT SELECT ON pg_catalog.pg_stat_replication TO PUBLIC;
"#;

fn replication_columns(flavor: Flavor) -> &'static str {
    if flavor.is_gp6() {
        "gp_segment_id, pid, usesysid, usename, application_name, client_addr, client_hostname, \
         client_port, backend_start, backend_xmin, state, sent_lsn AS sent_location, \
         write_lsn AS write_location, flush_lsn AS flush_location, replay_lsn AS replay_location, \
         sync_priority, sync_state, sync_error"
    } else {
        "gp_segment_id, pid, usesysid, usename, application_name, client_addr, client_hostname, \
         client_port, backend_start, backend_xmin, state, sent_lsn, write_lsn, flush_lsn, replay_lsn, \
         write_lag, flush_lag, replay_lag, sync_priority, sync_state, reply_time, sync_error"
    }
}

fn replication_view(flavor: Flavor) -> String {
    format!(
        "CREATE VIEW pg_catalog.gp_stat_replication AS SELECT {} FROM gplab.segment_replication();\n\
         GRANT SELECT ON pg_catalog.gp_stat_replication TO PUBLIC;\n",
        replication_columns(flavor)
    )
}

/// Catalog-only mode: the same columns, as a plain table the generator fills.
fn synthetic_replication_table(flavor: Flavor) -> String {
    format!(
        "CREATE TABLE gplab.synthetic_replication (gp_segment_id integer, {PG15_REPLICATION_COLUMNS}, sync_error text);\n\
         CREATE VIEW pg_catalog.gp_stat_replication AS SELECT {} FROM gplab.synthetic_replication;\n\
         GRANT SELECT ON pg_catalog.gp_stat_replication TO PUBLIC;\n",
        replication_columns(flavor)
    )
}

/// Expands the column-list placeholder used inside the dispatch functions.
fn expand(script: &str) -> String {
    script.replace("PG15_COLUMNS", PG15_REPLICATION_COLUMNS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gp6_script_uses_location_names_and_desc() {
        let s = install_script(Flavor::Gp6, Mode::Cluster);
        assert!(s.contains("sent_lsn AS sent_location"));
        assert!(s.contains("\"desc\" text"));
        assert!(s.contains("pg_xlog_location_diff"));
        assert!(!s.contains("PG15_COLUMNS"));
        assert!(!s.contains("warehouseid"));
    }

    #[test]
    fn gp7_and_cloudberry_keep_postgres_names() {
        let s = install_script(Flavor::Gp7, Mode::Cluster);
        assert!(s.contains("replay_lag, sync_priority, sync_state, reply_time, sync_error"));
        assert!(s.contains("description text"));
        assert!(!s.contains("pg_current_xlog_location"));
        assert!(s.contains("gp_stat_progress_basebackup"));
        let c = install_script(Flavor::Cloudberry, Mode::CatalogOnly);
        assert!(c.contains("warehouseid oid"));
        assert!(c.contains("Apache Cloudberry"));
    }
}
