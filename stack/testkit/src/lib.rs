//! Test support every test binary of the workspace needs (a dev-dependency only): a throw-away
//! PostgreSQL 17 in a container of our image, the `docker` command, and loopback ports. Written
//! once here so the root package, postgate and the runner start their databases the same way;
//! what differs between them (name, credentials, database, network) is an [`Options`] value.

mod docker;
mod ports;
mod postgres;

pub use docker::{docker, image_exists, require_docker};
pub use ports::{free_port, published_port};
pub use postgres::{IMAGE, IfMissing, Options, Postgres, postgres_image};
