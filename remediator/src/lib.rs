//! greenplum-remediator: alert-driven healing of Greenplum clusters that can never make
//! things worse. Data flows one way: webhook -> journal -> planner lane (policy, fresh
//! catalog read, gates, approval) -> executor -> verification -> journal.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod actions;
pub mod alert;
pub mod api;
pub mod auth;
pub mod backends;
pub mod cli;
pub mod client;
pub mod deadline;
pub mod decision;
pub mod executor;
pub mod gates;
pub mod http;
pub mod journal;
pub mod metrics;
pub mod planner;
pub mod policy;
pub mod run;
pub mod source;
pub mod state;
pub mod tls;
pub mod verify;
pub mod webhook;
