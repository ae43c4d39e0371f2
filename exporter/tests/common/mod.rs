//! Harness for the lab tests: an in-process exporter, started exactly as the binary starts,
//! scraped over real HTTP.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use clap::Parser;
use gplab::{Flavor, Lab, LabConfig};
use greenplum_exporter::cli::Cli;
use greenplum_exporter::run::Server;

/// Labs are eight PostgreSQL servers each: one at a time on a small machine.
static LAB_SLOT: Mutex<()> = Mutex::new(());

pub fn lab_slot() -> MutexGuard<'static, ()> {
    LAB_SLOT.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts a 2-content lab. One retry: provisioning occasionally fails on a busy machine
/// (seen: `chown -R` of the data dir racing a starting server); that is the lab's problem,
/// reported to its owner, not what these tests examine.
pub fn lab(flavor: Flavor) -> Lab {
    match Lab::up(LabConfig::for_tests(2, flavor)) {
        Ok(lab) => lab,
        Err(first) => {
            eprintln!("lab did not start ({first}); retrying once");
            Lab::up(LabConfig::for_tests(2, flavor)).expect("lab starts")
        }
    }
}

pub struct Exporter {
    pub address: SocketAddr,
    runtime: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Exporter {
    /// An exporter for `lab`'s coordinator and standby, plus `extra` flags.
    pub fn for_lab(lab: &Lab, extra: &[&str]) -> Exporter {
        let mut args: Vec<String> = vec!["greenplum-exporter".into()];
        let mut ports = vec![lab.coordinator_port()];
        ports.extend(lab.standby_port());
        for port in ports {
            args.push("--coordinator".into());
            args.push(format!("127.0.0.1:{port}"));
        }
        for flag in [
            "--db.user",
            "gpadmin",
            "--db.name",
            "postgres",
            "--web.listen-address",
            "127.0.0.1:0",
            "--statement-timeout",
            "3s",
            "--connect-timeout",
            "2s",
        ] {
            args.push(flag.into());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        Exporter::start(args)
    }

    pub fn start(args: Vec<String>) -> Exporter {
        let cli = Cli::try_parse_from(args).expect("flags parse");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let server = runtime
            .block_on(Server::start(&cli))
            .expect("exporter starts");
        let address = server.address;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        runtime.spawn(server.wait(async move {
            let _ = stopped.await;
        }));
        Exporter {
            address,
            runtime,
            stop: Some(stop),
        }
    }

    /// GET `path`: (status, body).
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let mut stream = TcpStream::connect(self.address).expect("connect to exporter");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.address
        );
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).expect("send");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).expect("read");
        let response = String::from_utf8_lossy(&response).to_string();
        let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        (
            status,
            if chunked {
                dechunk(body)
            } else {
                body.to_string()
            },
        )
    }

    pub fn scrape(&self) -> Metrics {
        let (status, body) = self.get("/metrics", &[]);
        assert_eq!(status, 200, "{body}");
        Metrics::parse(&body)
    }

    /// Scrapes until `check` holds; panics with the last scrape after `timeout` (a guard,
    /// not a speed assertion).
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&Metrics) -> bool,
    ) -> Metrics {
        let deadline = Instant::now() + timeout;
        loop {
            let metrics = self.scrape();
            if check(&metrics) {
                return metrics;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; last scrape:\n{}",
                    metrics.body
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&tail[..size]);
        rest = tail[size..].trim_start_matches("\r\n");
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// One parsed exposition.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub body: String,
    pub series: Vec<Series>,
}

impl Metrics {
    pub fn parse(body: &str) -> Metrics {
        let series = body
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|line| {
                let (head, value) = line.rsplit_once(' ').expect("sample value");
                let (name, labels) = match head.split_once('{') {
                    Some((name, rest)) => {
                        let inner = rest.strip_suffix('}').expect("labels close");
                        let labels = inner
                            .split("\",")
                            .filter(|p| !p.is_empty())
                            .map(|pair| {
                                let (k, v) = pair.split_once("=\"").expect("label");
                                (k.to_string(), v.trim_end_matches('"').to_string())
                            })
                            .collect();
                        (name.to_string(), labels)
                    }
                    None => (head.to_string(), BTreeMap::new()),
                };
                Series {
                    name,
                    labels,
                    value: value.parse().expect("number"),
                }
            })
            .collect();
        Metrics {
            body: body.to_string(),
            series,
        }
    }

    pub fn matching(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Series> {
        self.series
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The value of the one matching series, if exactly one matches.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        match self.matching(name, labels).as_slice() {
            [one] => Some(one.value),
            _ => None,
        }
    }

    pub fn is(&self, name: &str, labels: &[(&str, &str)], value: f64) -> bool {
        self.value(name, labels) == Some(value)
    }

    /// Label sets of a family (series identities).
    pub fn identities(&self, name: &str) -> BTreeSet<BTreeMap<String, String>> {
        self.matching(name, &[])
            .into_iter()
            .map(|s| s.labels.clone())
            .collect()
    }
}

pub fn endpoint(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

pub const GUARD: Duration = Duration::from_secs(90);
