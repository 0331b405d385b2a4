//! The layer wrapping a real `reqwest::Client`, against a local HTTP/1.1 server that
//! answers from a script. Backoff is zero, so no timer runs and tokio's clock is not
//! paused (the test does real socket I/O); nothing here measures time.
#![cfg(feature = "reqwest")]
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redress::backoff::constant;
use redress::classify::class_for_status;
use redress::{ErrorClass, Retry};
use redress_tower::RetryLayer;
use redress_tower::http::IDEMPOTENCY_KEY;
use reqwest::{Body, Client, Method, Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tower::{Layer, Service, ServiceExt};

/// Serves request n (from 0) with `statuses[n]` (the last one from then on), one request
/// per connection; returns the base URL and the request counter.
async fn serve(statuses: &'static [u16]) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let served = Arc::clone(&count);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let n = served.fetch_add(1, Ordering::SeqCst);
            let status = statuses[n.min(statuses.len() - 1)];
            tokio::spawn(async move {
                read_request(&mut socket).await;
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi"
                );
                let _ = socket.write_all(reply.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (url, count)
}

/// Reads one request: the head, then `content-length` bytes of body.
async fn read_request(socket: &mut tokio::net::TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = socket.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return;
            }
        }
    }
}

fn by_status(r: &Response) -> Option<ErrorClass> {
    class_for_status(r.status().as_u16())
}

fn client() -> impl Service<Request, Response = Response, Error = redress_tower::Error> {
    let policy = Retry::builder()
        .max_attempts(3)
        .no_deadline()
        .strategy(constant(Duration::ZERO))
        .policy()
        .unwrap();
    RetryLayer::http(policy)
        .classify_response(by_status)
        .layer(Client::new())
}

fn request(method: Method, url: &str, body: Option<Body>, key: bool) -> Request {
    let mut r = Request::new(method, url.parse().unwrap());
    *r.body_mut() = body;
    if key {
        r.headers_mut()
            .insert(IDEMPOTENCY_KEY, "order-42".parse().unwrap());
    }
    r
}

#[tokio::test]
async fn a_reqwest_client_is_retried_by_the_layer() {
    // (method, body is a stream, idempotency key, script, requests served, final status)
    type Row = (Method, bool, bool, &'static [u16], usize, u16);
    let table: [Row; 6] = [
        (Method::GET, false, false, &[503, 503, 200], 3, 200),
        (Method::GET, false, false, &[503], 3, 503),
        (Method::GET, false, false, &[404, 200], 1, 404),
        (Method::POST, false, false, &[503, 200], 1, 503),
        (Method::POST, false, true, &[503, 200], 2, 200),
        (Method::PUT, true, false, &[503, 200], 1, 503),
    ];
    for (method, stream, key, script, served, status) in table {
        let (url, count) = serve(script).await;
        let body = if stream {
            Body::wrap(String::from("{\"amount\":1}"))
        } else {
            Body::from("{\"amount\":1}")
        };
        let mut svc = client();
        let req = request(method.clone(), &url, Some(body), key);
        let r = svc.ready().await.unwrap().call(req).await.unwrap();
        assert_eq!(
            r.status().as_u16(),
            status,
            "{method} stream={stream} key={key}"
        );
        assert_eq!(r.text().await.unwrap(), "hi");
        assert_eq!(
            count.load(Ordering::SeqCst),
            served,
            "{method} stream={stream} key={key}"
        );
    }
}

#[tokio::test]
async fn a_refused_connection_is_transient_and_retried() {
    // Bind, then close: the port refuses connections.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    drop(listener);
    let mut svc = client();
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(request(Method::GET, &url, None, false))
        .await
        .unwrap_err();
    assert_eq!(err.attempts(), 3);
    let inner = err.error().unwrap().inner();
    assert!(inner.downcast_ref::<reqwest::Error>().unwrap().is_connect());
    assert_eq!(err.last_class(), Some(ErrorClass::Transient));
}
