//! LSM.
