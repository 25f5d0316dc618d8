//! The PostgreSQL-compatible front end: the wire protocol server and the database facade that
//! runs SQL statements over the store.

mod database;
mod error;
mod server;

pub use database::{Database, DatabaseOptions, Description, Session, StatementResult};
pub use error::{Error, Result};
pub use server::{Connection, serve};
