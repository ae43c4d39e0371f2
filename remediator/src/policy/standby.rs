//! Which of a cluster's endpoints is its standby. The policy names the standby by the host its
//! tools run on (`standby.host`, `standby.port`) and the catalog endpoints by how they are
//! reached (`endpoints`); the two may be spelled differently (`vm` and `localhost`). Matched
//! as text they missed each other, so activation was refused with the standby alive (issue
//! 12, found on a real cluster). They are matched by text first, then by the addresses both
//! resolve to, once, when the policy is loaded; no match refuses the policy.

use std::collections::BTreeSet;
use std::net::{SocketAddr, ToSocketAddrs};

use greenplum_catalog::Endpoint;

use super::Standby;

/// The endpoint (as the policy writes it) that is this standby, or why there is none.
pub fn standby_endpoint(standby: &Standby, endpoints: &[String]) -> Result<String, String> {
    let wanted = format!("{}:{}", standby.host, standby.port);
    let parsed: Vec<(&String, Endpoint)> = endpoints
        .iter()
        .filter_map(|text| text.parse::<Endpoint>().ok().map(|e| (text, e)))
        .collect();
    if let Some((text, _)) = parsed
        .iter()
        .find(|(_, e)| e.host == standby.host && e.port == standby.port)
    {
        return Ok((*text).clone());
    }
    let standby_addresses = addresses(&standby.host, standby.port)
        .map_err(|e| format!("standby {wanted}: cannot resolve {:?}: {e}", standby.host))?;
    for (text, endpoint) in &parsed {
        // An endpoint that does not resolve now cannot be the standby we can prove.
        let Ok(found) = addresses(&endpoint.host, endpoint.port) else {
            continue;
        };
        if !found.is_disjoint(&standby_addresses) {
            return Ok((*text).clone());
        }
    }
    Err(format!(
        "standby {wanted} is none of the cluster's endpoints ({}), not even by address: \
         list the standby in endpoints, as the exporter probes it",
        endpoints.join(", ")
    ))
}

fn addresses(host: &str, port: u16) -> std::io::Result<BTreeSet<SocketAddr>> {
    Ok((host, port).to_socket_addrs()?.collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standby(host: &str, port: u16) -> Standby {
        Standby {
            host: host.into(),
            port,
            datadir: None,
            endpoint: String::new(),
        }
    }

    fn endpoints(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_same_text_matches_without_resolving() {
        let found = standby_endpoint(
            &standby("smdw.invalid", 5432),
            &endpoints(&["mdw.invalid:5432", "smdw.invalid:5432"]),
        );
        assert_eq!(found.as_deref(), Ok("smdw.invalid:5432"));
    }

    #[test]
    fn other_spellings_of_one_address_match() {
        // The field case: the standby by host name, the endpoints by `localhost`.
        let found = standby_endpoint(
            &standby("127.0.0.1", 6001),
            &endpoints(&["localhost:6000", "localhost:6001"]),
        );
        assert_eq!(found.as_deref(), Ok("localhost:6001"));
    }

    #[test]
    fn a_standby_that_is_no_endpoint_is_refused_with_the_endpoints() {
        let found = standby_endpoint(
            &standby("127.0.0.1", 6002),
            &endpoints(&["localhost:6000", "localhost:6001"]),
        );
        let error = found.expect_err("no endpoint is the standby");
        assert!(error.contains("localhost:6000, localhost:6001"), "{error}");
        let error = standby_endpoint(&standby("no-such-host.invalid", 1), &endpoints(&["a:1"]))
            .expect_err("unresolvable");
        assert!(error.contains("cannot resolve"), "{error}");
    }
}
