//! Bad input against the real `greenplum-exporter` binary, spoken to over raw TCP so that no
//! client library tidies the request up: wrong methods, unknown paths, huge headers, URLs and
//! bodies, slow clients (slowloris), invalid UTF-8, and `/probe` targets that try to point
//! the exporter somewhere else. No database is needed: `--coordinator` names a port nobody
//! listens on, and `/metrics` still answers with a full exposition saying so. After every
//! case the service still answers `/metrics` and `/healthz`.
//!
//! The exporter takes no request bodies at all (every endpoint is a GET), so JSON nesting and
//! content types reduce to "a body is refused": 405 for other methods, 413 for a large one.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use greenplum_test_support::{exchange, join_cut, request_bytes, slow_crowd, Answer, GUARD};

const BIN: &str = env!("CARGO_BIN_EXE_greenplum-exporter");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running exporter process; killed on drop.
struct Exporter {
    child: Child,
    address: SocketAddr,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Exporter {
    /// An exporter of one cluster whose coordinator does not exist, plus `extra` flags.
    fn start(extra: &[String]) -> Exporter {
        Exporter::start_in(tempfile::tempdir().expect("tempdir"), extra)
    }

    /// As [`Exporter::start`], keeping `dir` (its log, its config files) while it runs.
    fn start_in(dir: tempfile::TempDir, extra: &[String]) -> Exporter {
        let address: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let log = dir.path().join("exporter.log");
        let file = std::fs::File::create(&log).expect("log");
        let child = Command::new(BIN)
            .args(["--coordinator", &format!("127.0.0.1:{}", free_port())])
            .args(["--db.user", "gpadmin", "--db.name", "postgres"])
            .args(["--connect-timeout", "1s", "--statement-timeout", "1s"])
            .args(["--web.listen-address", &address.to_string()])
            .args(extra)
            .env_remove("PGPASSWORD")
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone().expect("log")))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("spawn greenplum-exporter");
        let mut exporter = Exporter {
            child,
            address,
            log,
            _dir: dir,
        };
        exporter.wait_ready();
        exporter
    }

    /// An exporter of `--config.file` clusters: `prod` at `endpoint`.
    fn with_targets(endpoint: &str) -> Exporter {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("clusters.yml");
        std::fs::write(
            &config,
            format!(
                "clusters:\n  prod:\n    endpoints: [\"{endpoint}\"]\n    user: gpmon\n    \
                 database: postgres\n    connect_timeout: 1s\n    statement_timeout: 1s\n"
            ),
        )
        .expect("config");
        let flags = ["--config.file".to_string(), config.display().to_string()];
        Exporter::start_in(dir, &flags)
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + GUARD;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("exporter exited at start ({status}):\n{}", self.log_text());
            }
            if TcpStream::connect(self.address).is_ok() && self.get("/healthz").status == Some(200)
            {
                return;
            }
            assert!(Instant::now() < deadline, "exporter never became ready");
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn exchange(&self, request: &[u8]) -> Answer {
        exchange(self.address, request)
    }

    /// `METHOD target` with `Connection: close` and the given extra header lines.
    fn request(&self, method: &str, target: &[u8], headers: &[String]) -> Answer {
        self.exchange(&request_bytes(method, target, "exporter", headers, None))
    }

    fn get(&self, target: &str) -> Answer {
        self.request("GET", target.as_bytes(), &[])
    }

    /// The process is alive and answers `/metrics` (a full exposition) and `/healthz`.
    fn assert_alive(&mut self, after: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "exporter died after {after} ({status}):\n{}",
                self.log_text()
            );
        }
        let metrics = self.get("/metrics");
        assert_eq!(
            metrics.status,
            Some(200),
            "/metrics after {after}: {metrics:?}"
        );
        assert!(
            metrics.body.contains("greenplum_exporter_build_info"),
            "/metrics after {after}: {metrics:?}"
        );
        let health = self.get("/healthz");
        assert_eq!(
            health.status,
            Some(200),
            "/healthz after {after}: {health:?}"
        );
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn wrong_methods_and_unknown_paths() {
    let mut exporter = Exporter::start(&[]);
    for (method, path) in [
        ("POST", "/metrics"),
        ("PUT", "/metrics"),
        ("DELETE", "/probe?target=prod"),
        ("PATCH", "/healthz"),
        ("POST", "/"),
    ] {
        let answer = exporter.request(method, path.as_bytes(), &[]);
        assert_eq!(answer.status, Some(405), "{method} {path}: {answer:?}");
        let allow = answer.header("allow").unwrap_or_default();
        assert!(allow.contains("GET"), "{method} {path}: Allow {allow:?}");
        exporter.assert_alive(&format!("{method} {path}"));
    }
    for path in [
        "/nope",
        "/metrics/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "//metrics",
        "/metrics.json",
    ] {
        let answer = exporter.get(path);
        assert_eq!(answer.status, Some(404), "{path}: {answer:?}");
        assert!(answer.body.contains("no endpoint"), "{path}: {answer:?}");
        exporter.assert_alive(path);
    }
}

