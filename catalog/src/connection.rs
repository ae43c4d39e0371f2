//! How to reach a cluster as both services' files write it: [`ClusterConnection`], one set of
//! keys parsed by one piece of code, so the exporter's `--config.file` and the remediator's
//! policy cannot drift apart (same keys, same defaults, same errors).
//!
//! ```yaml
//! endpoints: ["cdw:5432", "[fd00::2]:5432"]  # required: coordinator, then standby
//! user: gpmon                 # default gpadmin
//! database: postgres          # default postgres
//! password_file: gp.password  # its first line; relative paths: relative to the file
//! tls:                        # TLS required, server verified against ca_file
//!   ca_file: ca.crt
//!   cert_file: client.crt     # optional client certificate, with key_file
//!   key_file: client.key
//! connect_timeout: 5s         # default: the service's (flag or built-in 5s)
//! statement_timeout: 10s      # default: the service's (flag or built-in 10s)
//! ```
//!
//! The keys sit at the level of the file's other cluster keys. Since serde's `flatten`
//! cannot refuse unknown keys, [`deserialize_with`] splits one YAML mapping itself: the
//! connection keys go to [`ClusterConnection`], every other key to the caller's own struct,
//! which keeps `deny_unknown_fields` (and the YAML deserializer's line numbers).
//!
//! Durations, here and in every flag and policy key of the workspace, are [`parse_duration`]'s.

use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::config::ReaderConfig;
use crate::endpoint::Endpoint;
use crate::error::CatalogError;
use crate::tls::TlsConfig;

/// The user when the file names none.
pub const DEFAULT_USER: &str = "gpadmin";
/// The database when the file names none.
pub const DEFAULT_DATABASE: &str = "postgres";

/// How to reach and log in to one cluster, as a file writes it (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConnection {
    /// `host:port` texts (IPv6 as `[::1]:5432`), checked by [`ClusterConnection::endpoints`].
    pub endpoints: Vec<String>,
    /// `user`: the role the catalog is read as (default [`DEFAULT_USER`]).
    pub user: String,
    /// `database`: where the sessions connect (default [`DEFAULT_DATABASE`]).
    pub database: String,
    /// `password_file`: its first line is the password; relative to the file naming it.
    pub password_file: Option<PathBuf>,
    /// `tls`: verify the server against a CA (and present a client certificate).
    pub tls: Option<TlsFiles>,
    /// `connect_timeout`: bound on each connection attempt and endpoint probe.
    pub connect_timeout: Option<Duration>,
    /// `statement_timeout`: bound on each catalog statement, set on the session.
    pub statement_timeout: Option<Duration>,
}

/// The `tls:` key: PEM files, relative to the file that names them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The CA that signed the server's certificate; TLS is required once it is set.
    pub ca_file: PathBuf,
    /// A client certificate to present (with `key_file`).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

/// What the service adds to a [`ClusterConnection`]: its name on the session and the
/// timeouts used where the file gives none (`None`: the catalog's built-in defaults).
#[derive(Debug, Clone, Default)]
pub struct ConnectionDefaults {
    /// The service's `application_name` on every session.
    pub application_name: String,
    /// The service's connect timeout (its flag), for files that give none.
    pub connect_timeout: Option<Duration>,
    /// The service's statement timeout (its flag), for files that give none.
    pub statement_timeout: Option<Duration>,
}

impl Default for ClusterConnection {
    /// No endpoint yet, the default user and database, nothing else.
    fn default() -> Self {
        ClusterConnection {
            endpoints: Vec::new(),
            user: DEFAULT_USER.into(),
            database: DEFAULT_DATABASE.into(),
            password_file: None,
            tls: None,
            connect_timeout: None,
            statement_timeout: None,
        }
    }
}

