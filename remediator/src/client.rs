//! The operator subcommands' side of the API (`actions`, `pause`, `resume`, `breaker
//! reset`): one HTTP(S) request each, with the token and TLS the flags name, and the answer
//! printed (a table for `actions list`, pretty JSON otherwise).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::auth::read_secret;
use crate::cli::{ActionsCommand, ClientArgs, ClientTlsArgs};
use crate::tls;

fn client_agent(client: &ClientArgs) -> Result<(ureq::Agent, Option<String>)> {
    let token = match &client.token_file {
        Some(path) => {
            Some(String::from_utf8(read_secret(path)?).context("token file is not UTF-8")?)
        }
        None => None,
    };
    let mut builder = ureq::AgentBuilder::new().timeout(Duration::from_secs(30));
    if let Some(config) = client_tls(&client.tls)? {
        builder = builder.tls_config(Arc::new(config));
    }
    Ok((builder.build(), token))
}

/// The CLI's TLS configuration when any `--tls.*` flag is given (otherwise ureq's default:
/// webpki roots, no client certificate).
fn client_tls(args: &ClientTlsArgs) -> Result<Option<rustls::ClientConfig>> {
    let identity = match (&args.cert, &args.key) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
        _ => bail!("--tls.cert-file and --tls.key-file go together"),
    };
    if args.ca.is_none() && identity.is_none() {
        return Ok(None);
    }
    let config = tls::client_config(args.ca.as_deref(), identity).context("configure TLS")?;
    Ok(Some(config))
}

fn request(
    client: &ClientArgs,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value> {
    let (agent, token) = client_agent(client)?;
    let url = format!("{}{path}", client.url.trim_end_matches('/'));
    let mut req = agent.request(method, &url);
    if let Some(token) = token {
        req = req.set("Authorization", &format!("Bearer {token}"));
    }
    let response = match body {
        Some(body) => req.send_json(body),
        None => req.call(),
    };
    match response {
        Ok(r) => r.into_json().context("decode the API's answer"),
        Err(ureq::Error::Status(code, r)) => {
            let text = r.into_string().unwrap_or_default();
            bail!("{method} {url}: HTTP {code}: {text}")
        }
        Err(e) => bail!("{method} {url}: {e}"),
    }
}

fn print(value: &serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `actions list|show|approve|reject`.
pub fn actions(command: ActionsCommand) -> Result<()> {
    let decision = |client: &ClientArgs, reason: &str| json!({"who": client.who, "why": reason});
    let answer = match command {
        ActionsCommand::List { client, state } => return list(&client, state.as_deref()),
        ActionsCommand::Show { client, id } => {
            request(&client, "GET", &format!("/api/v1/actions/{id}"), None)?
        }
        ActionsCommand::Approve { client, id, reason } => request(
            &client,
            "POST",
            &format!("/api/v1/actions/{id}/approve"),
            Some(decision(&client, &reason)),
        )?,
        ActionsCommand::Reject { client, id, reason } => request(
            &client,
            "POST",
            &format!("/api/v1/actions/{id}/reject"),
            Some(decision(&client, &reason)),
        )?,
    };
    print(&answer)
}

/// `actions list`: one tab-separated line per action.
fn list(client: &ClientArgs, state: Option<&str>) -> Result<()> {
    let path = match state {
        Some(s) => format!("/api/v1/actions?state={s}"),
        None => "/api/v1/actions".to_string(),
    };
    let answer = request(client, "GET", &path, None)?;
    for action in answer["actions"].as_array().into_iter().flatten() {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            action["id"],
            action["state"].as_str().unwrap_or("?"),
            action["cluster"].as_str().unwrap_or("?"),
            action["action"].as_str().unwrap_or("?"),
            action["targets"],
            action["created_at"].as_str().unwrap_or("?"),
        );
    }
    Ok(())
}

/// `pause`, `resume` and `breaker reset`: a POST with who and why.
pub fn control(
    client: &ClientArgs,
    path: &str,
    reason: &str,
    cluster: Option<String>,
) -> Result<()> {
    let mut body = json!({"who": client.who, "why": reason});
    if let Some(cluster) = cluster {
        body["cluster"] = cluster.into();
    }
    print(&request(client, "POST", path, Some(body))?)
}
