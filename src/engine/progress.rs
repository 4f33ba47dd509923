//! Per-service progress of `up`: a spinner line per service on a terminal, plain `service
//! message` lines otherwise. Always on stderr, so stdout carries only a command's result.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Per-service progress: spinners on a terminal, plain lines otherwise.
#[derive(Clone)]
pub struct Progress {
    inner: Arc<ProgressInner>,
}

struct ProgressInner {
    multi: Option<MultiProgress>,
    bars: Mutex<BTreeMap<String, ProgressBar>>,
    width: usize,
}

impl Progress {
    pub fn new(services: &[String]) -> Progress {
        let multi = std::io::stderr().is_terminal().then(MultiProgress::new);
        let width = services.iter().map(String::len).max().unwrap_or(8);
        let mut bars = BTreeMap::new();
        if let Some(m) = &multi {
            let style = ProgressStyle::with_template("{spinner} {prefix} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            for s in services {
                let b = m.add(
                    ProgressBar::new_spinner()
                        .with_style(style.clone())
                        .with_prefix(format!("{s:width$}")),
                );
                b.enable_steady_tick(Duration::from_millis(120));
                b.set_message("waiting");
                bars.insert(s.clone(), b);
            }
        }
        Progress {
            inner: Arc::new(ProgressInner {
                multi,
                bars: Mutex::new(bars),
                width,
            }),
        }
    }

    pub fn set(&self, service: &str, msg: impl Into<String>) {
        let msg = msg.into();
        let bars = self.inner.bars.lock().unwrap_or_else(|e| e.into_inner());
        match bars.get(service) {
            Some(b) => b.set_message(msg),
            None => {
                let w = self.inner.width;
                match &self.inner.multi {
                    Some(m) => {
                        let _ = m.println(format!("  {service:w$} {msg}"));
                    }
                    None => eprintln!("{service:w$} {msg}"),
                }
            }
        }
    }

    pub fn finish(&self, service: &str, msg: impl Into<String>) {
        let msg = msg.into();
        let bars = self.inner.bars.lock().unwrap_or_else(|e| e.into_inner());
        match bars.get(service) {
            Some(b) => b.finish_with_message(msg),
            None => {
                drop(bars);
                self.set(service, msg)
            }
        }
    }

    pub fn done(&self) {
        let bars = self.inner.bars.lock().unwrap_or_else(|e| e.into_inner());
        for b in bars.values() {
            if !b.is_finished() {
                b.finish();
            }
        }
    }
}
