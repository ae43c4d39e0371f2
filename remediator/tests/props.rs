//! Property tests (the fuzz targets of issue 8) for what the remediator parses from outside:
//! Alertmanager webhook bodies and policy files.
//!
//! Each target checks that arbitrary input never panics and that a meaningful property holds:
//! typed values round-trip through their text, and a mutated input is refused with an error
//! that names what is wrong (and, for policies, the line it is on). `PROPTEST_CASES=N` raises
//! the number of cases for a longer run; the defaults keep `cargo test` to a few seconds.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use greenplum_remediator::actions::ActionKind;
use greenplum_remediator::alert::{Alert, AlertStatus, PayloadError, WebhookPayload};
use greenplum_remediator::policy::{Approval, Executor, Policy, PolicyIssue};
use greenplum_test_support::proptest_config;
use proptest::prelude::*;
use serde_json::{json, Value};

// =============================================================================================
// Webhook payloads

fn status() -> impl Strategy<Value = AlertStatus> {
    prop_oneof![Just(AlertStatus::Firing), Just(AlertStatus::Resolved)]
}

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    // Year 1970 to 2100, any nanosecond.
    (0i64..4_102_444_800, 0u32..1_000_000_000).prop_map(|(secs, nanos)| {
        Utc.timestamp_opt(secs, nanos)
            .single()
            .unwrap_or(DateTime::UNIX_EPOCH)
    })
}

/// Label maps as Alertmanager sends them, with any Unicode in the values.
fn labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    proptest::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,12}", any::<String>(), 0..6)
}

fn alert() -> impl Strategy<Value = Alert> {
    (
        status(),
        labels(),
        labels(),
        instant(),
        proptest::option::of(instant()),
        any::<String>(),
        "[0-9a-f]{16}|[^\\s]{1,4}[ -~]{0,20}",
    )
        .prop_map(
            |(status, labels, annotations, starts_at, ends_at, generator_url, fingerprint)| Alert {
                status,
                labels,
                annotations,
                starts_at,
                ends_at,
                generator_url,
                fingerprint,
            },
        )
}

fn payload() -> impl Strategy<Value = WebhookPayload> {
    (
        any::<String>(),
        0u64..1000,
        status(),
        labels(),
        labels(),
        proptest::collection::vec(alert(), 0..5),
    )
        .prop_map(
            |(group_key, truncated_alerts, status, group_labels, common_labels, alerts)| {
                WebhookPayload {
                    version: "4".into(),
                    group_key,
                    truncated_alerts,
                    status,
                    receiver: "greenplum-remediator".into(),
                    group_labels,
                    common_labels,
                    common_annotations: BTreeMap::new(),
                    external_url: "http://alertmanager:9093".into(),
                    alerts,
                }
            },
        )
}

/// Bytes that look like JSON often enough to reach deep into the parser.
fn json_soup() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            Just(b"{".to_vec()),
            Just(b"}".to_vec()),
            Just(b"[".to_vec()),
            Just(b"]".to_vec()),
            Just(b",".to_vec()),
            Just(b":".to_vec()),
            Just(b"\"version\"".to_vec()),
            Just(b"\"4\"".to_vec()),
            Just(b"\"alerts\"".to_vec()),
            Just(b"\"status\"".to_vec()),
            Just(b"\"firing\"".to_vec()),
            Just(b"\"startsAt\"".to_vec()),
            Just(b"\"2026-11-21T16:27:55Z\"".to_vec()),
            Just(b"\"fingerprint\"".to_vec()),
            Just(b"null".to_vec()),
            Just(b"1e999".to_vec()),
            Just(b"\"\\ud800\"".to_vec()),
            Just(vec![0xff, 0xfe]),
            any::<Vec<u8>>(),
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