impl ClusterConnection {
    /// Every key this type reads, in the order the docs list them.
    pub const KEYS: &'static [&'static str] = &[
        "endpoints",
        "user",
        "database",
        "password_file",
        "tls",
        "connect_timeout",
        "statement_timeout",
    ];

    /// Keys of earlier versions, refused with the key that replaced them.
    const RENAMED: &'static [(&'static str, &'static str)] = &[
        ("coordinator", "endpoints (a list of \"host:port\")"),
        ("db", "database"),
    ];

    /// The endpoints, parsed; the error names the first one that is not `host:port`.
    pub fn endpoints(&self) -> Result<Vec<Endpoint>, CatalogError> {
        self.endpoints.iter().map(|e| e.parse()).collect()
    }

    /// The reader config: `base` resolves relative paths (the directory of the file that
    /// holds this connection), `defaults` fills what the file leaves out. Reads the
    /// password file now, so a missing one stops the start-up, not a later read.
    pub fn reader_config(
        &self,
        defaults: &ConnectionDefaults,
        base: &Path,
    ) -> Result<ReaderConfig, CatalogError> {
        let mut config = ReaderConfig::new(self.endpoints()?, &self.user, &self.database);
        if !defaults.application_name.is_empty() {
            config.application_name = defaults.application_name.clone();
        }
        if let Some(file) = &self.password_file {
            config.password = Some(read_password_file(&base.join(file))?);
        }
        config.tls = self.tls.as_ref().map(|tls| TlsConfig {
            ca_file: base.join(&tls.ca_file),
            client_cert: tls.cert_file.as_ref().map(|f| base.join(f)),
            client_key: tls.key_file.as_ref().map(|f| base.join(f)),
        });
        if let Some(t) = self.connect_timeout.or(defaults.connect_timeout) {
            config.connect_timeout = t;
        }
        if let Some(t) = self.statement_timeout.or(defaults.statement_timeout) {
            config.statement_timeout = t;
        }
        Ok(config)
    }
}

/// Reads a password file: its first line, without the line ending; an empty one is an error.
pub fn read_password_file(path: &Path) -> Result<String, CatalogError> {
    let error = |source| CatalogError::PasswordFile {
        path: path.to_path_buf(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(error)?;
    let password = text.lines().next().unwrap_or_default();
    if password.is_empty() {
        return Err(error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "is empty (the password is its first line)",
        )));
    }
    Ok(password.to_string())
}

/// The one duration syntax of the workspace: whole numbers with humantime's short units
/// `ms`, `s`, `m`, `h`, `d`, written together: `500ms`, `10s`, `1m30s`, `2h`, `1d`. Spaces,
/// fractions and long unit names (`5 minutes`, `1.5h`, `5min`) are refused, so a file or a
/// flag reads the same to everyone; humantime does the arithmetic.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let parsed = match unit_problem(trimmed) {
        Some(why) => Err(why),
        None => humantime::parse_duration(trimmed).map_err(|e| e.to_string()),
    };
    parsed.map_err(|why| {
        format!("invalid duration {text:?}: {why} (write e.g. 500ms, 10s, 1m30s, 2h, 1d)")
    })
}

/// Why `text` is outside the compact form, if it is.
fn unit_problem(text: &str) -> Option<String> {
    const UNITS: [&str; 5] = ["ms", "s", "m", "h", "d"];
    if let Some(c) = text.chars().find(|c| !c.is_ascii_alphanumeric()) {
        return Some(format!(
            "{c:?} is not allowed (no spaces, signs or fractions)"
        ));
    }
    text.split(|c: char| c.is_ascii_digit())
        .filter(|unit| !unit.is_empty())
        .find(|unit| !UNITS.contains(unit))
        .map(|unit| format!("unknown unit {unit:?} (use ms, s, m, h, d)"))
}

/// Deserializes one mapping that holds the connection keys beside `T`'s own keys. `T` sees
/// every other key and refuses those it does not know (`deny_unknown_fields`); the keys of
/// earlier versions (`coordinator`, `db`) are refused naming their replacement.
pub fn deserialize_with<'de, D, T>(deserializer: D) -> Result<(ClusterConnection, T), D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    deserializer.deserialize_map(SplitVisitor(PhantomData))
}

impl<'de> Deserialize<'de> for ClusterConnection {
    /// A mapping of connection keys only.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_with::<D, NoOtherKeys>(deserializer).map(|(connection, _)| connection)
    }
}

struct SplitVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for SplitVisitor<T> {
    type Value = (ClusterConnection, T);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping with endpoints and the other cluster keys")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let mut split = Split {
            map,
            found: Found::default(),
        };
        let rest = T::deserialize(de::value::MapAccessDeserializer::new(&mut split))?;
        Ok((split.found.finish()?, rest))
    }
}

/// The connection keys seen so far.
#[derive(Default)]
struct Found {
    endpoints: Option<Vec<String>>,
    user: Option<String>,
    database: Option<String>,
    password_file: Option<Option<PathBuf>>,
    tls: Option<Option<TlsFiles>>,
    connect_timeout: Option<Option<DurationText>>,
    statement_timeout: Option<Option<DurationText>>,
}

