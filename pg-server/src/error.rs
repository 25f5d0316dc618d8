//! Errors of statement execution, each with the SQLSTATE the client receives.

use sql_planner::PlanError;

/// Why a statement failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Parsing, binding or planning failed.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Evaluation failed (division by zero, out of range, ...).
    #[error(transparent)]
    Exec(#[from] dataflow::Error),
    /// The storage engine failed.
    #[error(transparent)]
    Storage(#[from] lsm_store::Error),
    /// The state store refused an operation.
    #[error(transparent)]
    Store(#[from] epoch_mvcc::StoreError),
    /// Any other error with its SQLSTATE.
    #[error("{message}")]
    Sql {
        /// SQLSTATE.
        sqlstate: &'static str,
        /// Message.
        message: String,
    },
}

impl Error {
    /// An error with an explicit SQLSTATE.
    pub fn sql(sqlstate: &'static str, message: impl Into<String>) -> Error {
        Error::Sql {
            sqlstate,
            message: message.into(),
        }
    }

    /// The PostgreSQL SQLSTATE code.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            Error::Plan(e) => e.sqlstate(),
            Error::Exec(e) => e.sqlstate(),
            Error::Storage(lsm_store::Error::Fenced(_))
            | Error::Store(epoch_mvcc::StoreError::ReadOnly(_)) => "25006",
            Error::Storage(_) | Error::Store(_) => "58030",
            Error::Sql { sqlstate, .. } => sqlstate,
        }
    }
}

/// Result of statement execution.
pub type Result<T, E = Error> = std::result::Result<T, E>;
