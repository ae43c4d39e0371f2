//! The end-to-end harness: real Prometheus and Alertmanager processes (Debian packages)
//! around the lab, the exporter and the remediator, each held by a guard that stops it when
//! the test or demo ends, even on failure.

pub mod alertmanager;
pub mod bins;
pub mod exporter;
pub mod faults;
pub mod process;
pub mod prometheus;
pub mod real;
pub mod real_stack;
pub mod real_story;
pub mod remediator;
pub mod scenario;
pub mod stack;

use std::path::PathBuf;

/// The repository root (rule files, dashboards, policies live there).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")))
}

/// Every (where, expr) pair of the alert rules and the dashboards, with Grafana variables
/// rendered for `cluster`, as listed by the project's own checkers (one source of truth).
pub fn rule_and_panel_exprs(cluster: &str) -> anyhow::Result<Vec<(String, String)>> {
    use anyhow::Context;
    let script = r#"
import json, pathlib, sys, yaml
root = pathlib.Path(sys.argv[1]); cluster = sys.argv[2]
sys.path.insert(0, str(root / "dashboards"))
import check_dashboards as dash
out = []
for rules in sorted((root / "alerts").glob("*.rules.yml")):
    for group in yaml.safe_load(rules.read_text())["groups"]:
        for rule in group["rules"]:
            out.append(("alert " + rule["alert"], rule["expr"]))
for path in sorted((root / "dashboards").glob("*.json")):
    for title, expr in dash.exprs(dash.load(path)):
        out.append((path.name + ": " + title, dash.render(expr, cluster=cluster)))
print(json.dumps(out))
"#;
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(repo_root())
        .arg(cluster)
        .output()
        .context("running python3 to list rule and panel expressions")?;
    if !output.status.success() {
        anyhow::bail!(
            "listing expressions failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// The code block that follows `<!-- recipe: NAME ... -->` in a document of the repository
/// (e.g. `docs/OPERATIONS.md`): what the docs tell a user to run, so a test runs exactly that.
pub fn doc_recipe(doc: &str, name: &str) -> anyhow::Result<String> {
    use anyhow::Context;
    let text =
        std::fs::read_to_string(repo_root().join(doc)).with_context(|| format!("reading {doc}"))?;
    let marker = format!("<!-- recipe: {name} ");
    let after = text
        .split_once(&marker)
        .with_context(|| format!("{doc} has no recipe {name}"))?
        .1;
    let block = after
        .split_once("```")
        .and_then(|(_, rest)| rest.split_once('\n'))
        .and_then(|(_, rest)| rest.split_once("```"))
        .with_context(|| format!("recipe {name} in {doc} is not followed by a code block"))?
        .0;
    Ok(block.to_string())
}
