//! postgate against real PostgreSQL 17 (our image, in Docker). No test is skipped: without Docker
//! they fail.

mod adversarial;
mod api;
mod disconnect;
mod fuzz;
mod serve;
mod support;
mod token_names;
