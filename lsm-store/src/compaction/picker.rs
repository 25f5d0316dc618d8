//! Chooses the next compaction: L0 by sub-level count, L1..L6 by size against dynamic level
//! targets (as RocksDB's `level_compaction_dynamic_level_bytes`).

use crate::compaction::{CompactionOptions, CompactionTask, InputLevel};
use crate::version::{MAX_LEVEL, SstInfo, Version};

/// Target sizes per level and the level L0 compacts into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LevelTargets {
    /// The base level: the shallowest level with a target.
    pub base_level: usize,
    /// Target bytes of L1..=L6 (index 0 is L1); 0 above the base level.
    pub target_bytes: [u64; MAX_LEVEL],
}

/// Sizes the levels from the bottom up: the last level's target is its size (at least the
/// base size), each level above a tenth of the one below, until a level's target fits the
/// base size; that level is the base level, and the levels above it stay empty.
pub fn level_targets(version: &Version, options: &CompactionOptions) -> LevelTargets {
    let base = options.max_bytes_for_base_level.max(1);
    let multiplier = options.level_multiplier.max(2);
    let mut target_bytes = [0; MAX_LEVEL];
    let mut level = MAX_LEVEL;
    let mut target = version.level_bytes(MAX_LEVEL).max(base);
    target_bytes[level - 1] = target;
    while level > 1 && target > base {
        target /= multiplier;
        level -= 1;
        target_bytes[level - 1] = target;
    }
    LevelTargets {
        base_level: level,
        target_bytes,
    }
}

fn overlapping(level: &[SstInfo], inputs: &[&SstInfo]) -> Vec<SstInfo> {
    level
        .iter()
        .filter(|s| inputs.iter().any(|i| i.overlaps(s)))
        .cloned()
        .collect()
}

fn task(
    id: u64,
    inputs: Vec<InputLevel>,
    target_level: usize,
    version: &Version,
    safe_epoch: u64,
    target_file_size: usize,
) -> CompactionTask {
    let deeper_levels_empty = (target_level + 1..=MAX_LEVEL).all(|l| version.level(l).is_empty());
    let rewritten_inputs: usize = inputs.iter().map(|l| l.runs.iter().flatten().count()).sum();
    let single_run = inputs.iter().map(|l| l.runs.len()).sum::<usize>() == 1;
    CompactionTask {
        id,
        trivial_move: single_run
            && rewritten_inputs > 0
            && inputs.iter().all(|l| l.level != target_level),
        inputs,
        target_level,
        safe_epoch,
        target_file_size,
        drop_tombstones: deeper_levels_empty,
    }
}

/// The most urgent compaction, if any level is over its trigger.
pub fn pick(
    version: &Version,
    options: &CompactionOptions,
    safe_epoch: u64,
    target_file_size: usize,
    task_id: u64,
) -> Option<CompactionTask> {
    let targets = level_targets(version, options);
    let l0_score = version.l0.len() as f64 / options.l0_sub_level_trigger.max(1) as f64;
    let mut best: Option<(f64, usize)> = (l0_score >= 1.0).then_some((l0_score, 0));
    for level in 1..MAX_LEVEL {
        let bytes = version.level_bytes(level);
        if bytes == 0 {
            continue;
        }
        // Levels above the base level should be empty: push their data down first.
        let score = if level < targets.base_level {
            f64::MAX
        } else {
            bytes as f64 / targets.target_bytes[level - 1].max(1) as f64
        };
        if score >= 1.0 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, level));
        }
    }
    let (_, level) = best?;
    if level == 0 {
        let target_level = targets.base_level;
        let l0_inputs: Vec<&SstInfo> = version.l0.iter().flat_map(|s| &s.ssts).collect();
        let below = overlapping(version.level(target_level), &l0_inputs);
        let mut inputs = vec![InputLevel {
            level: 0,
            sub_level_ids: version.l0.iter().map(|s| s.id).collect(),
            runs: version.l0.iter().map(|s| s.ssts.clone()).collect(),
        }];
        if !below.is_empty() {
            inputs.push(InputLevel {
                level: target_level,
                sub_level_ids: vec![],
                runs: vec![below],
            });
        }
        return Some(task(
            task_id,
            inputs,
            target_level,
            version,
            safe_epoch,
            target_file_size,
        ));
    }
    // Ln: the SST whose compaction rewrites the least of the level below per byte moved.
    let target_level = level + 1;
    let below = version.level(target_level);
    let chosen = version.level(level).iter().min_by_key(|s| {
        let overlap: u64 = below
            .iter()
            .filter(|b| b.overlaps(s))
            .map(|b| b.file_size)
            .sum();
        (overlap.saturating_mul(1024) / s.file_size.max(1), s.id)
    })?;
    let below = overlapping(below, &[chosen]);
    let mut inputs = vec![InputLevel {
        level,
        sub_level_ids: vec![],
        runs: vec![vec![chosen.clone()]],
    }];
    if !below.is_empty() {
        inputs.push(InputLevel {
            level: target_level,
            sub_level_ids: vec![],
            runs: vec![below],
        });
    }
    Some(task(
        task_id,
        inputs,
        target_level,
        version,
        safe_epoch,
        target_file_size,
    ))
}

