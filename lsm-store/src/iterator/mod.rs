//! Cursors over every layer of the read path, in full-key order, and their merge.
//!
//! Each layer is a cursor that can be positioned (`seek`) and stepped (`next`) in either
//! direction; [`MergeCursor`] merges them and `epoch_mvcc::MvccIter` turns the merge into what
//! a reader at an epoch sees.

mod batch;
mod concat;
mod merge;
mod sst;

pub(crate) use batch::BatchCursor;
pub(crate) use concat::ConcatCursor;
pub(crate) use merge::{MergeCursor, SourceCursor};
pub(crate) use sst::{SstCursor, SstSource, StreamedSsts};
