use super::*;

fn parse(text: &str) -> Result<ClusterConnection, String> {
    serde_saphyr::from_str(text).map_err(|e| {
        let line = e.location().map(|l| l.line());
        format!("line {line:?}: {e}")
    })
}

/// A caller's own keys beside the connection keys, as the remediator's cluster has them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Named {
    name: String,
}

#[derive(Debug)]
struct WithName(ClusterConnection, Named);

impl<'de> Deserialize<'de> for WithName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_with(d).map(|(c, n)| WithName(c, n))
    }
}

#[test]
fn every_key_and_the_defaults() {
    let full = parse(
        "endpoints: ['cdw:5432', '[::1]:6000']\nuser: gpmon\ndatabase: gpperfmon\npassword_file: pw\ntls: {ca_file: ca.crt, cert_file: c.crt, key_file: c.key}\nconnect_timeout: 2s\nstatement_timeout: 1m30s\n",
    )
    .unwrap();
    assert_eq!(
        full.endpoints().unwrap(),
        vec![Endpoint::new("cdw", 5432), Endpoint::new("::1", 6000)]
    );
    assert_eq!(
        (full.user.as_str(), full.database.as_str()),
        ("gpmon", "gpperfmon")
    );
    assert_eq!(full.statement_timeout, Some(Duration::from_secs(90)));
    assert_eq!(full.tls.unwrap().key_file, Some(PathBuf::from("c.key")));
    let minimal = parse("endpoints: ['cdw:5432']\n").unwrap();
    assert_eq!(
        minimal,
        ClusterConnection {
            endpoints: vec!["cdw:5432".into()],
            ..ClusterConnection::default()
        }
    );
    assert_eq!(
        (minimal.user.as_str(), minimal.database.as_str()),
        ("gpadmin", "postgres")
    );
}

#[test]
fn other_keys_go_to_the_caller_and_unknown_ones_name_their_line() {
    let parsed: WithName =
        serde_saphyr::from_str("name: gp\nendpoints: ['a:1']\nuser: u\n").unwrap();
    assert_eq!(
        (parsed.1.name.as_str(), parsed.0.user.as_str()),
        ("gp", "u")
    );
    let error =
        serde_saphyr::from_str::<WithName>("name: gp\nendpoints: ['a:1']\nhost: x\n").unwrap_err();
    assert_eq!(error.location().map(|l| l.line()), Some(3), "{error}");
    assert!(error.to_string().contains("host"), "{error}");
    let error = parse("endpoints: ['a:1']\npassword: x\n").unwrap_err();
    assert!(
        error.starts_with("line Some(2)") && error.contains("password"),
        "{error}"
    );
}

#[test]
fn old_keys_name_their_replacement() {
    for (text, line, new) in [
        (
            "endpoints: ['a:1']\ndb: postgres\n",
            2,
            "`db` is now `database`",
        ),
        (
            "coordinator: [{host: a}]\n",
            1,
            "`coordinator` is now `endpoints",
        ),
    ] {
        let error = parse(text).unwrap_err();
        assert!(error.starts_with(&format!("line Some({line})")), "{error}");
        assert!(error.contains(new), "{error}");
        let error = serde_saphyr::from_str::<WithName>(&format!("name: gp\n{text}"))
            .unwrap_err()
            .to_string();
        assert!(error.contains(new), "{error}");
    }
}

#[test]
fn bad_values_name_their_line() {
    for (text, line, why) in [
        ("endpoints: []\n", 1, "endpoints is empty"),
        ("user: u\n", 1, "endpoints"),
        ("endpoints: ['a:1']\nconnect_timeout: soon\n", 2, "soon"),
        (
            "endpoints: ['a:1']\nstatement_timeout: 1.5s\n",
            2,
            "fractions",
        ),
        ("endpoints: ['a:1']\ntls: {ca: x}\n", 2, "ca"),
        ("endpoints: ['a:1']\nuser: u\nuser: v\n", 3, "user"),
    ] {
        let error = parse(text).unwrap_err();
        assert!(error.contains(why), "{text}: {error}");
        assert!(
            error.starts_with(&format!("line Some({line})")),
            "{text}: {error}"
        );
    }
    let bad = parse("endpoints: ['nope', 'a:1']\n").unwrap();
    let error = bad.endpoints().unwrap_err().to_string();
    assert!(error.contains("nope"), "{error}");
}

#[test]
fn reader_config_resolves_paths_and_takes_the_service_defaults() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "secret\nignored\n").unwrap();
    let connection = parse(
        "endpoints: ['cdw:5432']\npassword_file: pw\ntls: {ca_file: ca.crt}\nconnect_timeout: 2s\n",
    )
    .unwrap();
    let defaults = ConnectionDefaults {
        application_name: "svc".into(),
        connect_timeout: Some(Duration::from_secs(9)),
        statement_timeout: Some(Duration::from_secs(7)),
    };
    let config = connection.reader_config(&defaults, dir.path()).unwrap();
    assert_eq!(config.password.as_deref(), Some("secret"));
    assert_eq!(config.tls.unwrap().ca_file, dir.path().join("ca.crt"));
    assert_eq!(config.connect_timeout, Duration::from_secs(2));
    assert_eq!(config.statement_timeout, Duration::from_secs(7));
    assert_eq!(config.application_name, "svc");
    assert_eq!(
        (config.user.as_str(), config.dbname.as_str()),
        ("gpadmin", "postgres")
    );
    let missing = ClusterConnection {
        password_file: Some("absent".into()),
        ..connection
    };
    let error = missing
        .reader_config(&defaults, dir.path())
        .unwrap_err()
        .to_string();
    assert!(error.contains("absent"), "{error}");
    std::fs::write(dir.path().join("empty"), "\n").unwrap();
    let error = read_password_file(&dir.path().join("empty"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("empty"), "{error}");
}

#[test]
fn durations_are_compact_humantime() {
    let ok = |t: &str| parse_duration(t).unwrap();
    assert_eq!(ok("90s"), Duration::from_secs(90));
    assert_eq!(ok("1m30s"), Duration::from_secs(90));
    assert_eq!(ok("500ms"), Duration::from_millis(500));
    assert_eq!(ok("2d"), Duration::from_secs(172_800));
    for bad in [
        "",
        "15",
        "m",
        "1x",
        "1.5h",
        "-1m",
        "5 minutes",
        "0minutes",
        "5min",
        "soon",
    ] {
        let error = parse_duration(bad).unwrap_err();
        assert!(error.contains(&format!("{bad:?}")), "{error}");
    }
}
