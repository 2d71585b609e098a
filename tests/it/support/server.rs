//! Serves an axum router on a free loopback port for as long as a test holds it, and reserves
//! loopback ports where nobody listens.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::sync::oneshot;

#[derive(Clone)]
pub struct Served {
    addr: SocketAddr,
    _stop: Arc<StopOnDrop>,
}

struct StopOnDrop(std::sync::Mutex<Option<oneshot::Sender<()>>>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(tx) = self.0.lock().unwrap().take() {
            let _ = tx.send(());
        }
    }
}

impl Served {
    pub async fn start(app: Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        Self::from_listener(listener, app)
    }

    /// Serves `app` on a listener the caller bound (to know the address beforehand).
    pub fn from_listener(listener: tokio::net::TcpListener, app: Router) -> Self {
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .expect("the fake server runs");
        });
        Self {
            addr,
            _stop: Arc::new(StopOnDrop(std::sync::Mutex::new(Some(tx)))),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A loopback port where nobody listens, reserved for as long as this is held: the port is
/// bound but not listening, so a connection to it is refused at once, and no server can take
/// it in the meantime (as one could a port found free and released). Keep it alive for as
/// long as the port must stay closed.
#[must_use = "the port is closed only while this is held"]
pub struct ClosedPort {
    port: u16,
    _socket: tokio::net::TcpSocket,
}

impl ClosedPort {
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Reserves a loopback port nobody listens on; see [`ClosedPort`].
pub fn closed_port() -> ClosedPort {
    // Without SO_REUSEADDR, no other socket may bind the port while this one holds it.
    let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind a loopback port");
    let port = socket.local_addr().unwrap().port();
    ClosedPort {
        port,
        _socket: socket,
    }
}
