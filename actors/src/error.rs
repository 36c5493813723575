//! What kind of failure an error is. Every error type that reaches the REST layer answers [`ErrorKind`] through
//! a `kind()` method, delegating to its source where it wraps one, so the REST layer maps kinds to status codes in
//! one place and a new subsystem only says what kind its errors are.

/// The kind of a failure, as a client of the node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is wrong as asked (HTTP 400).
    BadRequest,
    /// What was asked for is not here, or nobody could provide it (404).
    NotFound,
    /// Well-formed but refused: no quota, empty data, content that does not match its CID (422).
    Refused,
    /// The node cannot do it now: stopping, or networking is off (503).
    Unavailable,
    /// A fault of the node itself; the details go to the log, not to the client (500).
    Internal,
}