#[test]
fn huge_headers_urls_and_bodies() {
    let mut exporter = Exporter::start(&[]);
    let one_huge = vec![format!("X-Huge: {}", "a".repeat(1024 * 1024))];
    let many: Vec<String> = (0..500).map(|i| format!("X-Header-{i}: {i}")).collect();
    for (what, headers) in [("one 1 MiB header", one_huge), ("500 headers", many)] {
        let answer = exporter.request("GET", b"/metrics", &headers);
        assert!(
            matches!(answer.status, Some(431) | None),
            "{what}: {:?}",
            answer.status
        );
        exporter.assert_alive(what);
    }
    // A 200 KB URL: refused by hyper (414, 431) or closed.
    let url = format!("/probe?target={}", "a".repeat(200_000));
    let answer = exporter.get(&url);
    assert!(
        matches!(answer.status, Some(414 | 431 | 400) | None),
        "{:?}",
        answer.status
    );
    exporter.assert_alive("a 200 KB URL");

    // Bodies: announced and never sent, and sent.
    let raw = b"GET /metrics HTTP/1.1\r\nHost: e\r\nContent-Length: 10000000000\r\n\r\n";
    let answer = exporter.exchange(raw);
    assert_eq!(answer.status, Some(413), "{answer:?}");
    exporter.assert_alive("a 10 GB announcement");
    let mut raw = b"GET /metrics HTTP/1.1\r\nHost: e\r\nContent-Length: 100000\r\n\r\n".to_vec();
    raw.extend(std::iter::repeat_n(b'{', 100_000));
    let answer = exporter.exchange(&raw);
    assert_eq!(answer.status, Some(413), "{answer:?}");
    exporter.assert_alive("a 100 KB body");
    // JSON, deeply nested, where nothing takes a body: refused by method, never parsed.
    let nested = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    let raw = format!(
        "POST /metrics HTTP/1.1\r\nHost: e\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{nested}",
        nested.len()
    );
    let answer = exporter.exchange(raw.as_bytes());
    assert_eq!(answer.status, Some(405), "{answer:?}");
    exporter.assert_alive("deep JSON");
}

#[test]
fn invalid_utf8_anywhere_is_harmless() {
    let mut exporter = Exporter::start(&[]);
    // Raw invalid UTF-8 in the request line: hyper refuses it.
    let answer = exporter.exchange(b"GET /metrics\xff\xfe HTTP/1.1\r\nHost: e\r\n\r\n");
    assert_eq!(answer.status, Some(400), "{answer:?}");
    exporter.assert_alive("raw invalid UTF-8 in the path");
    // Percent-encoded: a path that is no endpoint, a target that is no cluster.
    let answer = exporter.get("/%FF%FE");
    assert_eq!(answer.status, Some(404), "{answer:?}");
    let answer = exporter.get("/probe?target=%FF%FE");
    assert_eq!(answer.status, Some(400), "{answer:?}");
    exporter.assert_alive("invalid UTF-8 in the query");
    // Headers that are not text are ignored: default format, default scrape budget.
    let mut raw = b"GET /metrics HTTP/1.1\r\nHost: e\r\nConnection: close\r\n".to_vec();
    raw.extend_from_slice(b"Accept: \xff\xfe/\xc3\x28\r\n");
    raw.extend_from_slice(b"X-Prometheus-Scrape-Timeout-Seconds: \xff1\r\n");
    raw.extend_from_slice(b"Authorization: Basic \xff\xfe\r\n\r\n");
    let answer = exporter.exchange(&raw);
    assert_eq!(answer.status, Some(200), "{answer:?}");
    assert!(
        answer.body.contains("greenplum_exporter_build_info"),
        "{answer:?}"
    );
    exporter.assert_alive("invalid UTF-8 in headers");
    // Scrape timeouts that are no Duration: the default budget, not a panicking handler.
    for timeout in ["1e300", "inf", "NaN", "-5", "18446744073709551616"] {
        let header = format!("X-Prometheus-Scrape-Timeout-Seconds: {timeout}");
        let answer = exporter.request("GET", b"/metrics", &[header]);
        assert_eq!(answer.status, Some(200), "{timeout}: {answer:?}");
    }
    exporter.assert_alive("absurd scrape timeouts");
}

