//! greenplum-remediator: alert-driven healing of Greenplum clusters that can never make
//! things worse. Data flows one way: webhook -> journal -> planner lane (policy, fresh
//! catalog read, gates, approval) -> executor -> verification -> journal.

pub mod actions;
pub mod alert;
pub mod api;
pub mod auth;
pub mod backends;
pub mod executor;
pub mod gates;
pub mod http;
pub mod journal;
pub mod metrics;
pub mod planner;
pub mod policy;
pub mod source;
pub mod tls;
pub mod verify;
pub mod webhook;
