//! Helpers for `tests/security.rs`: roles that must authenticate with a password on a lab
//! server (whose `pg_hba.conf` otherwise trusts local connections), and the places a secret
//! could leak to.

use std::path::Path;
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};

use super::GUARD;

/// A secret unique to this run, so finding it anywhere can only mean it leaked from here.
pub fn unique_secret(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{what}-{}-{nanos:x}-S3cr3t", std::process::id())
}

pub fn superuser(port: u16, dbname: &str) -> Client {
    Client::connect(
        &format!("host=127.0.0.1 port={port} user=gpadmin dbname={dbname}"),
        NoTls,
    )
    .expect("connect as the lab's superuser")
}

/// Creates `role` with `password` (plus `attributes`, e.g. `CREATEDB`) and makes the server
/// demand that password from it (scram-sha-256) while everyone else stays trusted. Returns
/// once a login without the password is refused and one with it is accepted, so a test that
/// later finds the service working knows the password was really used.
pub fn password_role(port: u16, datadir: &Path, role: &str, password: &str, attributes: &str) {
    let hba = datadir.join("pg_hba.conf");
    let old = std::fs::read_to_string(&hba).expect("read pg_hba.conf");
    let rules = format!(
        "host all {role} 127.0.0.1/32 scram-sha-256\nhost all {role} ::1/128 scram-sha-256\n"
    );
    // Rewriting the existing file keeps its owner (the server's user).
    std::fs::write(&hba, format!("{rules}{old}")).expect("write pg_hba.conf");
    let mut admin = superuser(port, "postgres");
    let literal = password.replace('\'', "''");
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN {attributes} PASSWORD '{literal}'; SELECT pg_reload_conf();"
        ))
        .expect("create the role");
    let login = |password: Option<&str>| {
        let mut config = postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(port)
            .user(role)
            .dbname("postgres")
            .connect_timeout(Duration::from_secs(5));
        if let Some(p) = password {
            config.password(p);
        }
        config.connect(NoTls).is_ok()
    };
    let deadline = Instant::now() + GUARD;
    while login(None) || !login(Some(password)) {
        assert!(
            Instant::now() < deadline,
            "{role} never came to need its password"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every row of every table of `dbname` (outside the system schemas), as text.
pub fn database_text(port: u16, dbname: &str) -> String {
    let mut client = superuser(port, dbname);
    let tables = client
        .query(
            "SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables
             WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
               AND table_type = 'BASE TABLE'",
            &[],
        )
        .expect("list tables");
    let mut text = String::new();
    for table in tables {
        let name: String = table.get(0);
        for row in client
            .query(&format!("SELECT t::text FROM {name} t"), &[])
            .expect("read table")
        {
            text.push_str(&row.get::<_, String>(0));
            text.push('\n');
        }
    }
    text
}

/// `/proc/<pid>/cmdline` with NULs as spaces: what every local user sees in `ps`.
pub fn cmdline(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).expect("read cmdline");
    assert!(!raw.is_empty(), "process {pid} has no cmdline (exited?)");
    String::from_utf8_lossy(&raw).replace('\0', " ")
}

/// Every file under `dir`, concatenated (lossy UTF-8); empty when `dir` does not exist.
pub fn files_text(dir: &Path) -> String {
    let mut text = String::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return text;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            text.push_str(&files_text(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    text
}

/// Fails naming the secret and the place it leaked to.
pub fn assert_absent(secrets: &[(&str, &str)], places: &[(&str, &str)]) {
    for (secret_name, secret) in secrets {
        for (place, text) in places {
            assert!(
                !text.contains(secret),
                "the {secret_name} leaked into {place}"
            );
        }
    }
}
