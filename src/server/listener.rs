//! The HTTP listener: hyper's HTTP/1 server with the limits an endpoint open to the internet
//! needs, so that no unauthenticated client can hold the server's resources for long:
//!
//! - at most `server.max_connections` connections at once, and `server.max_connections_per_peer`
//!   from one address; one more is answered 503 and closed without being read;
//! - `server.max_connection_age` for a connection, after which it is closed once its request
//!   in flight is answered (a keep-alive client cannot keep a slot for ever);
//! - `server.header_read_timeout` to send a request's headers, which also closes a keep-alive
//!   connection left idle that long (hyper starts the timer when it waits for a request);
//! - headers of at most [`MAX_HEADER_BYTES`] (431 beyond);
//! - `server.request_timeout` for a whole request, body included (the router's layer).
//!
//! On a stop signal it stops accepting, lets requests in flight finish, and closes idle
//! connections.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use super::metrics::Metrics;

/// The most a request's line and headers may take. A GitLab delivery's are under 2 KiB; an
/// ID token in `Authorization` is a few KiB.
pub const MAX_HEADER_BYTES: usize = 64 << 10;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_peer: usize,
    pub max_connection_age: Duration,
    /// How long a stop waits for requests in flight.
    pub drain: Duration,
}

/// Connections open per peer address; a [`PeerSlot`] gives its slot back when dropped.
#[derive(Clone, Default)]
struct Peers(Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>);

struct PeerSlot {
    peers: Peers,
    ip: std::net::IpAddr,
}

impl Peers {
    fn take(&self, ip: std::net::IpAddr, max: usize) -> Option<PeerSlot> {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            peers: self.clone(),
            ip,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self.peers.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// The answer to a connection beyond the limit, written before the socket is closed.
const TOO_MANY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain; charset=utf-8\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 27\r\n\
\r\n\
too many open connections\r\n";

/// Serves `app` on `listener` until `stop` resolves.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    metrics: Arc<Metrics>,
    stop: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let peers = Peers::default();
    let (closing_tx, closing) = watch::channel(false);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // wait a little rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        while connections.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics.connections_refused.inc();
            tokio::spawn(refuse(stream));
            continue;
        };
        let Some(slot) = peers.take(peer.ip(), limits.max_connections_per_peer.max(1)) else {
            metrics.connections_refused.inc();
            drop(permit);
            tokio::spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let mut closing = closing.clone();
        let max_age = limits.max_connection_age;
        connections.spawn(async move {
            let _permit = permit;
            let _slot = slot;
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = closing.changed() => {}
                // Old enough: closed once the request in flight is answered.
                _ = tokio::time::sleep(max_age) => {}
            }
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    let drained = tokio::time::timeout(limits.drain, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("connections still open at the deadline; closing them");
        connections.abort_all();
    }
}

/// Answers 503 and closes. What the client sent is read and dropped for a moment first (up
/// to 64 KiB, a second): closing a socket with unread data resets it, and the client would
/// see a reset instead of the answer.
async fn refuse(mut stream: TcpStream) {
    use tokio::io::AsyncReadExt;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(TOO_MANY).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut left = 64 << 10;
        while left > 0 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => left -= n.min(left),
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_refusal_states_its_length() {
        let text = std::str::from_utf8(super::TOO_MANY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
    }
}
