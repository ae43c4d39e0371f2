//! The cluster as a whole: is a coordinator answering, what runs, what each configured
//! coordinator endpoint answered, and the one-word cluster state.

use greenplum_catalog::health::{ClusterState, Health};
use greenplum_catalog::{EndpointState, Snapshot};

use super::{Encoder, Family, Kind};

pub(super) static UP: Family = Family {
    name: "greenplum_up",
    help: "1 when the acting coordinator answered this scrape, 0 when no configured endpoint accepts logins outside recovery",
    kind: Kind::Gauge,
};

pub(super) static VERSION_INFO: Family = Family {
    name: "greenplum_version_info",
    help: "Product, product version and PostgreSQL base version of the acting coordinator",
    kind: Kind::Info,
};

pub(super) static ENDPOINT_STATE: Family = Family {
    name: "greenplum_endpoint_state",
    help: "What each configured coordinator endpoint answered this scrape (state set: coordinator, standby_in_recovery, rejecting, down)",
    kind: Kind::Gauge,
};

pub(super) static CLUSTER_STATE: Family = Family {
    name: "greenplum_cluster_state",
    help: "The one-word state of the segment tier (state set: healthy, unbalanced, unprotected, unavailable, unknown)",
    kind: Kind::Gauge,
};

pub(super) static FAMILIES: &[&Family] = &[&UP, &VERSION_INFO, &ENDPOINT_STATE, &CLUSTER_STATE];

/// Best first, the order dashboards list them in.
const CLUSTER_STATES: [ClusterState; 5] = [
    ClusterState::Healthy,
    ClusterState::Unbalanced,
    ClusterState::Unprotected,
    ClusterState::Unavailable,
    ClusterState::Unknown,
];

pub(super) fn collect(snapshot: &Snapshot, health: Option<&Health>, out: &mut Encoder) {
    out.family(&UP).sample(&[], snapshot.coordinator_up());
    if let Some(version) = &snapshot.version {
        out.family(&VERSION_INFO).info(
            &[
                ("version", (&version.product_version).into()),
                ("flavor", version.product.as_str().into()),
                ("pg_version", (&version.pg_version).into()),
            ],
            &[],
        );
    }
    let mut endpoints = out.family(&ENDPOINT_STATE);
    for endpoint in &snapshot.endpoints {
        endpoints.state_set(
            &[("endpoint", (&endpoint.endpoint).into())],
            "state",
            &EndpointState::ALL,
            endpoint.state,
            EndpointState::as_str,
        );
    }
    out.family(&CLUSTER_STATE).state_set(
        &[],
        "state",
        &CLUSTER_STATES,
        health.map_or(ClusterState::Unknown, Health::state),
        ClusterState::as_str,
    );
}
