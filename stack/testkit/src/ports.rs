//! Loopback ports: one free right now (for a server a test starts), and the one Docker
//! published for a container (started with `-p 127.0.0.1::PORT`).

use std::process::Command;

/// A loopback port free right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The loopback port Docker published for `container`'s `port` (such as `5432/tcp`).
pub fn published_port(container: &str, port: &str) -> u16 {
    let out = Command::new("docker")
        .args(["port", container, port])
        .output()
        .expect("docker port");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.rsplit_once(':').and_then(|(_, p)| p.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no published port {port} for {container}: {text:?}"))
}
