//! An async call on tokio with a per-attempt timeout and a `&mut` borrow across attempts.
//!
//! `cargo run -p redress-examples --example tokio`
#![forbid(unsafe_code)]

use std::time::Duration;

use redress::Retry;
use redress::backoff::equal_jitter;

struct Client {
    calls: u32,
}

impl Client {
    async fn fetch(&mut self) -> Result<String, std::io::Error> {
        self.calls += 1;
        if self.calls == 1 {
            // The first attempt hangs: the per-attempt timeout cuts it off.
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        if self.calls == 2 {
            return Err(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        }
        Ok(format!("payload after {} calls", self.calls))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let policy = Retry::builder()
        .max_attempts(5)
        .attempt_timeout(Duration::from_millis(50))
        .strategy(equal_jitter(
            Duration::from_millis(10),
            Duration::from_millis(100),
        ))
        .policy()?;
    let mut client = Client { calls: 0 };
    let (result, report) =
        redress_tokio::call_with_report(&policy, async |_attempt| client.fetch().await).await;
    println!("{}", result?);
    println!(
        "attempts: {}, timeline: {:?}",
        report.attempts, report.timeline
    );
    Ok(())
}
