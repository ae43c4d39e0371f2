//! The example files shipped in deploy/examples are accepted by the exporter as they are, so
//! a user copying them starts from something that works.

use std::path::Path;

use greenplum_exporter::clusters::ClustersFile;
use greenplum_exporter::web_config::WebConfig;

fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/examples")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn web_config_example_parses_and_checks_its_documented_password() {
    let config = WebConfig::parse(&example("exporter-web.yml"), Path::new("exporter-web.yml"))
        .expect("example web config");
    let auth = config.basic_auth().expect("basic auth users");
    let header = |user: &str, password: &str| {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    };
    assert!(auth.check(Some(&header("prometheus", "change-me"))));
    assert!(!auth.check(Some(&header("prometheus", "wrong"))));
}

#[test]
fn clusters_example_parses() {
    let file = ClustersFile::parse(&example("exporter-clusters.yml")).expect("example clusters");
    assert_eq!(
        file.clusters.keys().collect::<Vec<_>>(),
        vec!["gp-dev", "gp-prod"]
    );
}