/// A change that makes a valid payload invalid, and the words its error must contain.
#[derive(Debug, Clone)]
enum Mutation {
    /// Remove a required field at this path.
    Remove(Vec<Step>),
    /// Replace the value at this path with one of the wrong type.
    WrongType(Vec<Step>, Value),
    /// Another payload version.
    Version(String),
    /// An alert status Alertmanager never sends.
    Status(usize, String),
    /// A timestamp that is not RFC 3339.
    Time(usize, String),
    /// A fingerprint of whitespace only.
    BlankFingerprint(usize, String),
}

#[derive(Debug, Clone)]
enum Step {
    Key(&'static str),
    Index(usize),
}

fn path_text(path: &[Step]) -> String {
    let mut text = String::new();
    for step in path {
        match step {
            Step::Key(k) if text.is_empty() => text.push_str(k),
            Step::Key(k) => text.push_str(&format!(".{k}")),
            Step::Index(i) => text.push_str(&format!("[{i}]")),
        }
    }
    text
}

fn at<'v>(value: &'v mut Value, path: &[Step]) -> Option<&'v mut Value> {
    path.iter().try_fold(value, |v, step| match step {
        Step::Key(k) => v.get_mut(*k),
        Step::Index(i) => v.get_mut(*i),
    })
}

impl Mutation {
    fn apply(&self, value: &mut Value) {
        let alert = |value: &mut Value, i: usize, key: &str, new: Value| {
            value["alerts"][i][key] = new;
        };
        match self {
            Mutation::Remove(path) => {
                let (last, parent) = path.split_last().expect("non-empty path");
                if let (Some(Value::Object(map)), Step::Key(key)) = (at(value, parent), last) {
                    map.remove(*key);
                }
            }
            Mutation::WrongType(path, new) => {
                if let Some(slot) = at(value, path) {
                    *slot = new.clone();
                }
            }
            Mutation::Version(v) => value["version"] = json!(v),
            Mutation::Status(i, s) => alert(value, *i, "status", json!(s)),
            Mutation::Time(i, t) => alert(value, *i, "startsAt", json!(t)),
            Mutation::BlankFingerprint(i, f) => alert(value, *i, "fingerprint", json!(f)),
        }
    }

    /// What the error message must name.
    fn expected_words(&self) -> Vec<String> {
        match self {
            // A missing field is reported at the object that lacks it.
            Mutation::Remove(path) => {
                let (last, parent) = path.split_last().expect("non-empty path");
                let Step::Key(key) = last else {
                    unreachable!("only keys are removed")
                };
                let mut words = vec![format!("missing field `{key}`")];
                words.extend((!parent.is_empty()).then(|| path_text(parent)));
                words
            }
            // `[[]]` for an alert is "invalid length" (serde takes a struct as a sequence too):
            // the path is what matters.
            Mutation::WrongType(path, _) => vec![path_text(path)],
            Mutation::Version(v) => vec![format!("{v:?}"), "version".into()],
            Mutation::Status(i, _) => vec![format!("alerts[{i}].status")],
            Mutation::Time(i, _) => vec![format!("alerts[{i}].startsAt")],
            Mutation::BlankFingerprint(i, _) => vec![format!("alert {i}"), "fingerprint".into()],
        }
    }
}

