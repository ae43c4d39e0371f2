//! `greenplum-exporter`: every high-availability signal of a Greenplum cluster as Prometheus
//! metrics. Data flows one way: the catalog crate reads the cluster into a `Snapshot`,
//! [`metrics`] turns one snapshot into one scrape's families, [`http`] serves them, and
//! [`run`] wires flags to all of it.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod check;
pub mod cli;
pub mod clusters;
pub mod exposition;
pub mod http;
pub mod memory;
pub mod metrics;
pub mod run;
pub mod scrape;
pub mod web_config;
