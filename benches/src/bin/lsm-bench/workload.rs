//! The data set, the operation streams and the output format every engine shares.

use std::time::{Duration, Instant};

use bytes::Bytes;
use epoch_mvcc::table_key;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

pub const TABLE: u32 = 1;
/// Key = table id (4) + vnode (2) + group (4) + member (6): 16 bytes; the prefix is the group.
pub const PREFIX_LEN: usize = 10;
pub const VALUE_LEN: usize = 100;
pub const KEYS_PER_EPOCH: u64 = 10_000;
pub const MEMBERS_PER_GROUP: u64 = 16;

/// Keys `0..keys`, spread over groups of about [`MEMBERS_PER_GROUP`] keys each.
pub struct Workload {
    pub keys: u64,
    pub reads: u64,
    groups: u64,
}

fn mix(mut x: u64) -> u64 {
    // splitmix64: a fixed permutation, so every run reads the same keys.
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Workload {
    pub fn new(keys: u64, reads: u64) -> Self {
        Workload {
            keys,
            reads,
            groups: (keys / MEMBERS_PER_GROUP).max(1),
        }
    }

    fn user_key(group: u64, member: u64) -> Bytes {
        let mut pk = (group as u32).to_be_bytes().to_vec();
        pk.extend_from_slice(&member.to_be_bytes()[2..]);
        table_key(TABLE, (group % 256) as u16, &pk)
    }

    /// The j-th key of the data set.
    pub fn key(&self, j: u64) -> Bytes {
        Self::user_key(mix(j) % self.groups, j)
    }

    pub fn value(&self, j: u64) -> Bytes {
        Bytes::from(vec![(j % 251) as u8; VALUE_LEN])
    }

    /// Key ranges written per epoch (one write batch each).
    pub fn epochs(&self) -> impl Iterator<Item = std::ops::Range<u64>> + '_ {
        (0..self.keys)
            .step_by(KEYS_PER_EPOCH as usize)
            .map(|s| s..(s + KEYS_PER_EPOCH).min(self.keys))
    }

    /// The i-th random existing key.
    pub fn existing_key(&self, i: u64) -> Bytes {
        self.key(mix(i ^ 0x5555) % self.keys)
    }

    /// The i-th absent key: half in existing groups (a prefix filter cannot help), half in
    /// groups that do not exist (it can).
    pub fn absent_key(&self, i: u64) -> Bytes {
        let mut rng = StdRng::seed_from_u64(i);
        let member = self.keys + rng.random_range(0..self.keys);
        let group = if i.is_multiple_of(2) {
            rng.random_range(0..self.groups)
        } else {
            self.groups + rng.random_range(0..self.groups)
        };
        Self::user_key(group, member)
    }

    /// The i-th random group's key range.
    pub fn prefix_range(&self, i: u64) -> (Bytes, Bytes) {
        let prefix = Self::user_key(mix(i ^ 0xaaaa) % self.groups, 0).slice(..PREFIX_LEN);
        let end = epoch_mvcc::prefix_successor(&prefix).expect("prefix is not all 0xff");
        (prefix, Bytes::from(end))
    }
}

/// Latencies of individual operations.
#[derive(Default)]
pub struct Latencies(Vec<u64>);

impl Latencies {
    pub fn record(&mut self, started: Instant) {
        self.0.push(started.elapsed().as_nanos() as u64);
    }

    fn percentile_us(&mut self, p: f64) -> f64 {
        self.0.sort_unstable();
        let idx = ((self.0.len() as f64 - 1.0) * p).round() as usize;
        self.0.get(idx).map_or(0.0, |ns| *ns as f64 / 1000.0)
    }
}

/// One output line.
pub struct Measurement {
    line: serde_json::Value,
}

impl Measurement {
    pub fn new(
        engine: &str,
        workload: &str,
        ops: u64,
        elapsed: Duration,
        mut lat: Latencies,
        extra: serde_json::Value,
    ) -> Self {
        let mut line = json!({
            "bench": "lsm",
            "engine": engine,
            "workload": workload,
            "ops": ops,
            "seconds": elapsed.as_secs_f64(),
            "ops_per_sec": ops as f64 / elapsed.as_secs_f64(),
            "p50_us": lat.percentile_us(0.5),
            "p99_us": lat.percentile_us(0.99),
        });
        if let (Some(obj), serde_json::Value::Object(more)) = (line.as_object_mut(), extra) {
            obj.extend(more);
        }
        Measurement { line }
    }

    pub fn print(mut self, w: &Workload) {
        self.line["keys"] = json!(w.keys);
        self.line["key_bytes"] = json!(16);
        self.line["value_bytes"] = json!(VALUE_LEN);
        println!("{}", self.line);
    }
}
