#![doc = include_str!("../README.md")]
mod database;
mod error;
mod server;

pub use database::{Database, DatabaseOptions, Description, Session, StatementResult};
pub use error::{Error, Result};
pub use server::{Connection, serve};
