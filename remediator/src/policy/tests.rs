use super::*;

pub(crate) const EXAMPLE: &str = include_str!("../../examples/policy.yml");

fn issues(text: &str) -> Vec<PolicyIssue> {
    Policy::parse(text).expect_err("policy should be invalid")
}

/// A minimal valid policy with one rule whose body is `rule` (indented under `- `).
fn with_rule(rule: &str) -> String {
    format!(
        "clusters:\n  - name: gp\n    endpoints: ['mdw:5432']\n    executor:\n      local: {{}}\nrules:\n  - name: r\n{rule}"
    )
}

#[test]
fn the_example_policy_is_valid() {
    let policy = Policy::parse(EXAMPLE).expect("example policy");
    assert_eq!(policy.clusters.len(), 1);
    assert_eq!(policy.rules.len(), 4);
    let labels: BTreeMap<String, String> = [
        ("remediation", "recover"),
        ("severity", "critical"),
        ("cluster", "gp-prod"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let rule = policy
        .rule_for("gp-prod", "GreenplumSegmentDown", &labels)
        .expect("rule");
    assert_eq!(rule.action, ActionKind::Recover);
    assert_eq!(rule.for_.map(|d| d.0.as_secs()), Some(120));
    assert!(policy
        .rule_for("gp-prod", "GreenplumSegmentDown", &BTreeMap::new())
        .is_none());
}

#[test]
fn syntax_and_type_errors_name_the_line() {
    let found = issues(&with_rule(
        "    match: {alertname: A}\n    action: recover\n    approval: sometimes\n",
    ));
    assert_eq!(found[0].line, Some(10), "{found:?}");
    let found = issues("clusters: [\n");
    assert!(found[0].line.is_some(), "{found:?}");
}

#[test]
fn free_form_commands_cannot_be_expressed() {
    let found = issues(&with_rule(
        "    match: {alertname: A}\n    action: recover\n    approval: auto\n    command: rm -rf /\n",
    ));
    assert_eq!(found[0].line, Some(11), "{found:?}");
    assert!(found[0].message.contains("command"), "{found:?}");
    let found = issues(&with_rule(
        "    match: {alertname: A}\n    action: shell\n    approval: auto\n",
    ));
    assert_eq!(found[0].line, Some(9), "{found:?}");
}

#[test]
fn unknown_cluster_fields_and_executors_are_refused() {
    let text = "clusters:\n  - name: gp\n    endpoints: ['mdw:5432']\n    executor:\n      docker: {}\nrules: []\n";
    let found = issues(text);
    assert_eq!(found[0].line, Some(5), "{found:?}");
}

#[test]
fn never_automatic_actions() {
    for action in ["recover_full", "activate_standby"] {
        let text = with_rule(&format!(
            "    match: {{alertname: A}}\n    action: {action}\n    approval: auto\n"
        ));
        let found = issues(&text.replace(
            "      local: {}\n",
            "      local: {}\n    standby: {host: smdw, datadir: /d}\n",
        ));
        assert!(
            found
                .iter()
                .any(|i| i.message.contains("never be automatic") && i.line == Some(8)),
            "{action}: {found:?}"
        );
    }
}

#[test]
fn automatic_rebalance_needs_a_window() {
    let found = issues(&with_rule(
        "    match: {alertname: A}\n    action: rebalance\n    approval: auto\n",
    ));
    assert!(found[0].message.contains("windows"), "{found:?}");
    assert_eq!(found[0].line, Some(7));
    let ok = with_rule(
        "    match: {alertname: A}\n    action: rebalance\n    approval: auto\n    windows: [{start: \"22:00\", end: \"04:00\"}]\n",
    );
    assert!(Policy::parse(&ok).is_ok());
    let required =
        with_rule("    match: {alertname: A}\n    action: rebalance\n    approval: required\n");
    assert!(Policy::parse(&required).is_ok());
}

#[test]
fn bad_matchers_durations_and_windows_name_their_line() {
    let found = issues(&with_rule(
        "    match:\n      alertname: A\n      labels:\n        - severity=~\"(\"\n    action: recover\n    approval: auto\n",
    ));
    assert_eq!(found[0].line, Some(11), "{found:?}");
    assert!(found[0].message.starts_with("matcher"), "{found:?}");
    let found = issues(&with_rule(
        "    match: {alertname: A}\n    action: recover\n    approval: auto\n    for: 5 minutes\n",
    ));
    assert_eq!(found[0].line, Some(11), "{found:?}");
    let found = issues(&with_rule(
        "    match: {alertname: A}\n    action: recover\n    approval: auto\n    windows:\n      - {start: \"25:00\", end: \"04:00\"}\n",
    ));
    assert_eq!(found[0].line, Some(12), "{found:?}");
}

#[test]
fn standby_actions_need_their_inputs_from_the_policy() {
    let found = issues(&with_rule(
        "    match: {alertname: A}\n    action: init_standby\n    approval: auto\n",
    ));
    assert!(found[0].message.contains("standby.host"), "{found:?}");
    let found = issues(&with_rule(
        "    match: {alertname: A}\n    action: activate_standby\n    approval: required\n",
    ));
    assert!(found[0].message.contains("standby.datadir"), "{found:?}");
}

#[test]
fn environment_outside_the_allowlist_is_refused() {
    let text = with_rule("    match: {alertname: A}\n    action: recover\n    approval: auto\n")
        .replace(
            "local: {}",
            "local: {env: {LD_PRELOAD: /x.so}, pass_env: [HOME]}",
        );
    let found = issues(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].message.contains("LD_PRELOAD"));
    assert_eq!(found[0].line, Some(2));
}

#[test]
fn duplicates_unknown_clusters_zero_budgets_and_empty_files() {
    let text = with_rule(
        "    match: {alertname: A}\n    action: recover\n    approval: auto\n    clusters: [nope]\n    budget: {per_hour: 0}\n  - name: r\n    match: {alertname: A}\n    action: recover\n    approval: auto\n",
    );
    let found = issues(&text);
    let messages: Vec<&str> = found.iter().map(|i| i.message.as_str()).collect();
    assert!(
        messages.iter().any(|m| m.contains("unknown cluster")),
        "{found:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("budget of 0")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|i| i.message.contains("defined twice") && i.line == Some(13)),
        "{found:?}"
    );
    assert!(Policy::parse("clusters: []\nrules: []\n").is_err());
    assert!(Policy::parse("").is_err());
}

#[test]
fn connection_keys_are_the_exporters_and_old_ones_name_their_replacement() {
    let text = with_rule("    match: {alertname: A}\n    action: recover\n    approval: auto\n")
        .replace(
            "    endpoints: ['mdw:5432']\n",
            "    endpoints: ['mdw:5432', '[fd00::2]:6000']\n    user: gpmon\n    database: gpperfmon\n    tls: {ca_file: ca.pem}\n    connect_timeout: 2s\n    statement_timeout: 1m\n",
        );
    let policy = Policy::parse(&text).expect("policy");
    let connection = &policy.clusters[0].value.connection;
    assert_eq!(connection.endpoints().expect("endpoints").len(), 2);
    assert_eq!(connection.database, "gpperfmon");
    assert_eq!(
        connection.statement_timeout,
        Some(std::time::Duration::from_secs(60))
    );
    let old = issues("clusters:\n  - name: gp\n    coordinator: [{host: mdw}]\n    executor: {local: {}}\nrules: []\n");
    assert_eq!(old[0].line, Some(3), "{old:?}");
    assert!(
        old[0].message.contains("`coordinator` is now `endpoints"),
        "{old:?}"
    );
    let bad = issues(
        "clusters:\n  - name: gp\n    endpoints: ['mdw']\n    executor: {local: {}}\nrules: []\n",
    );
    assert!(
        bad[0].message.contains("mdw") && bad[0].line == Some(2),
        "{bad:?}"
    );
    let empty = issues(
        "clusters:\n  - name: gp\n    endpoints: []\n    executor: {local: {}}\nrules: []\n",
    );
    assert!(
        empty[0].message.contains("endpoints is empty") && empty[0].line == Some(3),
        "{empty:?}"
    );
}

/// Issue 12, bug 3: the standby is matched to an endpoint by address, not only by text, and
/// a standby that is no endpoint is refused at load time on its cluster's line.
#[test]
fn the_standby_is_matched_to_an_endpoint_by_address() {
    let policy = |standby_port: u16| {
        format!(
            "clusters:\n  - name: gp\n    endpoints: ['localhost:6000', 'localhost:6001']\n    \
             standby: {{host: 127.0.0.1, port: {standby_port}, datadir: /d}}\n    executor:\n      \
             local: {{}}\nrules: []\n"
        )
    };
    let parsed = Policy::parse(&policy(6001)).expect("the standby is localhost:6001");
    let standby = parsed.clusters[0].value.standby.as_ref().expect("standby");
    assert_eq!(standby.endpoint, "localhost:6001");
    let found = issues(&policy(6002));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].line, Some(2), "{found:?}");
    assert!(
        found[0].message.contains("none of the cluster's endpoints"),
        "{found:?}"
    );
}
