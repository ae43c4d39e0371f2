//! Connections to lab servers. Everything listens on 127.0.0.1; hosts are symbolic.

use std::time::Duration;

use postgres::error::SqlState;
use postgres::{Client, Config, NoTls};

use crate::error::{Context, Result};

pub const USER: &str = "gpadmin";
pub const DATABASE: &str = "postgres";
pub const HOST: &str = "127.0.0.1";

pub fn config(port: u16, dbname: &str, timeout: Duration) -> Config {
    let mut c = Config::new();
    c.host(HOST)
        .port(port)
        .user(USER)
        .dbname(dbname)
        .application_name("gplab")
        .connect_timeout(timeout);
    c
}

pub fn connect(port: u16) -> Result<Client> {
    connect_db(port, DATABASE)
}

pub fn connect_db(port: u16, dbname: &str) -> Result<Client> {
    config(port, dbname, Duration::from_secs(5))
        .connect(NoTls)
        .ctx(|| format!("connecting to {HOST}:{port}/{dbname}"))
}

/// A libpq connection string for the same endpoint (used by dblink, pg_rewind, pg_basebackup).
pub fn conninfo(port: u16) -> String {
    format!("host={HOST} port={port} user={USER} dbname={DATABASE}")
}

/// What a server on a port looks like from outside, without trusting any catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Accepts logins and answers `SELECT 1`.
    Up,
    /// The postmaster is alive but refuses logins (a mirror or standby replaying WAL, or
    /// a server starting up or shutting down): SQLSTATE 57P03.
    Rejecting,
    /// Nothing answers.
    Down,
}

pub fn probe(port: u16, timeout: Duration) -> Probe {
    match config(port, DATABASE, timeout).connect(NoTls) {
        Ok(mut c) => match c.simple_query("SELECT 1") {
            Ok(_) => Probe::Up,
            Err(_) => Probe::Down,
        },
        Err(e) if e.code() == Some(&SqlState::CANNOT_CONNECT_NOW) => Probe::Rejecting,
        Err(_) => Probe::Down,
    }
}

/// Is `port` free to listen on right now?
pub fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind((HOST, port)).is_ok()
}
