//! The subset of the Compose specification that our templates use, read back from the rendered
//! file, with `${VAR}` interpolation done the way Compose does it.
//!
//! `load` turns a file into a checked `Project` (`interpolate` first, on the YAML tree; then the
//! typed parse into `types`, whose single fields `fields` reads in each syntax Compose accepts);
//! `select` picks services and what they depend on. stackctl's own service groups are not Compose
//! and live in `crate::groups`.

mod fields;
#[cfg(test)]
pub(crate) mod fixture;
mod interpolate;
mod load;
mod select;
mod types;

// Every type of the subset, at `crate::compose::*` as before the split.
pub use fields::*;
pub use load::Project;
#[cfg(test)] // the group policy's tests parse the fixture
pub use load::parse;
pub use types::*;
