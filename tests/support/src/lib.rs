//! Raw-TCP HTTP helpers for the bad-input suites of `greenplum-exporter` and
//! `greenplum-remediator`.
//!
//! Both suites speak to their real binary over a bare socket so that no client library
//! tidies a hostile request up (invalid UTF-8, 1 MiB headers, 10 GB announcements, slow
//! clients). Reading and parsing such answers is the same work on both sides; it lives here
//! once so a fix to it (a reset after the answer, a chunked body) reaches both. Dev-only:
//! panics on a broken connection, which is what a test wants.
//!
//! Also the one proptest configuration of the property tests (the fuzz targets).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Upper bound of one exchange or of a slow client being cut: a guard against hanging,
/// never a speed assertion.
pub const GUARD: Duration = Duration::from_secs(60);

/// What the server sent back, read until it closed.
#[derive(Debug)]
pub struct Answer {
    /// `None` when the server closed without answering.
    pub status: Option<u16>,
    pub head: String,
    /// The body, de-chunked when the answer was `Transfer-Encoding: chunked`.
    pub body: String,
}

impl Answer {
    /// The value of header `name` (case-insensitive), if the answer has it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then_some(value.trim())
        })
    }

    /// The JSON `error` field of the body, or `""` when there is none.
    pub fn error(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

/// The bytes of `METHOD target HTTP/1.1` with `Host: host`, `Connection: close`, the given
/// extra header lines and, when `body` is given, its `Content-Length` and the body itself.
pub fn request_bytes(
    method: &str,
    target: &[u8],
    host: &str,
    headers: &[String],
    body: Option<&[u8]>,
) -> Vec<u8> {
    let mut raw = Vec::new();
    raw.extend_from_slice(method.as_bytes());
    raw.push(b' ');
    raw.extend_from_slice(target);
    raw.extend_from_slice(format!(" HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n").as_bytes());
    for header in headers {
        raw.extend_from_slice(header.as_bytes());
        raw.extend_from_slice(b"\r\n");
    }
    if let Some(body) = body {
        raw.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    raw.extend_from_slice(body.unwrap_or_default());
    raw
}

/// Sends `request` as is on a new connection and reads the answer until the server closes.
pub fn exchange(address: SocketAddr, request: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(GUARD)).expect("read timeout");
    // The server may answer (431, 413) and close before it read everything: a failed write
    // is expected then, the answer is what counts.
    let _ = stream.write_all(request);
    read_answer(&mut stream)
}

/// Reads from `stream` until the server closes it, and parses what came.
pub fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            // A reset after the answer arrived (the server closed with unread input).
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("reading the answer: {e}"),
        }
    }
    parse_answer(&bytes)
}

/// Splits raw answer bytes into status, head and (de-chunked) body.
pub fn parse_answer(bytes: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Answer {
        status,
        head: head.to_string(),
        body: if chunked {
            dechunk(body)
        } else {
            body.to_string()
        },
    }
}

/// The payload of a chunked body; stops at the last chunk or at a truncated one.
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || size > tail.len() {
            break;
        }
        out.push_str(&tail[..size]);
        rest = tail[size..].trim_start_matches("\r\n");
    }
    out
}

/// What a slow client did and saw.
#[derive(Debug)]
pub struct SlowOutcome {
    /// The answer the server sent before closing, if any.
    pub answer: Answer,
    /// The server closed the connection (EOF, reset or a failed write).
    pub closed: bool,
}

/// Opens a connection, sends `head`, then trickles `trickle` one byte every 200 ms until
/// the server closes the connection (or [`GUARD`] passes). Reads in between, so an answer
/// sent before the close is seen even if the close is a reset.
pub fn slow_client(address: SocketAddr, head: Vec<u8>, trickle: Vec<u8>) -> SlowOutcome {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut received = Vec::new();
    let mut closed = stream.write_all(&head).is_err();
    let mut pending = trickle.into_iter().cycle();
    let deadline = Instant::now() + GUARD;
    let mut chunk = [0u8; 4096];
    while !closed && Instant::now() < deadline {
        match stream.read(&mut chunk) {
            Ok(0) => closed = true,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => closed = true,
        }
        if !closed {
            if let Some(byte) = pending.next() {
                closed = stream.write_all(&[byte]).is_err();
            }
        }
    }
    SlowOutcome {
        answer: parse_answer(&received),
        closed,
    }
}

/// Running slow clients, each with its kind (`silent`, `slow headers`, `slow body`).
pub type SlowClients = Vec<(&'static str, JoinHandle<SlowOutcome>)>;

/// A slowloris crowd against `address`: `silent` clients connect and say nothing,
/// `slow_headers` send `header_head` and then trickle a header line, `slow_bodies` send
/// `body_head` (headers announcing a body) and then trickle `body_trickle`.
pub fn slow_crowd(
    address: SocketAddr,
    silent: usize,
    (slow_headers, header_head): (usize, &[u8]),
    (slow_bodies, body_head, body_trickle): (usize, &[u8], &[u8]),
) -> SlowClients {
    let mut clients: SlowClients = Vec::new();
    let mut spawn = |kind, head: &[u8], trickle: &[u8]| {
        let (head, trickle) = (head.to_vec(), trickle.to_vec());
        clients.push((
            kind,
            thread::spawn(move || slow_client(address, head, trickle)),
        ));
    };
    for _ in 0..silent {
        spawn("silent", b"", b"");
    }
    for _ in 0..slow_headers {
        spawn("slow headers", header_head, b"X-Slow: aaaaaaaa\r\n");
    }
    for _ in 0..slow_bodies {
        spawn("slow body", body_head, body_trickle);
    }
    clients
}

/// Waits for every slow client and checks the server closed each one.
pub fn join_cut(clients: SlowClients) -> Vec<(&'static str, SlowOutcome)> {
    clients
        .into_iter()
        .map(|(kind, client)| {
            let outcome = client.join().expect("slow client thread");
            assert!(
                outcome.closed,
                "{kind}: never closed by the server: {outcome:?}"
            );
            (kind, outcome)
        })
        .collect()
}

/// Settings for a property test: `PROPTEST_CASES` cases when set, else `default`; a failing
/// case is saved next to the test file (`tests/props.proptest-regressions`) and replayed first
/// on every later run, so a found crash stays a regression test.
pub fn proptest_config(default: u32) -> proptest::test_runner::Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    proptest::test_runner::Config {
        cases,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..proptest::test_runner::Config::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_chunked_answer_and_its_headers() {
        let answer = parse_answer(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nAllow: GET\r\n\r\n\
              5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        );
        assert_eq!(answer.status, Some(200));
        assert_eq!(answer.header("allow"), Some("GET"));
        assert_eq!(answer.body, "hello world");
    }

    #[test]
    fn no_answer_has_no_status() {
        let answer = parse_answer(b"");
        assert_eq!(answer.status, None);
        assert_eq!(answer.error(), "");
    }

    #[test]
    fn request_bytes_announce_the_body() {
        let raw = request_bytes("POST", b"/x", "h", &["A: b".into()], Some(b"{}"));
        assert_eq!(
            raw,
            b"POST /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\nA: b\r\nContent-Length: 2\r\n\r\n{}"
        );
        let raw = request_bytes("GET", b"/", "h", &[], None);
        assert_eq!(
            raw,
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        );
    }
}
