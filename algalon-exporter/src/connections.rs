//! Connections: a hand-written accept loop around the router that adds
//! what a server exposed to a whole cluster needs — a cap on concurrent
//! connections, header size limits, header-read / handshake / request / idle
//! timeouts, TLS chosen per connection from the current web config (so a
//! SIGHUP can change it), and graceful shutdown. What is served on a
//! connection is [`crate::routes`]' concern.
//!
//! # Slow and idle clients cannot lock a scraper out
//!
//! A connection holds one of `--max-connections` slots from accept to close.
//! A slot is *busy* while a request on it is being handled, and *idle*
//! otherwise: during the TLS handshake, while the request head trickles in,
//! and between keep-alive requests. When every slot is taken, a new
//! connection evicts the connection that has been idle the longest and takes
//! its slot at once (the evicted one closes at its next poll; at most
//! `--max-connections` are on their way out at any time). Only when every
//! slot is busy does a new connection get the 503. So a flood of slowloris
//! or parked keep-alive connections only ever displaces itself, while a
//! scraper, which sends its request the moment it connects, is served. Each
//! connection must also finish every request head within
//! `HEADER_READ_TIMEOUT` of starting to wait for it, however slowly the
//! bytes arrive.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::webconfig::WebConfig;

/// Time a client has to send a complete request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a client has to complete a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection with no bytes moving either way for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Largest request head (request line + headers) accepted.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most request headers accepted.
const MAX_HEADERS: usize = 64;
/// Most over-the-cap connections being answered 503 at once.
const REFUSALS_AT_ONCE: usize = 32;
/// How long in-flight requests get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long an evicted connection may take to finish writing a response.
const EVICTION_GRACE: Duration = Duration::from_secs(1);

/// Serves `app` on `listener`, over TLS when the current `web` config says
/// so, until `shutdown` turns true, then lets in-flight requests finish (up
/// to a grace period).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    web: Arc<ArcSwap<WebConfig>>,
    max_connections: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(max_connections));
    let refusals = Arc::new(Semaphore::new(REFUSALS_AT_ONCE));
    let open = Arc::new(Registry::default());
    let mut last_full_warning: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => break,
        };
        let (tcp, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let tls = web.load().tls.clone();
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            // Every slot is taken: the connection idle the longest gives its
            // slot to this one. Evicted connections close at their next
            // poll; at most `max_connections` are on their way out at once.
            Err(_) if open.leaving() < max_connections && open.evict_longest_idle() => {
                slots.add_permits(1);
                match Arc::clone(&slots).try_acquire_owned() {
                    Ok(slot) => slot,
                    Err(_) => continue,
                }
            }
            Err(_) => {
                if last_full_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(
                        "{max_connections} connections busy (--max-connections): refusing {peer}"
                    );
                    last_full_warning = Some(Instant::now());
                }
                refuse(tcp, tls.is_some(), &refusals);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let shutdown = shutdown.clone();
        let held = open.add(slot);
        tokio::spawn(async move {
            connection(tcp, tls, app, shutdown, Arc::clone(&held.tracker)).await;
            drop(held);
        });
    }
    drop(listener);
    // Wait for the connections to drain: every slot back.
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(
        SHUTDOWN_GRACE + Duration::from_secs(1),
        slots.acquire_many(all),
    )
    .await;
    if drained.is_err() {
        tracing::warn!("some connections did not finish within the shutdown grace period");
    }
}

/// The open connections, for eviction when every slot is taken.
#[derive(Debug)]
struct Registry {
    /// Time base for `Tracker::idle_since_ms`.
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Tracker>>>,
    /// Evicted connections not closed yet.
    leaving: AtomicUsize,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            leaving: AtomicUsize::new(0),
        }
    }
}

impl Registry {
    fn now_ms(&self) -> u64 {
        ms_since(self.epoch)
    }

    /// Registers a connection that holds `slot` until the returned value
    /// drops.
    fn add(self: &Arc<Self>, slot: OwnedSemaphorePermit) -> Held {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let tracker = Arc::new(Tracker {
            epoch: self.epoch,
            busy: AtomicU32::new(0),
            idle_since_ms: AtomicU64::new(self.now_ms()),
            gave_way: AtomicBool::new(false),
            served: AtomicBool::new(false),
            evict: Notify::new(),
        });
        self.lock().insert(id, Arc::clone(&tracker));
        Held {
            registry: Arc::clone(self),
            id,
            tracker,
            slot: Some(slot),
        }
    }