/// A payload with at least one alert, and a mutation aimed at one of its alerts.
fn mutated() -> impl Strategy<Value = (WebhookPayload, Mutation)> {
    payload()
        .prop_filter("needs an alert", |p| !p.alerts.is_empty())
        .prop_flat_map(|payload| {
            let n = payload.alerts.len();
            let required_top = prop_oneof![
                Just(Step::Key("version")),
                Just(Step::Key("status")),
                Just(Step::Key("alerts")),
            ]
            .prop_map(|k| vec![k]);
            let required_alert = (
                0..n,
                prop_oneof![Just("status"), Just("startsAt"), Just("fingerprint")],
            )
                .prop_map(|(i, k)| vec![Step::Key("alerts"), Step::Index(i), Step::Key(k)]);
            let wrong_type_path = prop_oneof![
                Just(vec![Step::Key("version")]),
                Just(vec![Step::Key("alerts")]),
                Just(vec![Step::Key("groupLabels")]),
                Just(vec![Step::Key("truncatedAlerts")]),
                (0..n).prop_map(|i| vec![Step::Key("alerts"), Step::Index(i)]),
                (0..n).prop_map(|i| vec![Step::Key("alerts"), Step::Index(i), Step::Key("labels")]),
                (0..n).prop_map(|i| vec![
                    Step::Key("alerts"),
                    Step::Index(i),
                    Step::Key("fingerprint")
                ]),
            ];
            let wrong_value = prop_oneof![Just(json!(true)), Just(json!(-1.5)), Just(json!([[]])),];
            let mutation = prop_oneof![
                prop_oneof![required_top, required_alert].prop_map(Mutation::Remove),
                (wrong_type_path, wrong_value).prop_map(|(p, v)| Mutation::WrongType(p, v)),
                "[0-35-9]|4.0|v4|[a-z]{0,6}".prop_map(Mutation::Version),
                (0..n, "[a-z]{0,10}")
                    .prop_filter("not a status", |(_, s)| s != "firing" && s != "resolved")
                    .prop_map(|(i, s)| Mutation::Status(i, s)),
                (0..n, "[0-9:T\\- ]{0,25}|yesterday")
                    .prop_filter("not a time", |(_, t)| DateTime::parse_from_rfc3339(t)
                        .is_err())
                    .prop_map(|(i, t)| Mutation::Time(i, t)),
                (0..n, "[ \t\n]{0,4}").prop_map(|(i, f)| Mutation::BlankFingerprint(i, f)),
            ];
            (Just(payload), mutation)
        })
}

proptest! {
    #![proptest_config(proptest_config(256))]

    /// Any bytes: an answer, never a panic; whatever is accepted is a version 4 payload
    /// whose alerts all have a fingerprint.
    #[test]
    fn webhook_parser_never_panics(body in prop_oneof![any::<Vec<u8>>(), json_soup()]) {
        if let Ok(payload) = WebhookPayload::parse(&body) {
            prop_assert_eq!(payload.version.as_str(), "4");
            prop_assert!(payload.alerts.iter().all(|a| !a.fingerprint.trim().is_empty()));
        }
    }

    /// What Alertmanager can send parses back to exactly the same alerts.
    #[test]
    fn webhook_payloads_round_trip(payload in payload()) {
        prop_assume!(payload.alerts.iter().all(|a| !a.fingerprint.trim().is_empty()));
        let body = serde_json::to_vec(&payload).expect("encode");
        let parsed = WebhookPayload::parse(&body).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(parsed, payload);
    }

    /// A damaged payload is refused, and the error names the field that is wrong.
    #[test]
    fn damaged_payloads_are_refused_by_field((payload, mutation) in mutated()) {
        let mut value = serde_json::to_value(&payload).expect("encode");
        // Fingerprints of the generated payload may already be blank; start from good ones.
        for (i, alert) in value["alerts"].as_array_mut().into_iter().flatten().enumerate() {
            alert["fingerprint"] = json!(format!("{i:016x}"));
        }
        mutation.apply(&mut value);
        let body = serde_json::to_vec(&value).expect("encode");
        let error = match WebhookPayload::parse(&body) {
            Ok(_) => return Err(TestCaseError::fail(format!("{mutation:?} was accepted"))),
            Err(e) => e.to_string(),
        };
        for word in mutation.expected_words() {
            prop_assert!(error.contains(&word), "{mutation:?}: {error:?} lacks {word:?}");
        }
    }
}

/// Deep nesting never overflows the stack: in a field the parser ignores it is skipped
/// without recursion, in a typed field it is refused at the first level, by path.
#[test]
fn deeply_nested_bodies_never_overflow() {
    let nested = |depth: usize| {
        let mut text = "[".repeat(depth);
        text.push_str(&"]".repeat(depth));
        text
    };
    for depth in [129, 10_000, 1_000_000] {
        let ignored = format!(
            "{{\"version\":\"4\",\"status\":\"firing\",\"alerts\":[],\"x\":{}}}",
            nested(depth)
        );
        assert!(WebhookPayload::parse(ignored.as_bytes()).is_ok());
        let typed = format!(
            "{{\"version\":\"4\",\"status\":\"firing\",\"alerts\":[{{\"labels\":{}}}]}}",
            nested(depth)
        );
        let error = WebhookPayload::parse(typed.as_bytes())
            .expect_err("nested labels")
            .to_string();
        assert!(error.contains("alerts[0].labels"), "{error}");
    }
}

