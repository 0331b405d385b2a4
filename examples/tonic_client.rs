//! A tonic gRPC client under a redress policy: `tonic::Status` classified with
//! `classify_status`, and the server's `grpc-retry-pushback-ms` honoured.
//!
//! An in-process gRPC server on 127.0.0.1 (tonic's HTTP/2 server) answers `SayHello` with
//! `UNAVAILABLE` twice, the second time with `grpc-retry-pushback-ms: 50` in the status's
//! trailing metadata (gRPC's way for a server to say when to come back), and then with a
//! reply. The policy's
//! `retry_after_or` strategy sleeps for the pushback when there is one and backs off
//! exponentially otherwise; a `before_sleep` hook prints each sleep.
//!
//! No `protoc` is needed: the two messages are prost structs written by hand, and the
//! client and server are the few lines `tonic-build` would generate for this service:
//!
//! ```proto
//! package example;
//! service Greeter { rpc SayHello (HelloRequest) returns (HelloReply); }
//! message HelloRequest { string name = 1; }
//! message HelloReply { string message = 1; }
//! ```
//!
//! `cargo run -p redress-examples --example tonic_client`
#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::PathAndQuery;
use redress::Retry;
use redress::backoff::{exponential, retry_after_or};
use redress::classify::tonic::classify_status;
use redress_examples::sleep_recorder;
use redress_tokio::RunAsync;
use tonic::body::Body;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

// ----- the messages (what prost-build would generate) --------------------------------------

/// `message HelloRequest { string name = 1; }`
#[derive(Clone, PartialEq, prost::Message)]
struct HelloRequest {
    #[prost(string, tag = "1")]
    name: String,
}

/// `message HelloReply { string message = 1; }`
#[derive(Clone, PartialEq, prost::Message)]
struct HelloReply {
    #[prost(string, tag = "1")]
    message: String,
}

/// The method's path: `/<package>.<service>/<method>`.
const SAY_HELLO: &str = "/example.Greeter/SayHello";

// ----- the client (what tonic-build would generate) ----------------------------------------

#[derive(Clone)]
struct GreeterClient {
    inner: tonic::client::Grpc<Channel>,
}

impl GreeterClient {
    fn new(channel: Channel) -> Self {
        Self {
            inner: tonic::client::Grpc::new(channel),
        }
    }

    async fn say_hello(&mut self, request: HelloRequest) -> Result<Response<HelloReply>, Status> {
        self.inner
            .ready()
            .await
            .map_err(|e| Status::unavailable(format!("service was not ready: {e}")))?;
        let codec = ProstCodec::<HelloRequest, HelloReply>::default();
        let path = PathAndQuery::from_static(SAY_HELLO);
        self.inner.unary(Request::new(request), path, codec).await
    }
}

// ----- the server --------------------------------------------------------------------------

/// The handler: `UNAVAILABLE`, then `UNAVAILABLE` with a 50 ms pushback, then a reply.
async fn say_hello(calls: &AtomicU32, request: HelloRequest) -> Result<HelloReply, Status> {
    match calls.fetch_add(1, Ordering::SeqCst) + 1 {
        1 => Err(Status::unavailable("warming up")),
        2 => {
            let mut status = Status::unavailable("overloaded");
            status
                .metadata_mut()
                .insert("grpc-retry-pushback-ms", MetadataValue::from_static("50"));
            Err(status)
        }
        _ => Ok(HelloReply {
            message: format!("hello, {}", request.name),
        }),
    }
}

/// The service: routes `SayHello` to the handler through tonic's gRPC framing and codec
/// (what tonic-build generates as `GreeterServer`).
#[derive(Clone, Default)]
struct GreeterServer {
    calls: Arc<AtomicU32>,
}

impl tower::Service<http::Request<Body>> for GreeterServer {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let calls = Arc::clone(&self.calls);
        Box::pin(async move {
            if request.uri().path() != SAY_HELLO {
                return Ok(Status::unimplemented(request.uri().path().to_owned()).into_http());
            }
            let handler = tower::service_fn(move |r: Request<HelloRequest>| {
                let calls = Arc::clone(&calls);
                async move { say_hello(&calls, r.into_inner()).await.map(Response::new) }
            });
            let codec = ProstCodec::<HelloReply, HelloRequest>::default();
            Ok(tonic::server::Grpc::new(codec)
                .unary(handler, request)
                .await)
        })
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = GreeterServer::default();
    let calls = Arc::clone(&server.calls);
    tokio::spawn(
        tonic::transport::Server::builder()
            .serve_with_incoming(server, TcpIncoming::from(listener)),
    );

    let policy = Retry::builder()
        .max_attempts(4)
        .deadline(Duration::from_secs(5))
        .attempt_timeout(Duration::from_secs(1))
        // The server's pushback when it sends one, else 20 ms, 40 ms, ... (no jitter on the
        // hint here, so the printout shows it exactly).
        .strategy(
            retry_after_or(exponential(
                Duration::from_millis(20),
                Duration::from_millis(200),
            ))
            .jitter(Duration::ZERO),
        )
        .policy()?;
    let (sleeps, print_and_record) = sleep_recorder();
    let ctx = policy
        .context("say_hello")
        // UNAVAILABLE → Transient (with the pushback as the hint), INVALID_ARGUMENT →
        // Permanent, RESOURCE_EXHAUSTED → RateLimit, ...
        .classify(classify_status)
        .before_sleep(print_and_record);

    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut client = GreeterClient::new(channel);
    let request = HelloRequest {
        name: "redress".into(),
    };
    let reply = ctx
        .run(async |attempt| {
            let result = client.say_hello(request.clone()).await;
            match &result {
                Ok(_) => println!("attempt {}: OK", attempt.n),
                Err(status) => {
                    let pushback = status.metadata().get("grpc-retry-pushback-ms");
                    println!(
                        "attempt {}: {:?} {:?} (pushback {pushback:?})",
                        attempt.n,
                        status.code(),
                        status.message()
                    );
                }
            }
            result
        })
        .await?
        .into_inner();
    let served = calls.load(Ordering::SeqCst);
    println!(
        "reply: {:?}; the server handled {served} calls",
        reply.message
    );

    let sleeps: Vec<Duration> = sleeps
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|&(_, delay)| delay)
        .collect();
    assert_eq!(reply.message, "hello, redress");
    assert_eq!(served, 3);
    // No pushback: the exponential fallback's first step. Then the server's 50 ms.
    assert_eq!(
        sleeps,
        [Duration::from_millis(20), Duration::from_millis(50)]
    );
    Ok(())
}
