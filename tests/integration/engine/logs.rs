//! `logs --follow`: every replica's lines, prefixed with its name, keep streaming.

use std::time::{Duration, Instant};

use super::Proj;

#[test]
fn logs_follow_prefixes_each_replica_and_keeps_streaming() {
    use std::io::{BufRead, BufReader};
    let p = Proj::new("logs");
    p.compose(
        r#"name: NAME
services:
  talker:
    image: debian:trixie-slim
    command: ["sh", "-c", "i=0; while true; i=$$((i+1)); do echo tick $$i; sleep 0.2; done"]
    stop_grace_period: 1s
    deploy: {replicas: 2}
"#,
    );
    p.up(&[]).run().success();
    let mut child =
        p.s.cmd(["logs", "--follow", "--tail", "0", "talker"])
            .cmd
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut one, mut two) = (false, false);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(one && two) && Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        assert!(line.contains(" | tick "), "{line}");
        one |= line.starts_with("talker-1 | ");
        two |= line.starts_with("talker-2 | ");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        one && two,
        "new lines of both replicas arrive while following"
    );
}
