#![doc = include_str!("../README.md")]
mod copy;
mod database;
mod error;
mod metrics;
mod server;
mod streaming;

pub use copy::CopyFormat;
pub use database::{CopyIn, Database, DatabaseOptions, Description, Session, StatementResult};
pub use error::{Error, Result};
pub use server::{Auth, Connection, serve};
