//! Workers served: through the HTTP app with limits and hot redeploys (`serve`), by a real
//! `runner` process stopped with SIGTERM (`shutdown`), and with `env.DB` failing or cut off
//! mid-query (`env_db`). The JavaScript the serving test deploys is in `scripts`; this module
//! holds the raw HTTP helpers the process tests share.

mod env_db;
mod scripts;
mod serve;
mod shutdown;

use std::time::Duration;

/// One HTTP/1.1 request over a fresh connection (closed after the answer); the raw response.
pub(crate) fn raw_get(addr: &str, host: &str) -> std::io::Result<String> {
    raw_get_with(addr, host, "")
}

/// [`raw_get`] with extra header lines (each ending in `\r\n`).
fn raw_get_with(addr: &str, host: &str, headers: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr)?;
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        c,
        "GET / HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    c.read_to_string(&mut out)?;
    Ok(out)
}
