//! Exit codes of the runner's admin commands (`runner worker deploy|rm`), which stackctl runs in
//! a runner container and reads back. 0 is done and 1 a failure to report (with the logs); the
//! codes here are the user's to fix, and nothing was changed.

/// An admin command's end that the user is to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminExit {
    /// The input was refused (an invalid manifest, a missing key): stderr says why.
    Refused = 2,
    /// No worker of that name is deployed.
    NotFound = 3,
}

impl AdminExit {
    /// The process exit code.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The [`AdminExit`] a process ended with, if its code is one.
    pub fn from_code(code: i64) -> Option<AdminExit> {
        [AdminExit::Refused, AdminExit::NotFound]
            .into_iter()
            .find(|e| i64::from(e.code()) == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_read_back() {
        assert_eq!(AdminExit::Refused.code(), 2);
        assert_eq!(AdminExit::NotFound.code(), 3);
        for e in [AdminExit::Refused, AdminExit::NotFound] {
            assert_eq!(AdminExit::from_code(e.code().into()), Some(e));
        }
        assert_eq!(AdminExit::from_code(0), None);
        assert_eq!(AdminExit::from_code(1), None);
    }
}
