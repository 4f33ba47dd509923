//! Issue 19, metrics and dashboards: `queries` reads the PromQL the dashboards and alert rules
//! hold (and the metric names in it); `provisioning` checks the files render writes, without
//! Docker; `live` brings Prometheus and the exporters up from our images and checks them against
//! a live scrape.

pub(crate) mod live;
mod provisioning;
mod queries;