/// The version after applying a finished task, or `None` when an input is no longer live
/// (the result is then discarded and its outputs become garbage).
pub(crate) fn apply(
    version: &Version,
    task: &CompactionTask,
    outputs: Vec<SstInfo>,
) -> Option<Version> {
    let live = version.sst_ids();
    if !task.input_ssts().all(|s| live.contains(&s.id)) {
        return None;
    }
    for input in &task.inputs {
        if input.level == 0
            && !input
                .sub_level_ids
                .iter()
                .all(|id| version.l0.iter().any(|s| s.id == *id))
        {
            return None;
        }
    }
    let removed: std::collections::HashSet<u64> = task.input_ssts().map(|s| s.id).collect();
    let mut next = version.clone();
    next.id += 1;
    next.safe_epoch = next.safe_epoch.max(task.safe_epoch);
    next.l0.retain(|sub| {
        !task
            .inputs
            .iter()
            .any(|i| i.level == 0 && i.sub_level_ids.contains(&sub.id))
    });
    for level in next.levels.iter_mut() {
        level.retain(|s| !removed.contains(&s.id));
    }
    let new_ssts = if task.trivial_move {
        task.input_ssts().cloned().collect()
    } else {
        outputs
    };
    let target = &mut next.levels[task.target_level - 1];
    target.extend(new_ssts);
    target.sort_by(|a, b| a.smallest_user_key().cmp(b.smallest_user_key()));
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use epoch_mvcc::{Epoch, FullKeyRef};

    fn sst(id: u64, lo: &[u8], hi: &[u8], size: u64) -> SstInfo {
        SstInfo {
            id,
            file_size: size,
            tail_offset: 0,
            smallest_key: Bytes::from(FullKeyRef::new(lo, Epoch(9)).encode()),
            largest_key: Bytes::from(FullKeyRef::new(hi, Epoch(1)).encode()),
            min_epoch: 1,
            max_epoch: 9,
            key_count: 1,
            tombstone_count: 0,
            table_ids: vec![],
        }
    }

    fn opts() -> CompactionOptions {
        CompactionOptions {
            max_bytes_for_base_level: 1000,
            ..CompactionOptions::default()
        }
    }

    #[test]
    fn dynamic_targets_move_base_level_up_as_data_grows() {
        let mut v = Version::empty();
        assert_eq!(level_targets(&v, &opts()).base_level, 6);
        v.levels[5] = vec![sst(1, b"a", b"z", 50_000)];
        let t = level_targets(&v, &opts());
        assert_eq!(t.base_level, 4);
        assert_eq!(t.target_bytes[5], 50_000);
        assert_eq!(t.target_bytes[3], 500);
    }

    #[test]
    fn l0_compacts_into_base_level_with_overlaps() {
        let mut v = Version::empty();
        for i in 0..4 {
            v = v.with_flush(vec![sst(10 + i, b"c", b"f", 10)], Epoch(i + 1));
        }
        v.levels[5] = vec![sst(1, b"a", b"b", 10), sst(2, b"d", b"e", 10)];
        let t = pick(&v, &opts(), 3, 1 << 20, 7).unwrap();
        assert_eq!(t.target_level, 6);
        assert_eq!(t.inputs[0].runs.len(), 4);
        assert_eq!(
            t.inputs[1].runs[0].iter().map(|s| s.id).collect::<Vec<_>>(),
            vec![2]
        );
        assert!(t.drop_tombstones && !t.trivial_move);
        let next = apply(&v, &t, vec![sst(99, b"c", b"f", 30)]).unwrap();
        assert!(next.l0.is_empty());
        assert_eq!(
            next.levels[5].iter().map(|s| s.id).collect::<Vec<_>>(),
            vec![1, 99]
        );
        next.validate().unwrap();
        // Applying again fails: the inputs are gone.
        assert!(apply(&next, &t, vec![]).is_none());
    }

    #[test]
    fn non_overlapping_level_file_moves_trivially() {
        let mut v = Version::empty();
        v.levels[5] = vec![sst(1, b"a", b"b", 100_000)];
        v.levels[3] = vec![sst(2, b"x", b"y", 5_000)];
        let t = pick(&v, &opts(), 0, 1 << 20, 1).unwrap();
        assert_eq!((t.target_level, t.trivial_move), (5, true));
        let next = apply(&v, &t, vec![]).unwrap();
        assert_eq!(next.levels[4][0].id, 2);
        assert!(next.levels[3].is_empty());
    }
}
