#![doc = include_str!("../README.md")]
mod array;
pub mod batch;
pub mod chunk;
pub mod datetime;
pub mod decimal;
mod error;
pub mod expr;
pub mod func;
pub mod json;
pub mod row_codec;
pub mod source;
pub mod state_table;
pub mod stream;
pub mod string;
pub mod text;
pub mod types;
pub mod watermark;

pub use error::{Error, Result};
