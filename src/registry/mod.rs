//! Container registries, for both sides that talk to one: `publish` (pushes our images) and the
//! engine (pulls an `[images]` reference that names a registry). Image references and the
//! `--registry` target (`target`), credentials from flags or the Docker config (`credentials`),
//! and the registry's own HTTP API (`client`). It knows nothing of Docker or of the stack, so
//! neither side imports the other through it.

pub mod client;
pub mod credentials;
pub mod target;
