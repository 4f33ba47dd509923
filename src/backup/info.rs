//! pgBackRest's `info --output=json`, typed (serde), and the pure questions asked of it: the
//! backup sets, the newest one, and the window a point-in-time restore can reach.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One stanza of `pgbackrest info --output=json` (the command prints a JSON array of them).
#[derive(Debug, Clone, Deserialize)]
pub struct StanzaInfo {
    pub name: String,
    #[serde(default)]
    pub status: Status,
    #[serde(default)]
    pub backup: Vec<BackupInfo>,
    #[serde(default)]
    pub archive: Vec<ArchiveInfo>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Status {
    pub code: i64,
    #[serde(default)]
    pub message: String,
}

/// One backup set.
#[derive(Debug, Clone, Deserialize)]
pub struct BackupInfo {
    pub label: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub timestamp: StartStop<i64>,
    #[serde(default)]
    pub archive: Option<StartStop<Option<String>>>,
    pub info: SizeInfo,
    #[serde(default)]
    pub error: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StartStop<T> {
    pub start: T,
    pub stop: T,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SizeInfo {
    /// Size of the database at the time of the backup.
    pub size: u64,
    pub repository: RepoSize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RepoSize {
    /// Bytes this set itself added to the repository (compressed, encrypted).
    pub delta: u64,
}

/// The WAL the repository holds for one database (PostgreSQL version and system id).
#[derive(Debug, Clone, Deserialize)]
pub struct ArchiveInfo {
    pub id: String,
    pub min: Option<String>,
    pub max: Option<String>,
}

/// Parses `pgbackrest info --output=json` and picks `stanza`.
///
/// pgBackRest puts error messages into its JSON as they are, raw line breaks included (seen with a
/// wrong repository passphrase), which JSON forbids inside strings: control characters are read
/// as spaces, which changes nothing between tokens.
pub fn parse(json: &[u8], stanza: &str) -> Result<StanzaInfo> {
    let clean: Vec<u8> = json
        .iter()
        .map(|&b| if b < 0x20 { b' ' } else { b })
        .collect();
    let all: Vec<StanzaInfo> =
        serde_json::from_slice(&clean).context("reading pgbackrest info --output=json")?;
    all.into_iter()
        .find(|s| s.name == stanza)
        .with_context(|| format!("pgbackrest info has no stanza `{stanza}`"))
}

/// One row of `stackctl backup list`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SetRow {
    pub label: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(serialize_with = "rfc3339")]
    pub started: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    pub finished: DateTime<Utc>,
    /// Database size at the backup.
    pub database_bytes: u64,
    /// What the set occupies in the repository.
    pub repository_bytes: u64,
    pub wal_start: Option<String>,
    pub wal_stop: Option<String>,
}

/// The WAL segments archived for one database (`17-1`: PostgreSQL 17, the repository's first).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WalRange {
    pub database: String,
    pub first: Option<String>,
    pub last: Option<String>,
}

/// The times a point-in-time restore can reach: from the end of the oldest backup to the end
/// of the archived WAL (`latest`, when known). pgBackRest records a backup's end in whole
/// seconds, cut down; the backup is consistent only at its real end, somewhere in that second, so
/// `earliest` is the next whole second: a target inside the backup's last second could stop
/// recovery before the data is consistent.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Window {
    #[serde(serialize_with = "rfc3339")]
    pub earliest: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    pub latest: DateTime<Utc>,
}

/// Times in JSON as RFC 3339 in UTC (what `restore --to` accepts).
fn rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

fn utc(epoch: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(epoch, 0).unwrap_or_default()
}

impl StanzaInfo {
    /// The complete backup sets, oldest first.
    pub fn sets(&self) -> Vec<SetRow> {
        let mut rows: Vec<SetRow> = self
            .backup
            .iter()
            .filter(|b| b.error != Some(true))
            .map(|b| SetRow {
                label: b.label.clone(),
                kind: b.kind.clone(),
                started: utc(b.timestamp.start),
                finished: utc(b.timestamp.stop),
                database_bytes: b.info.size,
                repository_bytes: b.info.repository.delta,
                wal_start: b.archive.as_ref().and_then(|a| a.start.clone()),
                wal_stop: b.archive.as_ref().and_then(|a| a.stop.clone()),
            })
            .collect();
        rows.sort_by_key(|r| r.finished);
        rows
    }

    /// The archived WAL: the first and last segment of each database the repository knows.
    pub fn wal_ranges(&self) -> Vec<WalRange> {
        self.archive
            .iter()
            .map(|a| WalRange {
                database: a.id.clone(),
                first: a.min.clone(),
                last: a.max.clone(),
            })
            .collect()
    }

    /// pgBackRest's status of the stanza (`ok`, `no valid backups`, `missing stanza path`...).
    pub fn status(&self) -> String {
        format!("{} (code {})", self.status.message, self.status.code)
    }

