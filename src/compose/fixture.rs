//! Test fixture shared by the Compose tests and the group policy's: a small file that uses every
//! part of the subset, and a helper to build a variable map.

use std::collections::BTreeMap;

pub fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub const SMALL: &str = r#"
name: demo
services:
  db:
    image: debian:trixie-slim
    command: sleep infinity
    environment:
      PASSWORD: ${PW:?set PW}
      PORT: 5432
    volumes: ["data:/data", "./conf:/conf:ro"]
    ports: ["127.0.0.1:5432:5432", "127.0.0.1::8787"]
    healthcheck:
      test: ["CMD-SHELL", "true"]
      interval: 1m30s
      start_period: 500ms
    deploy: {replicas: 2}
    stop_grace_period: 10s
    configs:
      - source: c
        target: /etc/c
        mode: 0400
    networks:
      net:
        aliases: [pooler]
    labels:
      dev.stackctl.group: core
  job:
    image: debian:trixie-slim
    command: ["true"]
    restart: "no"
    environment: ["A=1", "B"]
    depends_on:
      db: {condition: service_healthy}
networks:
  net: {}
volumes:
  data:
configs:
  c:
    file: ./c.txt
"#;
