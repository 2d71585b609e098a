//! Serves an axum router on a free loopback port for as long as a test holds it.

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

/// A loopback port nobody listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