    /// The restorable window, given the newest time the archive is known to cover (`archived`,
    /// e.g. PostgreSQL's last archived segment); `None` when there is no backup.
    pub fn window(&self, archived: Option<DateTime<Utc>>) -> Option<Window> {
        let sets = self.sets();
        let earliest = sets.first()?.finished + chrono::TimeDelta::seconds(1);
        let newest = sets.last()?.finished + chrono::TimeDelta::seconds(1);
        let latest = archived.map_or(newest, |a| a.max(newest));
        Some(Window { earliest, latest })
    }
}

/// Bytes for people: `1.4 GiB`, `312 KiB`, `12 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The shape pgBackRest 2.55 prints (trimmed to what we read, plus fields we ignore).
    const SAMPLE: &str = r#"[{"archive":[{"database":{"id":1,"repo-key":1},"id":"17-1",
      "max":"000000010000000000000007","min":"000000010000000000000003"}],
      "backup":[
        {"archive":{"start":"000000010000000000000005","stop":"000000010000000000000005"},
         "backrest":{"format":5,"version":"2.55.1"},"database":{"id":1,"repo-key":1},"error":false,
         "info":{"delta":100,"repository":{"delta":40,"size":40},"size":100},
         "label":"20261203-120500F_20261203-130000I","lsn":{"start":"0/5000028","stop":"0/5000100"},
         "prior":"20261203-120500F","reference":["20261203-120500F"],
         "timestamp":{"start":1764766800,"stop":1764766805},"type":"incr"},
        {"archive":{"start":"000000010000000000000003","stop":"000000010000000000000003"},
         "backrest":{"format":5,"version":"2.55.1"},"database":{"id":1,"repo-key":1},"error":false,
         "info":{"delta":3000000,"repository":{"delta":900000,"size":900000},"size":3000000},
         "label":"20261203-120500F","lsn":{"start":"0/3000028","stop":"0/3000100"},
         "prior":null,"reference":null,
         "timestamp":{"start":1764763500,"stop":1764763510},"type":"full"}],
      "cipher":"aes-256-cbc","db":[{"id":1,"repo-key":1,"system-id":7,"version":"17"}],
      "name":"main","repo":[{"cipher":"aes-256-cbc","key":1,"status":{"code":0,"message":"ok"}}],
      "status":{"code":0,"lock":{"backup":{"held":false}},"message":"ok"}}]"#;

    #[test]
    fn sets_are_oldest_first_with_sizes_and_wal() {
        let s = parse(SAMPLE.as_bytes(), "main").unwrap();
        let sets = s.sets();
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0].label, "20261203-120500F");
        assert_eq!(sets[0].kind, "full");
        assert_eq!(sets[0].repository_bytes, 900000);
        assert_eq!(
            sets[0].wal_start.as_deref(),
            Some("000000010000000000000003")
        );
        assert_eq!(sets[1].kind, "incr");
        let wal = s.wal_ranges();
        assert_eq!(wal[0].first.as_deref(), Some("000000010000000000000003"));
        assert_eq!(wal[0].last.as_deref(), Some("000000010000000000000007"));
        assert_eq!(s.status(), "ok (code 0)");
    }

    #[test]
    fn window_runs_from_the_oldest_backup_to_the_archive() {
        let s = parse(SAMPLE.as_bytes(), "main").unwrap();
        // A backup's end is recorded in whole seconds, cut down: the window starts a second
        // after it (the backup is consistent only at its real end, within that second).
        let w = s.window(None).unwrap();
        assert_eq!(w.earliest, utc(1764763511));
        assert_eq!(w.latest, utc(1764766806));
        let w = s.window(Some(utc(1764770000))).unwrap();
        assert_eq!(w.latest, utc(1764770000));
        // An archive older than the newest backup does not shrink the window.
        assert_eq!(s.window(Some(utc(1))).unwrap().latest, utc(1764766806));
    }

    #[test]
    fn raw_line_breaks_in_pgbackrests_messages_are_read() {
        let raw = "[{\"name\":\"main\",\"status\":{\"code\":99,\"message\":\"other\nunable to decrypt\"},\"backup\":[],\"archive\":[]}]";
        let s = parse(raw.as_bytes(), "main").unwrap();
        assert_eq!(s.status(), "other unable to decrypt (code 99)");
    }

    #[test]
    fn no_backup_no_window_and_missing_stanza_is_an_error() {
        let empty = r#"[{"name":"main","status":{"code":2,"message":"no valid backups"},"backup":[],"archive":[]}]"#;
        assert!(
            parse(empty.as_bytes(), "main")
                .unwrap()
                .window(None)
                .is_none()
        );
        assert!(parse(empty.as_bytes(), "other").is_err());
        assert!(parse(b"not json", "main").is_err());
    }

    #[test]
    fn bytes_read_well() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(2048), "2.0 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024 / 2), "1.5 GiB");
    }
}
