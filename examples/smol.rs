//! The same policy driven by smol and by async-std's executor.
//!
//! `cargo run -p redress-examples --example smol`
#![forbid(unsafe_code)]

use std::time::Duration;

use redress::backoff::constant;
use redress::{ErrorClass, Retry};
use redress_smol::RunAsync;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let policy = Retry::builder()
        .max_attempts(3)
        .strategy(constant(Duration::from_millis(5)))
        .policy()?;
    // A response-like value that is not an error: 503 is retried by the result classifier.
    let ctx = policy
        .context("status")
        .classify_result(|status: &u16| (*status == 503).then_some(ErrorClass::ServerError));

    let mut statuses = [503u16, 503, 200].into_iter();
    let on_smol =
        smol::block_on(ctx.run(async |_| Ok::<_, std::io::Error>(statuses.next().unwrap_or(200))));
    println!("smol: {:?}", on_smol.map_err(|e| e.to_string()));

    let on_async_std = async_std::task::block_on(ctx.run(async |_| Ok::<_, std::io::Error>(503)));
    match on_async_std {
        Ok(s) => println!("async-std: {s}"),
        Err(e) => println!("async-std: {e} (last status {:?})", e.value()),
    }
    Ok(())
}
