//! A TCP proxy that injects chain-endpoint faults, for tests and the marketplace soak: put it between nodes and
//! their JSON-RPC endpoint (HTTP or WebSocket) and it can cut every connection and refuse new ones for a while,
//! drop the connection that carries the next transaction before it arrives (a lost send) or right after it was
//! forwarded (the transaction went through, its answer is lost; optionally cutting the endpoint at that moment),
//! and delay every answer.
//!
//! It runs on its own thread with its own runtime, so it serves whether or not the caller drives a runtime.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What a transaction send looks like on the wire (HTTP body or WebSocket text frame).
const SEND: &[u8] = b"eth_sendRawTransaction";

#[derive(Default)]
struct Faults {
    closed: AtomicBool,
    refused: AtomicUsize,
    lose_send: AtomicBool,
    lose_answer: AtomicBool,
    /// When set, only a send whose bytes contain this loses its answer (see `lose_next_answer_containing`).
    answer_pattern: std::sync::Mutex<Option<Vec<u8>>>,
    lost_answers: AtomicUsize,
    /// Cut the endpoint as soon as the next answer was lost (see `lose_next_answer_containing_then_cut`).
    cut_after_lost: AtomicBool,
    delay_ms: AtomicU64,
    connections: AtomicUsize,
}

impl Faults {
    /// Whether the answer to the send in `chunk` is to be lost (once).
    fn take_answer(&self, chunk: &[u8]) -> bool {
        let mut pattern = self.answer_pattern.lock().unwrap_or_else(|p| p.into_inner());
        let matches = pattern.as_ref().is_none_or(|p| chunk.windows(p.len().max(1)).any(|w| w == p.as_slice()));
        if matches && self.lose_answer.swap(false, Ordering::SeqCst) {
            *pattern = None;
            return true;
        }
        false
    }
}

