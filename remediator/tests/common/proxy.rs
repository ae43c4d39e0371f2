//! A TCP proxy between the remediator and the coordinator that a test can cut, to play a
//! network partition. std only: a thread per direction of each connection.
//!
//! Every cut starts a new generation: connections of an older generation never forward
//! again (a partition kills the sessions that crossed it). While the cut is `Blackhole` they
//! are held open and silent, like packets dropped on the floor; otherwise they are closed.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// How often idle threads look at the mode again.
const TICK: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Forward,
    /// Connections are accepted and closed at once, before a byte is read.
    Refuse,
    /// Connections are accepted and never answered; established ones go silent.
    Blackhole,
}

struct Shared {
    upstream: SocketAddr,
    /// (mode, generation)
    state: Mutex<(Mode, u64)>,
    /// Connection attempts turned away (`Refuse`) or swallowed (`Blackhole`).
    cut_attempts: AtomicU64,
    stop: AtomicBool,
}

impl Shared {
    fn state(&self) -> (Mode, u64) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct Proxy {
    pub port: u16,
    shared: Arc<Shared>,
}

impl Proxy {
    pub fn start(upstream_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared {
            upstream: SocketAddr::from(([127, 0, 0, 1], upstream_port)),
            state: Mutex::new((Mode::Forward, 0)),
            cut_attempts: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let accept = shared.clone();
        thread::spawn(move || accept_loop(&listener, &accept));
        Proxy { port, shared }
    }

    /// Changes the mode; a cut (anything but `Forward`) also ends every existing session.
    pub fn set(&self, mode: Mode) {
        let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        state.1 += 1;
        state.0 = mode;
    }

    /// Connection attempts turned away or swallowed since the proxy started.
    pub fn cut_attempts(&self) -> u64 {
        self.shared.cut_attempts.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    let mut swallowed: Vec<(TcpStream, u64)> = Vec::new();
    while !shared.stop.load(Ordering::SeqCst) {
        let (mode, generation) = shared.state();
        // Swallowed connections live as long as their blackhole.
        swallowed.retain(|(stream, g)| {
            let keep = mode == Mode::Blackhole && *g == generation;
            if !keep {
                let _ = stream.shutdown(Shutdown::Both);
            }
            keep
        });
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                thread::sleep(TICK);
                continue;
            }
            Err(_) => continue,
        };
        let _ = client.set_nonblocking(false);
        match mode {
            Mode::Refuse => {
                shared.cut_attempts.fetch_add(1, Ordering::SeqCst);
                let _ = client.shutdown(Shutdown::Both);
            }
            Mode::Blackhole => {
                shared.cut_attempts.fetch_add(1, Ordering::SeqCst);
                swallowed.push((client, generation));
            }
            Mode::Forward => match TcpStream::connect(shared.upstream) {
                Ok(upstream) => forward(client, upstream, generation, shared),
                Err(_) => {
                    let _ = client.shutdown(Shutdown::Both);
                }
            },
        }
    }
}

fn forward(client: TcpStream, upstream: TcpStream, generation: u64, shared: &Arc<Shared>) {
    let pairs = [
        (client.try_clone(), upstream.try_clone()),
        (upstream.try_clone(), client.try_clone()),
    ];
    for pair in pairs {
        let (Ok(from), Ok(to)) = pair else {
            let _ = client.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
            return;
        };
        let shared = shared.clone();
        thread::spawn(move || pump(from, to, generation, &shared));
    }
}

/// Copies one direction while the connection's generation is current.
fn pump(mut from: TcpStream, mut to: TcpStream, generation: u64, shared: &Shared) {
    let _ = from.set_read_timeout(Some(TICK));
    let mut buffer = [0u8; 16 * 1024];
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let (mode, current) = shared.state();
        if current != generation {
            if mode == Mode::Blackhole && current == generation + 1 {
                // Silent, not closed: the client finds out only through its own timeouts.
                thread::sleep(TICK);
                continue;
            }
            break;
        }
        match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
