//! postgate's HTTP API (`app()` driven with `oneshot`) against real PostgreSQL behind PgBouncer,
//! one file per topic: tenants, tokens and the logins around them; queries and their types;
//! limits and errors; the service endpoints and what every replica sees.

mod limits;
mod queries;
mod service;
mod tenants;