    fn leaving(&self) -> usize {
        self.leaving.load(Ordering::Acquire)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Tracker>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Tells the connection that has been idle the longest to close; false
    /// when every connection is busy (or already leaving).
    fn evict_longest_idle(&self) -> bool {
        let open = self.lock();
        let victim = open
            .values()
            .filter(|t| t.busy.load(Ordering::SeqCst) == 0 && !t.gave_way.load(Ordering::SeqCst))
            .min_by_key(|t| t.idle_since_ms.load(Ordering::Acquire));
        match victim {
            Some(t) => {
                t.gave_way.store(true, Ordering::SeqCst);
                self.leaving.fetch_add(1, Ordering::AcqRel);
                t.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

fn ms_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A connection's slot and registry entry. Dropped when the connection
/// closes (or its task unwinds), it leaves the registry and gives the slot
/// back, or, when the connection was evicted, forgets it: the evicting
/// connection holds the permit that replaced it.
#[derive(Debug)]
struct Held {
    registry: Arc<Registry>,
    id: u64,
    tracker: Arc<Tracker>,
    slot: Option<OwnedSemaphorePermit>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
        if self.tracker.gave_way.load(Ordering::SeqCst) {
            self.registry.leaving.fetch_sub(1, Ordering::AcqRel);
            if let Some(slot) = self.slot.take() {
                slot.forget();
            }
        }
    }
}

/// One open connection, as the eviction sees it.
///
/// `busy` and `gave_way` are read and written `SeqCst`: the eviction writes
/// `gave_way` then reads `busy` (through `evicted`), a finishing request
/// writes `busy` then reads `gave_way`, and at least one side must see the
/// other's write, or the evicted connection would miss its wake-up.
#[derive(Debug)]
struct Tracker {
    /// The registry's time base, for `idle_since_ms`.
    epoch: Instant,
    /// Requests being handled right now.
    busy: AtomicU32,
    /// When the connection last became idle (opened, or finished a request).
    idle_since_ms: AtomicU64,
    /// Its slot was given to another connection: not returned at close.
    gave_way: AtomicBool,
    /// A request head has been read on it.
    served: AtomicBool,
    evict: Notify,
}

impl Tracker {
    /// Resolves once this connection is chosen for eviction and is idle.
    async fn evicted(&self) {
        loop {
            self.evict.notified().await;
            if self.busy.load(Ordering::SeqCst) == 0 {
                return;
            }
            // Became busy in between: it finishes its request first (the
            // guard notifies again when it is done).
        }
    }

    /// Marks a request in progress until the guard drops.
    fn begin(self: &Arc<Self>) -> BusyGuard {
        self.busy.fetch_add(1, Ordering::SeqCst);
        self.served.store(true, Ordering::SeqCst);
        BusyGuard(Arc::clone(self))
    }
}

/// A request in progress on a connection.
struct BusyGuard(Arc<Tracker>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0
            .idle_since_ms
            .store(ms_since(self.0.epoch), Ordering::Release);
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
        if self.0.gave_way.load(Ordering::SeqCst) {
            self.0.evict.notify_one();
        }
    }
}

/// Over the connection cap: a plain-HTTP client gets a 503, a TLS one is
/// closed. The 503 is written by a short-lived task (at most
/// `REFUSALS_AT_ONCE` of them, each done within a second) that lingers to
/// read the request, so the client sees the answer instead of a reset.
fn refuse(tcp: TcpStream, tls: bool, refusals: &Arc<Semaphore>) {
    if tls {
        return;
    }
    let Ok(permit) = Arc::clone(refusals).try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let mut tcp = tcp;
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            tcp.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\n\
                  Connection: close\r\n\r\n",
            )
            .await?;
            tcp.shutdown().await?;
            let mut sink = [0u8; 1024];
            while tokio::io::AsyncReadExt::read(&mut tcp, &mut sink).await? > 0 {}
            Ok::<(), std::io::Error>(())
        })
        .await;
        drop(permit);
    });
}

