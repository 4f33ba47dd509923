//! SIGTERM to a `runner serve` process with a request in flight.

use std::time::{Duration, Instant};

use super::raw_get;
use crate::support::{Pg, Proc, connect};

/// SIGTERM while a request is in flight: the request is answered, the process exits cleanly,
/// and the port takes no new connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish() {
    let pg = Pg::start().await;
    let c = connect(&pg.url).await;
    c.execute(
        "SELECT runner.deploy('slow', $1)",
        &[&r#"export default { async fetch() {
            await new Promise((r) => setTimeout(r, 800));
            return new Response('finished');
        } };"#],
    )
    .await
    .expect("deploy slow");
    let mut p = Proc::spawn(
        "sigterm-http",
        &["serve", "--id", "sigterm-http"],
        &[
            ("RUNNER_DATABASE_URL", pg.url.as_str()),
            ("RUNNER_LISTEN", "127.0.0.1:0"),
            ("RUNNER_WORKERS_DOMAIN", "workers.test"),
            ("RUNNER_GRACE_SECS", "5"),
        ],
    );
    let addr = p.listen_addr(Duration::from_secs(10));
    let first = raw_get(&addr, "slow.workers.test").expect("first request");
    assert!(first.contains("finished"), "{first}");
    let in_flight = {
        let addr = addr.clone();
        std::thread::spawn(move || raw_get(&addr, "slow.workers.test"))
    };
    tokio::time::sleep(Duration::from_millis(250)).await;
    let t = Instant::now();
    let status = p.terminate(Duration::from_secs(10));
    let answer = in_flight
        .join()
        .expect("request thread")
        .expect("the in-flight request is answered");
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("finished"),
        "{answer}"
    );
    assert!(status.success(), "exit status {status:?}");
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "no new connections after shutdown"
    );
    println!(
        "shutdown: SIGTERM during an 800 ms request; it was answered and the runner exited cleanly after {:?}",
        t.elapsed()
    );
}
