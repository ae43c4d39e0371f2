//! The Alertmanager webhook payload (version 4) and the per-alert event the journal keeps.
//!
//! Unknown fields are ignored on purpose: newer Alertmanager versions add fields
//! (`notification_reason`, `routeLabels`) and a receiver must keep working.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "firing" => Some(AlertStatus::Firing),
            "resolved" => Some(AlertStatus::Resolved),
            _ => None,
        }
    }
}

/// One alert of a delivery. Only the fields the remediator uses are typed strictly; the
/// rest are kept as Alertmanager sent them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub status: AlertStatus,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub starts_at: DateTime<Utc>,
    /// `0001-01-01T00:00:00Z` while firing.
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    pub fingerprint: String,
}

impl Alert {
    pub fn alertname(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }

    /// The event identity: a redelivery of the same alert in the same state has the same key.
    pub fn event_key(&self) -> EventKey {
        EventKey {
            fingerprint: self.fingerprint.clone(),
            starts_at: self.starts_at,
            status: self.status,
        }
    }
}

/// Dedup key of an event: (fingerprint, startsAt, status).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventKey {
    pub fingerprint: String,
    pub starts_at: DateTime<Utc>,
    pub status: AlertStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload {
    pub version: String,
    #[serde(default)]
    pub group_key: String,
    #[serde(default)]
    pub truncated_alerts: u64,
    pub status: AlertStatus,
    #[serde(default)]
    pub receiver: String,
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    #[serde(default, rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<Alert>,
}

#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("body is not a valid Alertmanager webhook payload: {0}")]
    Json(#[from] serde_json::Error),
    /// An error inside the document; `path` says where (`alerts[0].startsAt`), because
    /// serde_json alone names only a line and column.
    #[error("body is not a valid Alertmanager webhook payload: {path}: {source}")]
    Field {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("unsupported webhook payload version {0:?} (expected \"4\")")]
    Version(String),
    #[error("alert {index} has an empty fingerprint")]
    EmptyFingerprint { index: usize },
}

impl WebhookPayload {
    pub fn parse(body: &[u8]) -> Result<Self, PayloadError> {
        let mut json = serde_json::Deserializer::from_slice(body);
        let payload: WebhookPayload = serde_path_to_error::deserialize(&mut json).map_err(|e| {
            let path = e.path().to_string();
            let source = e.into_inner();
            // An error at the top level has no path worth printing.
            if path != "." {
                PayloadError::Field { path, source }
            } else {
                PayloadError::Json(source)
            }
        })?;
        json.end()?;
        if payload.version != "4" {
            return Err(PayloadError::Version(payload.version));
        }
        if let Some(index) = payload
            .alerts
            .iter()
            .position(|a| a.fingerprint.trim().is_empty())
        {
            return Err(PayloadError::EmptyFingerprint { index });
        }
        Ok(payload)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The recorded deliveries keep their headers next to the body; tests need the body.
    pub(crate) fn recorded_body(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("recorded payload");
        let whole: serde_json::Value = serde_json::from_str(&text).expect("json");
        serde_json::to_vec(&whole["body"]).expect("body")
    }

    #[test]
    fn parses_the_recorded_firing_delivery() {
        let payload =
            WebhookPayload::parse(&recorded_body("firing-two-segments-down.json")).expect("parse");
        assert_eq!(payload.version, "4");
        assert_eq!(payload.status, AlertStatus::Firing);
        assert_eq!(payload.alerts.len(), 2);
        let first = &payload.alerts[0];
        assert_eq!(first.alertname(), "GreenplumSegmentDown");
        assert_eq!(first.fingerprint, "7ee480dfb19c27fa");
        assert_eq!(first.labels["dbid"], "2");
        assert_eq!(payload.alerts[1].generator_url, "");
    }

    #[test]
    fn each_alert_keeps_its_own_status() {
        let payload =
            WebhookPayload::parse(&recorded_body("one-resolved-one-firing.json")).expect("parse");
        assert_eq!(payload.status, AlertStatus::Firing);
        assert_eq!(payload.alerts[0].status, AlertStatus::Resolved);
        assert_eq!(payload.alerts[1].status, AlertStatus::Firing);
        let ends = payload.alerts[0].ends_at.expect("ends_at");
        assert_eq!(ends.to_rfc3339(), "2026-11-21T16:28:02+00:00");
    }

    #[test]
    fn event_keys_differ_by_status_only_when_status_differs() {
        let firing =
            WebhookPayload::parse(&recorded_body("firing-two-segments-down.json")).expect("parse");
        let later =
            WebhookPayload::parse(&recorded_body("one-resolved-one-firing.json")).expect("parse");
        // dbid 3 is firing in both deliveries: a redelivery, same key.
        assert_eq!(firing.alerts[1].event_key(), later.alerts[1].event_key());
        // dbid 2 resolved: a new event.
        assert_ne!(firing.alerts[0].event_key(), later.alerts[0].event_key());
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let mut value: serde_json::Value =
            serde_json::from_slice(&recorded_body("firing-two-segments-down.json")).expect("json");
        value["notification_reason"] = "new".into();
        value["routeLabels"] = serde_json::json!({"a": "b"});
        value["alerts"][0]["somethingNew"] = 1.into();
        let body = serde_json::to_vec(&value).expect("encode");
        assert!(WebhookPayload::parse(&body).is_ok());
    }

    #[test]
    fn rejects_other_versions_and_malformed_bodies() {
        let mut value: serde_json::Value =
            serde_json::from_slice(&recorded_body("firing-two-segments-down.json")).expect("json");
        value["version"] = "3".into();
        let body = serde_json::to_vec(&value).expect("encode");
        assert!(matches!(
            WebhookPayload::parse(&body),
            Err(PayloadError::Version(_))
        ));
        assert!(WebhookPayload::parse(b"{\"version\":\"4\"").is_err());
        assert!(WebhookPayload::parse(b"[]").is_err());
        let mut value: serde_json::Value =
            serde_json::from_slice(&recorded_body("firing-two-segments-down.json")).expect("json");
        value["alerts"][0]["status"] = "exploded".into();
        let body = serde_json::to_vec(&value).expect("encode");
        assert!(WebhookPayload::parse(&body).is_err());
    }
}
