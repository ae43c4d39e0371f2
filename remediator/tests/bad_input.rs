//! Bad input against the real `greenplum-remediator serve` binary, spoken to over raw TCP so
//! that nothing in a client library tidies the request up: wrong methods, unknown paths, huge
//! headers and bodies, slow headers and bodies (slowloris), invalid UTF-8, deep JSON and wrong
//! content types. Every case gets a clear error, nothing refused reaches the journal, and
//! after every case the service still answers `/metrics` and `/-/healthy`.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use common::*;
use greenplum_test_support::{
    exchange, join_cut, read_answer, request_bytes, slow_crowd, Answer, GUARD,
};

/// `--web.read-timeout` of these tests: short, so slow clients are cut quickly.
const READ_TIMEOUT: &str = "2s";

struct Server {
    _dir: tempfile::TempDir,
    remediator: Remediator,
    address: SocketAddr,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = ServeConfig::new(dir.path(), &unreachable_cluster_policy(dir.path()));
        config.extra = vec![
            "--web.max-body-bytes=65536".into(),
            format!("--web.read-timeout={READ_TIMEOUT}"),
        ];
        let remediator = Remediator::start(config);
        let address = remediator.config.address.parse().expect("address");
        Server {
            _dir: dir,
            remediator,
            address,
        }
    }

    fn token(&self) -> String {
        format!("Bearer {}", self.remediator.config.token)
    }

    /// Sends `request` as is and reads the answer until the server closes.
    fn exchange(&self, request: &[u8]) -> Answer {
        exchange(self.address, request)
    }

    /// A request with `Connection: close` and the given extra header lines and body.
    fn request(&self, method: &str, target: &[u8], headers: &[String], body: &[u8]) -> Answer {
        self.exchange(&request_bytes(
            method,
            target,
            "remediator",
            headers,
            Some(body),
        ))
    }

    fn post_json(&self, path: &str, body: &[u8]) -> Answer {
        let headers = [self.auth(), "Content-Type: application/json".into()];
        self.request("POST", path.as_bytes(), &headers, body)
    }

    fn auth(&self) -> String {
        format!("Authorization: {}", self.token())
    }

    /// The service answers its health and metrics endpoints, and the process is alive.
    fn assert_alive(&self, after: &str) {
        for path in ["/-/healthy", "/metrics"] {
            let answer = self.request("GET", path.as_bytes(), &[], b"");
            assert_eq!(
                answer.status,
                Some(200),
                "{path} after {after}: {answer:?}\n{}",
                self.remediator.log_tail()
            );
        }
    }

    fn deliveries(&self) -> i64 {
        JournalReader::open(&self.remediator.config.journal)
            .count("SELECT COUNT(*) FROM deliveries")
    }
}

fn valid_delivery(fingerprint: &str) -> Vec<u8> {
    payload(&AlertSpec {
        cluster: "gp-other",
        status: "firing",
        starts_at: "2026-11-21T16:27:55Z",
        fingerprint,
        extra_labels: vec![],
    })
    .to_string()
    .into_bytes()
}

#[test]
fn wrong_methods_and_unknown_paths() {
    let server = Server::start();
    for (method, path, allowed) in [
        ("GET", "/api/v1/alerts", "POST"),
        ("PUT", "/api/v1/alerts", "POST"),
        ("DELETE", "/metrics", "GET"),
        ("POST", "/-/healthy", "GET"),
        ("GET", "/api/v1/pause", "POST"),
        ("PATCH", "/api/v1/actions/1/approve", "POST"),
    ] {
        let answer = server.request(method, path.as_bytes(), &[server.auth()], b"");
        assert_eq!(answer.status, Some(405), "{method} {path}: {answer:?}");
        let allow = answer.header("allow").unwrap_or_default();
        assert!(allow.contains(allowed), "{method} {path}: Allow {allow:?}");
        server.assert_alive(&format!("{method} {path}"));
    }
    for path in [
        "/nope",
        "/api/v2/alerts",
        "/api/v1/alerts/../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/metrics/extra",
    ] {
        let answer = server.request("GET", path.as_bytes(), &[server.auth()], b"");
        assert_eq!(answer.status, Some(404), "{path}: {answer:?}");
        assert!(answer.error().contains("no endpoint"), "{path}: {answer:?}");
        server.assert_alive(path);
    }
    assert_eq!(server.deliveries(), 0);
}