async fn connection(
    tcp: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Router,
    shutdown: watch::Receiver<bool>,
    tracker: Arc<Tracker>,
) {
    let activity = Arc::new(Activity::new());
    match tls {
        None => {
            let io = Watched::new(tcp, Arc::clone(&activity));
            drive(io, app, shutdown, activity, tracker).await;
        }
        Some(config) => {
            // Boxed: the handshake and a TLS stream (rustls' connection
            // state) would otherwise size every connection's task, plain
            // HTTP ones included — 5.3 KiB instead of 2.8 KiB per task.
            Box::pin(handshake_and_drive(
                tcp, config, app, shutdown, activity, tracker,
            ))
            .await;
        }
    }
}

async fn handshake_and_drive(
    mut tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    app: Router,
    shutdown: watch::Receiver<bool>,
    activity: Arc<Activity>,
    tracker: Arc<Tracker>,
) {
    // A TLS connection starts with a handshake record (0x16). Anything
    // else is most likely plain HTTP: say so, as Go's servers do.
    let mut first = [0u8; 1];
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tcp.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] != 0x16 => {
            let _ = tcp
                .write_all(
                    b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\n\
                      Connection: close\r\n\r\n\
                      Client sent an HTTP request to an HTTPS server.\n",
                )
                .await;
            let _ = tcp.shutdown().await;
            return;
        }
        Ok(Ok(1)) => {}
        _ => return,
    }
    // A connection still in its handshake holds no request: eviction
    // closes it at once.
    let accepted = tokio::select! {
        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, TlsAcceptor::from(config).accept(tcp)) => r,
        () = tracker.evicted() => {
            tracing::debug!("closing a connection in its TLS handshake to make room for a new one");
            return;
        }
    };
    match accepted {
        Ok(Ok(stream)) => {
            let io = Watched::new(stream, Arc::clone(&activity));
            drive(io, app, shutdown, activity, tracker).await;
        }
        Ok(Err(e)) => tracing::debug!("TLS handshake failed: {e}"),
        Err(_) => tracing::debug!("TLS handshake timed out"),
    }
}

async fn drive<I>(
    io: I,
    app: Router,
    mut shutdown: watch::Receiver<bool>,
    activity: Arc<Activity>,
    tracker: Arc<Tracker>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS)
        // A client may shut down its write side once its request is sent
        // (`nc -N`, some health checkers): answer it. Without this hyper
        // drops the response when it sees the EOF before the handler
        // finishes, which made such scrapes fail at random.
        .half_close(true)
        .keep_alive(true);
    let service = TowerToHyperService::new(app);
    // Marks the connection busy from the moment a request head is read until
    // its response is ready, so that eviction passes it over.
    let marks = Arc::clone(&tracker);
    let service = hyper::service::service_fn(move |req| {
        let busy = marks.begin();
        let response = hyper::service::Service::call(&service, req);
        async move {
            let response = response.await;
            drop(busy);
            response
        }
    });
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    if *shutdown.borrow() {
        conn.as_mut().graceful_shutdown();
    }
    // Biased: the connection is polled before the eviction is looked at, so
    // a request already waiting in the socket (a scraper that connected
    // during a flood and was picked before its task first ran) is read and
    // marks the connection busy instead of being reset unread.
    tokio::select! {
        biased;
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!("connection ended: {e}");
            }
        }
        () = tracker.evicted() => {
            tracing::debug!("closing an idle connection to make room for a new one");
            // A connection still waiting for its first head (a slowloris)
            // closes at once. One that has served a request may still be
            // writing the response: hyper finishes it, then closes.
            if tracker.served.load(Ordering::SeqCst) {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(EVICTION_GRACE, conn.as_mut()).await;
            }
        }
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn.as_mut()).await;
        }
        _ = activity.idle_for(IDLE_TIMEOUT) => {
            tracing::debug!("closing a connection idle for {} s", IDLE_TIMEOUT.as_secs());
        }
    }
}

/// When bytes last moved on a connection, in ms since it opened.
#[derive(Debug)]
struct Activity {
    opened: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Resolves once no byte has moved for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let last = self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// An I/O stream that records activity for the idle timeout.
struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Watched<T> {
    fn new(inner: T, activity: Arc<Activity>) -> Self {
        Watched { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