/// Found by `damaged_payloads_are_refused_by_field`: serde_json's own errors name a line and
/// column but not the field, so "unknown variant `msvsbfxxwq`" did not say which alert's
/// status was wrong. The parser now reports the path.
#[test]
fn regression_a_bad_status_names_its_alert() {
    let body = br#"{"version":"4","status":"firing","alerts":[{"status":"firing",
        "startsAt":"2026-11-21T16:27:55Z","fingerprint":"a"},{"status":"msvsbfxxwq",
        "startsAt":"2026-11-21T16:27:55Z","fingerprint":"b"}]}"#;
    let error = WebhookPayload::parse(body)
        .expect_err("bad status")
        .to_string();
    assert!(error.contains("alerts[1].status"), "{error}");
    assert!(error.contains("msvsbfxxwq"), "{error}");
}

#[test]
fn invalid_utf8_in_a_string_is_refused_by_field() {
    let body = b"{\"version\":\"4\",\"status\":\"firing\",\"receiver\":\"\xff\",\"alerts\":[]}";
    let error = WebhookPayload::parse(body).expect_err("not UTF-8");
    assert!(matches!(error, PayloadError::Field { .. }), "{error:?}");
    assert!(error.to_string().contains("receiver"), "{error}");
}

// =============================================================================================
// Policies

/// Strings that need quoting in YAML, or look like other types, or are plain.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z][a-z0-9\\-]{0,12}",
        1 => Just("yes".to_string()),
        1 => Just("null".to_string()),
        1 => Just("~".to_string()),
        1 => Just("0x1F".to_string()),
        1 => Just("a: b # c".to_string()),
        1 => Just("- [x]".to_string()),
        1 => "[ -~]{1,16}",
        1 => "\\PC{1,8}",
    ]
    .prop_filter("names are not blank", |s| !s.trim().is_empty())
}

/// A YAML double-quoted scalar: JSON's escapes are a subset of YAML's.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a string encodes")
}

/// Host names and addresses an endpoint can hold (IPv6 written as `[addr]:port`).
fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z][a-z0-9\\-.]{0,12}",
        1 => Just("yes".to_string()),
        1 => Just("null".to_string()),
        1 => Just("::1".to_string()),
        1 => "fe80::[0-9a-f]{1,4}",
        1 => "10\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
    ]
}

#[derive(Debug, Clone)]
struct ClusterModel {
    name: String,
    hosts: Vec<(String, u16)>,
    env: BTreeMap<&'static str, String>,
    ssh_user: Option<String>,
    breaker_failures: u32,
}