fn once<T, E: de::Error>(slot: &mut Option<T>, key: &'static str, value: T) -> Result<(), E> {
    if slot.replace(value).is_some() {
        return Err(E::duplicate_field(key));
    }
    Ok(())
}

impl Found {
    fn take<'de, A: MapAccess<'de>>(
        &mut self,
        key: &'static str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        match key {
            "endpoints" => once(
                &mut self.endpoints,
                key,
                map.next_value::<EndpointTexts>()?.0,
            ),
            "user" => once(&mut self.user, key, map.next_value()?),
            "database" => once(&mut self.database, key, map.next_value()?),
            "password_file" => once(&mut self.password_file, key, map.next_value()?),
            "tls" => once(&mut self.tls, key, map.next_value()?),
            "connect_timeout" => once(&mut self.connect_timeout, key, map.next_value()?),
            "statement_timeout" => once(&mut self.statement_timeout, key, map.next_value()?),
            other => Err(de::Error::unknown_field(other, ClusterConnection::KEYS)),
        }
    }

    fn finish<E: de::Error>(self) -> Result<ClusterConnection, E> {
        let defaults = ClusterConnection::default();
        Ok(ClusterConnection {
            endpoints: self
                .endpoints
                .ok_or_else(|| E::missing_field("endpoints"))?,
            user: self.user.unwrap_or(defaults.user),
            database: self.database.unwrap_or(defaults.database),
            password_file: self.password_file.flatten(),
            tls: self.tls.flatten(),
            connect_timeout: self.connect_timeout.flatten().map(|d| d.0),
            statement_timeout: self.statement_timeout.flatten().map(|d| d.0),
        })
    }
}

/// The mapping as `T` sees it: connection keys are taken out as they pass.
struct Split<A> {
    map: A,
    found: Found,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Split<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let mut seed = seed;
        loop {
            match self.map.next_key_seed(KeySeed(seed))? {
                None => return Ok(None),
                Some(Key::Other(value)) => return Ok(Some(value)),
                Some(Key::Connection(key, back)) => {
                    self.found.take(key, &mut self.map)?;
                    seed = back;
                }
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

enum Key<S, V> {
    /// A connection key, and the caller's seed back for the next key.
    Connection(&'static str, S),
    Other(V),
}

/// Reads a key inside the YAML deserializer, so that an error about it (unknown, renamed)
/// carries the key's line.
struct KeySeed<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for KeySeed<S> {
    type Value = Key<S, S::Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_identifier(KeyVisitor(self.0))
    }
}

struct KeyVisitor<S>(S);

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for KeyVisitor<S> {
    type Value = Key<S, S::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        if let Some(known) = ClusterConnection::KEYS.iter().find(|k| **k == key) {
            return Ok(Key::Connection(known, self.0));
        }
        if let Some((_, new)) = ClusterConnection::RENAMED
            .iter()
            .find(|(old, _)| *old == key)
        {
            return Err(E::custom(format_args!("`{key}` is now `{new}`")));
        }
        self.0.deserialize(key.into_deserializer()).map(Key::Other)
    }
}

/// `T` for a mapping that holds connection keys only: any other key is unknown.
struct NoOtherKeys;

impl<'de> Deserialize<'de> for NoOtherKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(NoOtherKeys)
    }
}

impl<'de> Visitor<'de> for NoOtherKeys {
    type Value = NoOtherKeys;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection keys")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_key_seed(UnknownKey)?.is_some() {}
        Ok(NoOtherKeys)
    }
}

/// Refuses whatever key it is given.
struct UnknownKey;

impl<'de> DeserializeSeed<'de> for UnknownKey {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for UnknownKey {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a connection key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<(), E> {
        Err(E::unknown_field(key, ClusterConnection::KEYS))
    }
}

/// `endpoints:`, refused when empty (inside the sequence, so the error has its line).
struct EndpointTexts(Vec<String>);

impl<'de> Deserialize<'de> for EndpointTexts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(EndpointTextsVisitor)
    }
}

struct EndpointTextsVisitor;

impl<'de> Visitor<'de> for EndpointTextsVisitor {
    type Value = EndpointTexts;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of \"host:port\"")
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut texts = Vec::new();
        while let Some(text) = seq.next_element::<String>()? {
            texts.push(text);
        }
        if texts.is_empty() {
            return Err(de::Error::custom(
                "endpoints is empty: give at least one \"host:port\"",
            ));
        }
        Ok(EndpointTexts(texts))
    }
}

/// A duration key, parsed by [`parse_duration`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DurationText(Duration);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration(&text)
            .map(DurationText)
            .map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