/// The proxy (stops when dropped).
pub struct FaultProxy {
    addr: SocketAddr,
    faults: Arc<Faults>,
    /// Bumped on every cut; each forwarding task ends when it changes.
    cuts: Arc<watch::Sender<u64>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl FaultProxy {
    /// A proxy on a free loopback port forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let faults = Arc::new(Faults::default());
        let cuts = Arc::new(watch::channel(0u64).0);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (task_faults, task_cuts) = (faults.clone(), cuts.clone());
        std::thread::Builder::new().name("fault-proxy".into()).spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            runtime.block_on(async move {
                let Ok(listener) = TcpListener::from_std(listener) else { return };
                let serve = async {
                    while let Ok((inbound, _)) = listener.accept().await {
                        if task_faults.closed.load(Ordering::SeqCst) {
                            task_faults.refused.fetch_add(1, Ordering::SeqCst);
                            drop(inbound);
                            continue;
                        }
                        task_faults.connections.fetch_add(1, Ordering::SeqCst);
                        tokio::spawn(forward(inbound, upstream, task_cuts.clone(), task_faults.clone()));
                    }
                };
                tokio::select! {
                    () = serve => {}
                    _ = stopped => {}
                }
            });
        })?;
        Ok(Self { addr, faults, cuts, _stop: stop })
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://addr` or `ws://addr`, as `upstream_url`'s scheme.
    pub fn url_like(&self, upstream_url: &str) -> String {
        let scheme = upstream_url.split("://").next().unwrap_or("http");
        format!("{scheme}://{}", self.addr)
    }

    /// Closes every open connection and refuses new ones until [`FaultProxy::reopen`].
    pub fn cut(&self) {
        self.faults.closed.store(true, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    pub fn reopen(&self) {
        self.faults.closed.store(false, Ordering::SeqCst);
    }

    /// Connections refused while cut.
    pub fn refused(&self) -> usize {
        self.faults.refused.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.faults.connections.load(Ordering::SeqCst)
    }

    /// The next transaction sent is dropped before it reaches the endpoint (its connection closes).
    pub fn lose_next_send(&self) {
        self.faults.lose_send.store(true, Ordering::SeqCst);
    }

    /// Whether the send armed by [`FaultProxy::lose_next_send`] was lost.
    pub fn lost_a_send(&self) -> bool {
        !self.faults.lose_send.load(Ordering::SeqCst)
    }

    /// The next transaction sent reaches the endpoint, but its connection closes before the answer comes back.
    pub fn lose_next_answer(&self) {
        self.faults.lose_answer.store(true, Ordering::SeqCst);
    }

    /// Like [`FaultProxy::lose_next_answer`], for the next send whose bytes contain `pattern` (for example the hex
    /// of a function selector: the raw transaction travels as hex).
    pub fn lose_next_answer_containing(&self, pattern: &[u8]) {
        *self.faults.answer_pattern.lock().unwrap_or_else(|p| p.into_inner()) = Some(pattern.to_vec());
        self.faults.lose_answer.store(true, Ordering::SeqCst);
    }

    /// Like [`FaultProxy::lose_next_answer_containing`], and the endpoint is cut (as by [`FaultProxy::cut`]) the
    /// moment the answer is lost: the caller cannot learn what became of its transaction until
    /// [`FaultProxy::reopen`] (a node killed between a send and its answer).
    pub fn lose_next_answer_containing_then_cut(&self, pattern: &[u8]) {
        self.faults.cut_after_lost.store(true, Ordering::SeqCst);
        self.lose_next_answer_containing(pattern);
    }

    /// Answers lost so far (see [`FaultProxy::lose_next_answer`]).
    pub fn lost_answers(&self) -> usize {
        self.faults.lost_answers.load(Ordering::SeqCst)
    }

    /// Every answer waits `delay` before it is passed on.
    pub fn delay_answers(&self, delay: Duration) {
        self.faults.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }
}

/// Forwards one connection until either side closes, the proxy cuts, or a send or its answer is to be lost.
async fn forward(inbound: TcpStream, upstream: SocketAddr, cuts: Arc<watch::Sender<u64>>, faults: Arc<Faults>) {
    let mut cut = cuts.subscribe();
    let Ok(outbound) = TcpStream::connect(upstream).await else { return };
    let (mut in_read, mut in_write) = inbound.into_split();
    let (mut out_read, mut out_write) = outbound.into_split();
    // Set while a send whose answer is to be lost is under way: nothing more goes back to the caller.
    let muted = Arc::new(AtomicBool::new(false));
    let (up_faults, up_muted) = (faults.clone(), muted.clone());
    let upstream = async move {
        let mut buf = vec![0; 1 << 16];
        loop {
            let n = in_read.read(&mut buf).await.unwrap_or(0);
            let chunk = buf.get(..n).unwrap_or_default();
            let is_send = chunk.windows(SEND.len()).any(|w| w == SEND);
            if n == 0 || (is_send && up_faults.lose_send.swap(false, Ordering::SeqCst)) {
                return;
            }
            let lose_answer = is_send && up_faults.take_answer(chunk);
            if lose_answer {
                up_muted.store(true, Ordering::SeqCst);
            }
            if out_write.write_all(chunk).await.is_err() {
                return;
            }
            if lose_answer {
                // Give the endpoint time to take the transaction, then cut the caller off before the answer.
                tokio::time::sleep(Duration::from_millis(300)).await;
                if up_faults.cut_after_lost.swap(false, Ordering::SeqCst) {
                    up_faults.closed.store(true, Ordering::SeqCst);
                    cuts.send_modify(|n| *n += 1);
                }
                up_faults.lost_answers.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
    };
    let downstream = async move {
        let mut buf = vec![0; 1 << 16];
        loop {
            let n = out_read.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            let delay = faults.delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            if muted.load(Ordering::SeqCst) {
                continue;
            }
            if in_write.write_all(buf.get(..n).unwrap_or_default()).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
        _ = cut.changed() => {}
    }
}