#[derive(Debug, Clone)]
struct RuleModel {
    name: String,
    /// Indexes of clusters (deduplicated when rendered).
    clusters: Vec<usize>,
    alertname: String,
    /// (label, op, value) with op one of = != =~ !~ and a regex-safe value.
    matchers: Vec<(String, &'static str, String)>,
    action: ActionKind,
    auto: bool,
    for_secs: Option<u64>,
    per_hour: Option<u32>,
    window: bool,
}

#[derive(Debug, Clone)]
struct PolicyModel {
    clusters: Vec<ClusterModel>,
    rules: Vec<RuleModel>,
}

fn cluster_model() -> impl Strategy<Value = ClusterModel> {
    let env = proptest::collection::btree_map(
        prop::sample::select(greenplum_remediator::policy::ENV_ALLOWLIST),
        text(),
        0..4,
    );
    (
        text(),
        proptest::collection::vec((host(), 1u16..=u16::MAX), 1..3),
        env,
        proptest::option::of("[a-z][a-z0-9_]{0,8}"),
        1u32..10,
    )
        .prop_map(
            |(name, hosts, env, ssh_user, breaker_failures)| ClusterModel {
                name,
                hosts,
                env,
                ssh_user,
                breaker_failures,
            },
        )
}

fn action() -> impl Strategy<Value = ActionKind> {
    prop::sample::select(ActionKind::ALL.to_vec())
}

fn rule_model() -> impl Strategy<Value = RuleModel> {
    let matcher = (
        "[a-z_][a-z0-9_]{0,8}",
        prop::sample::select(vec!["=", "!=", "=~", "!~"]),
        "[a-z0-9 ]{0,8}",
    );
    (
        text(),
        proptest::collection::vec(0usize..3, 0..3),
        text(),
        proptest::collection::vec(matcher, 0..3),
        action(),
        any::<bool>(),
        proptest::option::of(0u64..1_000_000),
        proptest::option::of(1u32..100),
        any::<bool>(),
    )
        .prop_map(
            |(name, clusters, alertname, matchers, action, auto, for_secs, per_hour, window)| {
                // Keep the generated rule valid: some actions can never be automatic and an
                // automatic rebalance needs a window.
                let auto = auto && !action.never_automatic();
                let window = window || (auto && action == ActionKind::Rebalance);
                RuleModel {
                    name,
                    clusters,
                    alertname,
                    matchers,
                    action,
                    auto,
                    for_secs,
                    per_hour,
                    window,
                }
            },
        )
}

fn policy_model() -> impl Strategy<Value = PolicyModel> {
    (
        proptest::collection::vec(cluster_model(), 1..4),
        proptest::collection::vec(rule_model(), 0..5),
    )
        .prop_map(|(mut clusters, mut rules)| {
            // Names must be unique; suffixing keeps the generated text otherwise intact.
            for (i, c) in clusters.iter_mut().enumerate() {
                c.name = format!("{}{i}", c.name);
            }
            for (i, r) in rules.iter_mut().enumerate() {
                r.name = format!("{}{i}", r.name);
                r.clusters.retain(|&c| c < clusters.len());
                r.clusters.sort_unstable();
                r.clusters.dedup();
            }
            PolicyModel { clusters, rules }
        })
}

/// A policy rendered as text, with the line (1-based) where each cluster and rule starts.
struct Rendered {
    lines: Vec<String>,
    cluster_lines: Vec<u64>,
    rule_lines: Vec<u64>,
}

impl Rendered {
    fn text(&self) -> String {
        self.lines.join("\n") + "\n"
    }