/// A refusal sent before the body was read ends the connection, and says so: a keep-alive
/// client (Alertmanager's, ureq) must not send its next request into a closed socket. Seen
/// as an intermittent "Unexpected EOF" in `http_guards` before the header was added.
#[test]
fn refusals_before_the_body_say_connection_close() {
    let server = Server::start();
    let mut stream = TcpStream::connect(server.address).expect("connect");
    stream.set_read_timeout(Some(GUARD)).expect("timeout");
    // Headers only; the announced body never comes, so the server cannot drain it.
    stream
        .write_all(
            b"POST /api/v1/alerts HTTP/1.1\r\nHost: r\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n",
        )
        .expect("send");
    let answer = read_answer(&mut stream);
    assert_eq!(answer.status, Some(401), "{answer:?}");
    assert_eq!(answer.header("connection"), Some("close"), "{answer:?}");
    // A request whose body was read keeps its connection.
    let mut stream = TcpStream::connect(server.address).expect("connect");
    stream.set_read_timeout(Some(GUARD)).expect("timeout");
    stream
        .write_all(b"GET /-/healthy HTTP/1.1\r\nHost: r\r\n\r\nGET /-/healthy HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    assert_eq!(text.matches("HTTP/1.1 200").count(), 2, "{text}");
    server.assert_alive("an early refusal");
}

#[test]
fn huge_headers_and_bodies() {
    let server = Server::start();
    // One enormous header, and more headers than hyper keeps: 431 or a closed connection.
    let one_huge = format!("X-Huge: {}", "a".repeat(1024 * 1024));
    let many: Vec<String> = (0..500).map(|i| format!("X-Header-{i}: {i}")).collect();
    for (what, headers) in [("one 1 MiB header", vec![one_huge]), ("500 headers", many)] {
        let answer = server.request("GET", b"/metrics", &headers, b"");
        assert!(
            matches!(answer.status, Some(431) | None),
            "{what}: {:?}",
            answer.status
        );
        server.assert_alive(what);
    }

    // A body over --web.max-body-bytes: 413, whether announced or sent.
    let big = vec![b'x'; 70_000];
    let answer = server.post_json("/api/v1/alerts", &big);
    assert_eq!(answer.status, Some(413), "{answer:?}");
    assert!(answer.error().contains("larger than"), "{answer:?}");
    server.assert_alive("a large webhook body");
    // Announced as 10 GB and streamed: refused once the limit is read.
    let mut raw = format!(
        "POST /api/v1/alerts HTTP/1.1\r\nHost: r\r\n{}\r\nContent-Type: application/json\r\n\
         Content-Length: 10000000000\r\n\r\n",
        server.auth()
    )
    .into_bytes();
    raw.extend(std::iter::repeat_n(b' ', 200_000));
    let answer = server.exchange(&raw);
    assert_eq!(answer.status, Some(413), "{answer:?}");
    server.assert_alive("a 10 GB body");
    // Announced and never sent: the body deadline answers 408.
    let raw = format!(
        "POST /api/v1/alerts HTTP/1.1\r\nHost: r\r\n{}\r\nContent-Type: application/json\r\n\
         Content-Length: 10000000000\r\n\r\n",
        server.auth()
    );
    let answer = server.exchange(raw.as_bytes());
    assert_eq!(answer.status, Some(408), "{answer:?}");
    server.assert_alive("a 10 GB announcement");
    // The webhook's counters say what the clients were told: the timeout is no 413.
    let metrics = server.request("GET", b"/metrics", &[], b"").body;
    for (code, count) in [("413", 2), ("408", 1)] {
        let line =
            format!("greenplum_remediator_webhook_requests_total{{code=\"{code}\"}} {count}");
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    // The operator API has the same limit.
    for path in ["/api/v1/pause", "/api/v1/actions/1/approve"] {
        let answer = server.post_json(path, &big);
        assert_eq!(answer.status, Some(413), "{path}: {answer:?}");
        server.assert_alive(path);
    }
    // Without credentials the body is refused unread, whatever its size.
    let answer = server.request(
        "POST",
        b"/api/v1/alerts",
        &["Content-Type: application/json".into()],
        &big,
    );
    assert_eq!(answer.status, Some(401), "{answer:?}");
    assert_eq!(server.deliveries(), 0);
}

#[test]
fn invalid_utf8_deep_json_and_wrong_content_types() {
    let server = Server::start();
    // Invalid UTF-8 in the request line: hyper refuses it.
    let answer = server.exchange(b"GET /metrics\xff\xfe HTTP/1.1\r\nHost: r\r\n\r\n");
    assert_eq!(answer.status, Some(400), "{answer:?}");
    server.assert_alive("raw invalid UTF-8 in the path");
    // Percent-encoded invalid UTF-8 in a path parameter and in the query.
    let answer = server.request("GET", b"/api/v1/actions/%FF%FE", &[server.auth()], b"");
    assert_eq!(answer.status, Some(400), "{answer:?}");
    let answer = server.request("GET", b"/api/v1/actions?state=%FF", &[server.auth()], b"");
    assert_eq!(answer.status, Some(400), "{answer:?}");
    assert!(answer.error().contains("state"), "{answer:?}");
    server.assert_alive("invalid UTF-8 in the query");
    // Invalid UTF-8 in headers: credentials that are not text are no credentials.
    let mut raw = b"GET /api/v1/actions HTTP/1.1\r\nHost: r\r\nConnection: close\r\n".to_vec();
    raw.extend_from_slice(b"Authorization: Bearer \xff\xfe\r\nX-Other: \xc3\x28\r\n\r\n");
    let answer = server.exchange(&raw);
    assert_eq!(answer.status, Some(401), "{answer:?}");
    server.assert_alive("invalid UTF-8 in headers");
    // Invalid UTF-8 in a JSON body: 400 naming the field.
    let body = b"{\"version\":\"4\",\"status\":\"firing\",\"receiver\":\"\xff\",\"alerts\":[]}";
    let answer = server.post_json("/api/v1/alerts", body);
    assert_eq!(answer.status, Some(400), "{answer:?}");
    assert!(answer.error().contains("receiver"), "{answer:?}");
    server.assert_alive("invalid UTF-8 in the body");

    // Deep JSON: refused without a stack overflow (the process would die).
    let depth = 30_000; // under --web.max-body-bytes
    let nested = format!(
        "{{\"version\":\"4\",\"status\":\"firing\",\"alerts\":[{{\"labels\":{}{}}}]}}",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let answer = server.post_json("/api/v1/alerts", nested.as_bytes());
    assert_eq!(answer.status, Some(400), "{answer:?}");
    server.assert_alive("deep JSON to the webhook");
    let nested = format!("{{\"who\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
    let answer = server.post_json("/api/v1/pause", nested.as_bytes());
    assert_eq!(answer.status, Some(400), "{answer:?}");
    server.assert_alive("deep JSON to the API");

    // Wrong and missing content types: 415 on the webhook and the API.
    let valid = valid_delivery("00000000000000aa");
    let decision = br#"{"who":"t","why":"bad input test"}"#;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/jsonx"),
        Some("\u{e9}"),
        None,
    ] {
        let mut headers = vec![server.auth()];
        headers.extend(content_type.map(|t| format!("Content-Type: {t}")));
        for (path, body) in [
            ("/api/v1/alerts", valid.as_slice()),
            ("/api/v1/pause", decision.as_slice()),
        ] {
            let answer = server.request("POST", path.as_bytes(), &headers, body);
            assert_eq!(
                answer.status,
                Some(415),
                "{path} {content_type:?}: {answer:?}"
            );
            assert!(answer.error().contains("application/json"), "{answer:?}");
        }
        server.assert_alive("a wrong content type");
    }
    // Nothing refused was journalled; the service is not paused.
    assert_eq!(server.deliveries(), 0);
    let metrics = server.request("GET", b"/metrics", &[], b"").body;
    assert!(
        metrics.contains("greenplum_remediator_paused 0"),
        "{metrics}"
    );
}

#[test]
fn slow_clients_are_cut_while_others_are_served() {
    let server = Server::start();
    let address = server.address;
    // 10 connect and say nothing, 20 trickle their headers, 20 trickle a webhook body.
    let body_head = format!(
        "POST /api/v1/alerts HTTP/1.1\r\nHost: r\r\n{}\r\nContent-Type: application/json\r\n\
         Content-Length: 60000\r\n\r\n",
        server.auth()
    );
    let clients = slow_crowd(
        address,
        10,
        (20, b"GET /metrics HTTP/1.1\r\nHost: r\r\n"),
        (20, body_head.as_bytes(), b"{"),
    );
    // Give every slow client time to connect and start trickling, then serve others
    // while all 50 are open.
    thread::sleep(Duration::from_millis(500));
    assert!(
        clients.iter().all(|(_, c)| !c.is_finished()),
        "a slow client ended early"
    );
    server.assert_alive("50 slow clients connected");
    let answer = server.post_json("/api/v1/alerts", &valid_delivery("00000000000000bb"));
    assert_eq!(answer.status, Some(202), "{answer:?}");

    // Each slow client is cut by the server: silent and slow-header ones are closed, slow
    // bodies are answered 408.
    for (kind, outcome) in join_cut(clients) {
        match kind {
            "slow body" => {
                assert_eq!(outcome.answer.status, Some(408), "{kind}: {outcome:?}");
                assert!(
                    outcome.answer.error().contains("not received"),
                    "{outcome:?}"
                );
            }
            _ => assert_eq!(outcome.answer.status, None, "{kind}: {outcome:?}"),
        }
    }
    server.assert_alive("50 slow clients cut");
    // The delivery accepted during the attack is kept; the trickled ones never were.
    assert_eq!(server.deliveries(), 1);
}