/// Counts connections to a port that stands in for "somewhere the exporter must not go".
struct Trap {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl Trap {
    fn open() -> Trap {
        let listener = TcpListener::bind("127.0.0.1:0").expect("trap");
        let port = listener.local_addr().expect("addr").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                count.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Trap { port, accepted }
    }

    fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

#[test]
fn probe_targets_are_names_never_addresses() {
    // `prod` is a configured cluster whose coordinator is the trap itself: probing it must
    // reach the trap (the trap works), probing anything else must reach nothing.
    let trap = Trap::open();
    let mut exporter = Exporter::with_targets(&format!("127.0.0.1:{}", trap.port));
    let port = trap.port;
    let long = "x".repeat(5_000);
    let hostile = [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        format!("http://127.0.0.1:{port}/"),
        format!("postgres://gpadmin:secret@127.0.0.1:{port}/postgres"),
        format!("host=127.0.0.1 port={port}"),
        "file:///etc/passwd".into(),
        "../prod".into(),
        "prod/../prod".into(),
        "..%2F..%2Fetc%2Fpasswd".into(),
        "%2e%2e".into(),
        "prod%00".into(),
        "%00".into(),
        "prod%0d%0aX-Injected:%201".into(),
        "PROD".into(),
        " prod".into(),
        long.clone(),
    ];
    for target in &hostile {
        let answer = exporter.get(&format!("/probe?target={}", target.replace(' ', "%20")));
        assert_eq!(answer.status, Some(400), "{target:?}: {answer:?}");
        assert!(
            answer.body.contains("unknown target"),
            "{target:?}: {answer:?}"
        );
        assert!(
            answer
                .body
                .contains("cluster names from --config.file (prod)"),
            "{answer:?}"
        );
        // The echo is quoted and short: no raw control characters, no header injection.
        assert!(answer.header("x-injected").is_none(), "{answer:?}");
        assert!(!answer.body.contains('\0') && !answer.body.contains("\r\nX-"));
        assert!(answer.body.len() < 500, "{} bytes", answer.body.len());
        exporter.assert_alive(target);
    }
    // Missing, empty and repeated parameters.
    for query in ["/probe", "/probe?target=", "/probe?other=prod"] {
        let answer = exporter.get(query);
        assert_eq!(answer.status, Some(400), "{query}: {answer:?}");
        assert!(
            answer.body.contains("missing parameter"),
            "{query}: {answer:?}"
        );
    }
    let answer = exporter.get("/probe?target=nope&target=prod");
    assert_eq!(answer.status, Some(400), "{answer:?}");
    exporter.assert_alive("odd parameters");
    assert_eq!(trap.connections(), 0, "a hostile target reached the trap");

    // The named cluster is probed, at its configured address only.
    let answer = exporter.get("/probe?target=prod");
    assert_eq!(answer.status, Some(200), "{answer:?}");
    assert!(
        trap.connections() > 0,
        "the configured cluster was not probed"
    );

    // Without --config.file, /probe has no targets at all.
    let mut plain = Exporter::start(&[]);
    let answer = plain.get(&format!("/probe?target=127.0.0.1:{port}"));
    assert_eq!(answer.status, Some(400), "{answer:?}");
    assert!(answer.body.contains("none was given"), "{answer:?}");
    plain.assert_alive("/probe without --config.file");
}

#[test]
fn slow_clients_are_cut_while_others_are_served() {
    let mut exporter = Exporter::start(&[]);
    let address = exporter.address;
    // 15 connect and say nothing, 25 trickle their headers, 10 trickle a body.
    let clients = slow_crowd(
        address,
        15,
        (25, b"GET /metrics HTTP/1.1\r\nHost: e\r\n"),
        (
            10,
            b"GET /metrics HTTP/1.1\r\nHost: e\r\nContent-Length: 60000\r\n\r\n",
            b"x",
        ),
    );
    thread::sleep(Duration::from_millis(500));
    let open = clients
        .iter()
        .filter(|(kind, c)| *kind != "slow body" && !c.is_finished())
        .count();
    assert_eq!(
        open, 40,
        "silent and slow-header clients are still connected"
    );
    // While they are all open, others are served.
    exporter.assert_alive("40 slow clients connected");

    for (kind, outcome) in join_cut(clients) {
        match kind {
            // The body is never waited for: answered at once, then the connection ends.
            "slow body" => assert_eq!(outcome.answer.status, Some(200), "{outcome:?}"),
            _ => assert_eq!(outcome.answer.status, None, "{kind}: {outcome:?}"),
        }
    }
    exporter.assert_alive("50 slow clients cut");
}