    fn push(&mut self, line: String) -> u64 {
        self.lines.push(line);
        self.lines.len() as u64
    }
}

fn render(model: &PolicyModel) -> Rendered {
    let mut out = Rendered {
        lines: Vec::new(),
        cluster_lines: Vec::new(),
        rule_lines: Vec::new(),
    };
    out.push("clusters:".into());
    for c in &model.clusters {
        let line = out.push(format!("  - name: {}", quoted(&c.name)));
        out.cluster_lines.push(line);
        out.push("    endpoints:".into());
        for (host, port) in &c.hosts {
            let endpoint = greenplum_catalog::Endpoint::new(host.as_str(), *port);
            out.push(format!("      - {}", quoted(&endpoint.to_string())));
        }
        // Every cluster can take every action. The standby is one of the endpoints, as a
        // valid policy must have it (the last one, as the exporter lists the standby).
        let (host, port) = c
            .hosts
            .last()
            .cloned()
            .unwrap_or_else(|| ("smdw".into(), 5432));
        out.push(format!(
            "    standby: {{host: {}, port: {port}, datadir: /data/standby}}",
            quoted(&host)
        ));
        out.push(format!("    breaker_failures: {}", c.breaker_failures));
        out.push("    executor:".into());
        match &c.ssh_user {
            None => out.push("      local:".into()),
            Some(user) => {
                out.push("      ssh:".into());
                out.push("        argv_prefix: [/usr/bin/ssh]".into());
                out.push(format!("        user: {user}"))
            }
        };
        out.push("        env:".into());
        if c.env.is_empty() {
            out.lines.last_mut().expect("line").push_str(" {}");
        }
        for (k, v) in &c.env {
            out.push(format!("          {k}: {}", quoted(v)));
        }
    }
    out.push("rules:".into());
    if model.rules.is_empty() {
        out.lines.last_mut().expect("line").push_str(" []");
    }
    for r in &model.rules {
        let line = out.push(format!("  - name: {}", quoted(&r.name)));
        out.rule_lines.push(line);
        if !r.clusters.is_empty() {
            let names: Vec<String> = r
                .clusters
                .iter()
                .map(|&i| quoted(&model.clusters[i].name))
                .collect();
            out.push(format!("    clusters: [{}]", names.join(", ")));
        }
        out.push("    match:".into());
        out.push(format!("      alertname: {}", quoted(&r.alertname)));
        out.push("      labels:".into());
        if r.matchers.is_empty() {
            out.lines.last_mut().expect("line").push_str(" []");
        }
        for (label, op, value) in &r.matchers {
            out.push(format!(
                "        - {}",
                quoted(&format!("{label}{op}\"{value}\""))
            ));
        }
        out.push(format!("    action: {}", r.action.as_str()));
        let approval = if r.auto { "auto" } else { "required" };
        out.push(format!("    approval: {approval}"));
        if let Some(secs) = r.for_secs {
            out.push(format!("    for: {secs}s"));
        }
        if let Some(n) = r.per_hour {
            out.push(format!("    budget: {{per_hour: {n}}}"));
        }
        if r.window {
            out.push("    windows: [{days: [mon, sat], start: \"22:00\", end: \"04:00\"}]".into());
        }
    }
    out
}

fn parse_ok(text: &str) -> Result<Policy, TestCaseError> {
    Policy::parse(text).map_err(|issues| {
        let listed: Vec<String> = issues.iter().map(PolicyIssue::to_string).collect();
        TestCaseError::fail(format!("{}\n---\n{text}", listed.join("\n")))
    })
}

/// Where a mutation lands: a rule's body, or a cluster's.
#[derive(Debug, Clone, Copy)]
enum Target {
    Rule(usize),
    Cluster(usize),
}

/// A single-line change to a rendered policy and what its error must say.
#[derive(Debug, Clone)]
enum PolicyMutation {
    /// A field no struct knows, e.g. `command: rm -rf /`.
    UnknownField(Target, String),
    /// `action:` naming something outside the closed set.
    Action(usize, String),
    /// `for:` that is no duration.
    Duration(usize, String),
    /// `approval: auto` on an action that can never be automatic (a semantic error,
    /// reported at the rule's first line).
    NeverAutomatic(usize),
    /// An environment variable outside the allowlist (reported at the cluster's first line).
    Env(usize, String),
}

fn policy_mutation(model: &PolicyModel) -> BoxedStrategy<PolicyMutation> {
    let clusters = model.clusters.len();
    let rules = model.rules.len();
    let field = "(command|shell|exec|argv|script|run)";
    let cluster_side = prop_oneof![
        (0..clusters, field).prop_map(|(i, f)| PolicyMutation::UnknownField(Target::Cluster(i), f)),
        (0..clusters, "LD_[A-Z]{1,8}|BASH_ENV|[A-Z]{1,3}_X")
            .prop_map(|(i, e)| PolicyMutation::Env(i, e)),
    ];
    if rules == 0 {
        return cluster_side.boxed();
    }
    prop_oneof![
        cluster_side,
        (0..rules, field).prop_map(|(i, f)| PolicyMutation::UnknownField(Target::Rule(i), f)),
        (0..rules, "[a-z_]{1,12}")
            .prop_filter("not an action", |(_, a)| {
                ActionKind::ALL.iter().all(|k| k.as_str() != a)
            })
            .prop_map(|(i, a)| PolicyMutation::Action(i, a)),
        (0..rules, "[0-9]{1,3} ?(minutes|x)|[0-9]+|1\\.5h|-1m")
            .prop_map(|(i, d)| PolicyMutation::Duration(i, d)),
        (0..rules).prop_map(PolicyMutation::NeverAutomatic),
    ]
    .boxed()
}

impl PolicyMutation {
    /// Applies the change; returns the line the error must name and words it must contain.
    fn apply(&self, model: &mut PolicyModel) -> (Rendered, u64, Vec<String>) {
        let mut rendered = render(model);
        let insert_after = |rendered: &mut Rendered, line: u64, text: String| -> u64 {
            rendered.lines.insert(line as usize, text);
            line + 1
        };
        match self {
            PolicyMutation::UnknownField(target, field) => {
                let start = match target {
                    Target::Rule(i) => rendered.rule_lines[*i],
                    Target::Cluster(i) => rendered.cluster_lines[*i],
                };
                let line = insert_after(&mut rendered, start, format!("    {field}: rm -rf /"));
                (rendered, line, vec![field.clone()])
            }
            PolicyMutation::Action(i, action) => {
                let line = replace_in_rule(&mut rendered, *i, "    action: ", action);
                (rendered, line, vec![action.clone()])
            }
            PolicyMutation::Duration(i, duration) => {
                let start = rendered.rule_lines[*i];
                let line = insert_after(
                    &mut rendered,
                    start,
                    format!("    cooldown: {}", quoted(duration)),
                );
                (rendered, line, vec![format!("{duration:?}")])
            }
            PolicyMutation::NeverAutomatic(i) => {
                let rule = &mut model.rules[*i];
                rule.action = ActionKind::ActivateStandby;
                rule.auto = true;
                let rendered = render(model);
                let line = rendered.rule_lines[*i];
                (rendered, line, vec!["never be automatic".into()])
            }
            PolicyMutation::Env(i, name) => {
                let start = rendered.cluster_lines[*i];
                // Validation reports environment problems at the cluster's first line.
                let env_index = (start as usize..rendered.lines.len())
                    .find(|&l| rendered.lines[l].trim_start().starts_with("env:"))
                    .expect("env line");
                rendered.lines[env_index] = "        env:".into();
                let after = env_index + 1 + model.clusters[*i].env.len();
                rendered.lines.insert(after, format!("          {name}: x"));
                (rendered, start, vec![name.clone(), "not allowed".into()])
            }
        }
    }
}

/// Rewrites the line of rule `i` that starts with `prefix`; returns its number.
fn replace_in_rule(rendered: &mut Rendered, i: usize, prefix: &str, value: &str) -> u64 {
    let start = rendered.rule_lines[i] as usize;
    let index = (start..rendered.lines.len())
        .find(|&l| rendered.lines[l].starts_with(prefix))
        .expect("line in rule");
    rendered.lines[index] = format!("{prefix}{value}");
    index as u64 + 1
}

/// YAML-ish token soup, so the parser gets past its first character.
fn yaml_soup() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("clusters:".to_string()),
            Just("rules:".to_string()),
            Just("settings:".to_string()),
            Just("\n".to_string()),
            Just("  ".to_string()),
            Just("- ".to_string()),
            Just("name: gp".to_string()),
            Just("executor: {local: {}}".to_string()),
            Just("endpoints: ['a:5432']".to_string()),
            Just("action: recover".to_string()),
            Just("&a [*a, *a]".to_string()),
            Just("*a".to_string()),
            Just("!!binary".to_string()),
            Just("{".to_string()),
            Just("[".to_string()),
            Just("\"".to_string()),
            Just("'".to_string()),
            Just("? ".to_string()),
            Just("%YAML 1.2\n---".to_string()),
            any::<String>(),
        ],
        0..30,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(proptest_config(256))]

    #[test]
    fn policy_parser_never_panics(text in prop_oneof![any::<String>(), yaml_soup()]) {
        if let Err(issues) = Policy::parse(&text) {
            prop_assert!(!issues.is_empty());
            prop_assert!(issues.iter().all(|i| !i.message.trim().is_empty()), "{issues:?}");
        }
    }

    /// A valid policy's text parses back to the same clusters and rules.
    #[test]
    fn valid_policies_round_trip(model in policy_model()) {
        let text = render(&model).text();
        let policy = parse_ok(&text)?;
        prop_assert_eq!(policy.clusters.len(), model.clusters.len());
        for (parsed, c) in policy.clusters.iter().map(|c| &c.value).zip(&model.clusters) {
            prop_assert_eq!(&parsed.name, &c.name);
            let hosts: Vec<(String, u16)> = parsed
                .connection
                .endpoints()
                .expect("valid endpoints")
                .into_iter()
                .map(|e| (e.host, e.port))
                .collect();
            prop_assert_eq!(&hosts, &c.hosts);
            prop_assert_eq!(parsed.breaker_failures, c.breaker_failures);
            let env: BTreeMap<&str, &str> =
                parsed.executor.env().iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let expected: BTreeMap<&str, &str> = c.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            prop_assert_eq!(env, expected);
            match (&parsed.executor, &c.ssh_user) {
                (Executor::Local(_), None) => {}
                (Executor::Ssh(ssh), Some(user)) => prop_assert_eq!(&ssh.user, user),
                (other, user) => prop_assert!(false, "{other:?} for ssh user {user:?}"),
            }
        }
        prop_assert_eq!(policy.rules.len(), model.rules.len());
        for (parsed, r) in policy.rules.iter().map(|r| &r.value).zip(&model.rules) {
            prop_assert_eq!(&parsed.name, &r.name);
            prop_assert_eq!(&parsed.matches.alertname, &r.alertname);
            prop_assert_eq!(parsed.action, r.action);
            let approval = if r.auto { Approval::Auto } else { Approval::Required };
            prop_assert_eq!(parsed.approval, approval);
            prop_assert_eq!(parsed.for_.map(|d| d.0.as_secs()), r.for_secs);
            prop_assert_eq!(parsed.budget.per_hour, r.per_hour);
            prop_assert_eq!(parsed.windows.len(), usize::from(r.window));
            let clusters: Vec<&str> =
                r.clusters.iter().map(|&i| model.clusters[i].name.as_str()).collect();
            prop_assert_eq!(&parsed.clusters, &clusters);
            let matchers: Vec<(String, String)> = parsed
                .matches
                .labels
                .iter()
                .map(|m| (m.name.clone(), m.value.clone()))
                .collect();
            let expected: Vec<(String, String)> =
                r.matchers.iter().map(|(l, _, v)| (l.clone(), v.clone())).collect();
            prop_assert_eq!(matchers, expected);
        }
    }

    /// One bad line in a valid policy: refused, and an issue names that line and the problem.
    #[test]
    fn damaged_policies_name_the_line(
        (mut model, mutation) in policy_model()
            .prop_flat_map(|m| (Just(m.clone()), policy_mutation(&m)))
    ) {
        let (rendered, line, words) = mutation.apply(&mut model);
        let text = rendered.text();
        let issues = match Policy::parse(&text) {
            Ok(_) => return Err(TestCaseError::fail(format!("{mutation:?} accepted:\n{text}"))),
            Err(issues) => issues,
        };
        let named = issues.iter().any(|i| {
            i.line == Some(line) && words.iter().all(|w| i.message.contains(w.as_str()))
        });
        prop_assert!(named, "{mutation:?}: expected line {line} with {words:?}, got {issues:?}\n{text}");
    }
}

/// Aliases that expand exponentially ("billion laughs") are refused or bounded, never
/// expanded until memory runs out.
#[test]
fn alias_bombs_do_not_explode() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        text.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    text.push_str("clusters: *a11\nrules: []\n");
    let issues = Policy::parse(&text).expect_err("a bomb is no policy");
    assert!(!issues.is_empty());
}
