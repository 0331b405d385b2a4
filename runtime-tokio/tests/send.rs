//! Call futures can be spawned on a multi-threaded runtime.
#![allow(clippy::unwrap_used)]
#![forbid(unsafe_code)]

use redress::Policy;
use redress_tokio::{RetryExt, RunAsync};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_futures_are_send() {
    let policy = Policy::default();
    let p = policy.clone();
    let a =
        tokio::spawn(
            async move { redress_tokio::call(&p, async |_| Ok::<_, std::io::Error>(1)).await },
        );
    let p = policy.clone();
    let b = tokio::spawn(async move {
        let ctx = p.context("op");
        ctx.run(async |_| Ok::<_, std::io::Error>(2)).await
    });
    let p = policy.clone();
    let c = tokio::spawn(async move { fetch.retry(&p).await });
    assert_eq!(a.await.unwrap().unwrap(), 1);
    assert_eq!(b.await.unwrap().unwrap(), 2);
    assert_eq!(c.await.unwrap().unwrap(), 1);
}

async fn fetch() -> Result<u32, std::io::Error> {
    Ok(1)
}
