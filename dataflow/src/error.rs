//! The crate's error type, with the SQLSTATE each error reports to clients.

use arrow::error::ArrowError;
use epoch_mvcc::StoreError;

/// Why a dataflow operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Division (or modulo) by zero.
    #[error("Division by zero")]
    DivisionByZero,
    /// A value does not fit its type.
    #[error("{0} out of range")]
    OutOfRange(String),
    /// A cast of a value that has no representation in the target type.
    #[error("invalid input syntax: {0}")]
    InvalidInput(String),
    /// Text that does not read as a value of the type (a cast from text).
    #[error("invalid input syntax for type {ty}: \"{value}\"")]
    InvalidText {
        /// The type.
        ty: String,
        /// The text.
        value: String,
    },
    /// A value of the right type that the operation cannot take (a jsonb string cast to a
    /// number).
    #[error("{0}")]
    InvalidValue(String),
    /// An argument outside a function's domain (the square root of a negative number), with
    /// the SQLSTATE PostgreSQL gives it.
    #[error("{message}")]
    FunctionArgument {
        /// The SQLSTATE.
        sqlstate: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A regular expression that does not compile.
    #[error("invalid regular expression: {0}")]
    InvalidRegex(String),
    /// More rows than the construct allows (a scalar subquery returning several).
    #[error("{0}")]
    CardinalityViolation(String),
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Stored state does not decode: a bug or a corrupt store.
    #[error("corrupt state: {0}")]
    CorruptState(String),
    /// Something valid that this system does not do.
    #[error("not supported: {0}")]
    NotSupported(String),
    /// A violated internal invariant.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The PostgreSQL SQLSTATE code for this error.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            Error::DivisionByZero => "22012",
            Error::OutOfRange(_) => "22003",
            Error::InvalidInput(_) | Error::InvalidText { .. } => "22P02",
            Error::InvalidValue(_) => "22023",
            Error::InvalidRegex(_) => "2201B",
            Error::FunctionArgument { sqlstate, .. } => sqlstate,
            Error::CardinalityViolation(_) => "21000",
            Error::Store(_) | Error::CorruptState(_) => "XX001",
            Error::NotSupported(_) => "0A000",
            Error::Internal(_) => "XX000",
        }
    }
}

impl From<ArrowError> for Error {
    fn from(e: ArrowError) -> Self {
        match e {
            ArrowError::DivideByZero => Error::DivisionByZero,
            ArrowError::ArithmeticOverflow(m) => Error::OutOfRange(m),
            ArrowError::CastError(m) | ArrowError::ParseError(m) => Error::InvalidInput(m),
            ArrowError::ComputeError(m) if m.contains("Overflow") || m.contains("overflow") => {
                Error::OutOfRange(m)
            }
            ArrowError::ComputeError(m) if m.contains("Regular expression") => {
                Error::InvalidRegex(m)
            }
            other => Error::Internal(other.to_string()),
        }
    }
}

/// Result of dataflow operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
