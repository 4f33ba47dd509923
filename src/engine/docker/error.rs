//! The facade's error: what was attempted, on what, and what kind of failure it met. The kind is
//! read from the engine's answer once, here, so no caller searches message text.

/// What kind of failure a Docker call met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DockerErrorKind {
    /// 404: no such container, image, network or volume.
    NotFound,
    /// 409: the name is taken, or the object is busy (a removal already in progress).
    Conflict,
    /// A published host port is held by something else.
    PortInUse,
    /// The engine did not answer (no socket, connection refused or dropped, timeout).
    Unreachable,
    Other,
}

/// A failed Docker call: `op` is what was attempted ("creating container stack-postgres-1"),
/// `target` the object it was attempted on ("stack-postgres-1"). It displays as `op`, with the
/// engine's error as its source, or as `op: message` when the engine reported the failure inside
/// a stream (a pull, a push, a build), so error chains read as they always have.
#[derive(Debug)]
pub struct DockerError {
    pub op: String,
    pub target: String,
    pub kind: DockerErrorKind,
    cause: Cause,
}

#[derive(Debug)]
enum Cause {
    Source(Box<dyn std::error::Error + Send + Sync + 'static>),
    Message(String),
}

impl DockerError {
    /// A bollard error met while attempting `op` on `target`.
    pub(super) fn engine(op: String, target: &str, e: bollard::errors::Error) -> DockerError {
        DockerError {
            op,
            target: target.to_string(),
            kind: kind_of(&e),
            cause: Cause::Source(Box::new(e)),
        }
    }

    /// A failure the engine (or the wait for it) described in words.
    pub(super) fn message(op: String, target: &str, message: impl Into<String>) -> DockerError {
        DockerError {
            op,
            target: target.to_string(),
            kind: DockerErrorKind::Other,
            cause: Cause::Message(message.into()),
        }
    }

    /// Another error (writing an exec's stdin) met while attempting `op` on `target`.
    pub(super) fn other(
        op: String,
        target: &str,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        DockerError {
            op,
            target: target.to_string(),
            kind: DockerErrorKind::Other,
            cause: Cause::Source(Box::new(e)),
        }
    }
}

impl std::fmt::Display for DockerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.cause {
            Cause::Source(_) => f.write_str(&self.op),
            Cause::Message(m) => write!(f, "{}: {m}", self.op),
        }
    }
}

impl std::error::Error for DockerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.cause {
            Cause::Source(e) => Some(e.as_ref()),
            Cause::Message(_) => None,
        }
    }
}

pub type Result<T, E = DockerError> = std::result::Result<T, E>;

/// The kind of a bollard error: by status code, by transport failure, and, for a start that
/// could not bind a published port, by the engine's message (the only text we read).
pub(super) fn kind_of(e: &bollard::errors::Error) -> DockerErrorKind {
    use bollard::errors::Error as E;
    match e {
        E::DockerResponseServerError {
            status_code: 404, ..
        } => DockerErrorKind::NotFound,
        E::DockerResponseServerError {
            status_code: 409, ..
        } => DockerErrorKind::Conflict,
        E::DockerResponseServerError { message, .. }
            if message.contains("port is already allocated")
                || message.contains("address already in use") =>
        {
            DockerErrorKind::PortInUse
        }
        E::SocketNotFoundError(_)
        | E::IOError { .. }
        | E::HyperLegacyError { .. }
        | E::RequestTimeoutError => DockerErrorKind::Unreachable,
        _ => DockerErrorKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(status_code: u16, message: &str) -> bollard::errors::Error {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message: message.to_string(),
        }
    }

    #[test]
    fn kinds_come_from_status_codes_and_the_port_message() {
        use DockerErrorKind::*;
        assert_eq!(kind_of(&server(404, "No such container: x")), NotFound);
        assert_eq!(
            kind_of(&server(
                409,
                "Conflict. The container name \"/x\" is already in use"
            )),
            Conflict
        );
        for m in [
            "driver failed programming external connectivity on endpoint x: Bind for 127.0.0.1:5432 failed: port is already allocated",
            "failed to bind host port 127.0.0.1:5432/tcp: address already in use",
        ] {
            assert_eq!(kind_of(&server(500, m)), PortInUse, "{m}");
        }
        assert_eq!(kind_of(&server(500, "something else")), Other);
        assert_eq!(
            kind_of(&bollard::errors::Error::SocketNotFoundError(
                "/x.sock".into()
            )),
            Unreachable
        );
        assert_eq!(
            kind_of(&bollard::errors::Error::RequestTimeoutError),
            Unreachable
        );
    }

    #[test]
    fn errors_read_as_what_was_attempted() {
        let e = DockerError::engine(
            "creating container demo-db-1".into(),
            "demo-db-1",
            server(409, "Conflict."),
        );
        assert_eq!(
            (e.kind, e.target.as_str()),
            (DockerErrorKind::Conflict, "demo-db-1")
        );
        let e = anyhow::Error::new(e);
        assert_eq!(e.to_string(), "creating container demo-db-1");
        assert!(format!("{e:#}").starts_with("creating container demo-db-1: "));
        assert_eq!(
            e.downcast_ref::<DockerError>().map(|d| d.kind),
            Some(DockerErrorKind::Conflict)
        );
        // Behind a context, callers still find the kind.
        let e = e.context("service `db`");
        assert!(e.chain().any(|c| c.downcast_ref::<DockerError>().is_some()));
        let e = DockerError::message("pulling image x:1".into(), "x:1", "manifest unknown");
        assert_eq!(e.to_string(), "pulling image x:1: manifest unknown");
        assert!(std::error::Error::source(&e).is_none());
    }
}
