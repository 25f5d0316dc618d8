//! Chooses the next compaction: L0 by sub-level count, L1..L6 by size against dynamic level
//! targets (as RocksDB's `level_compaction_dynamic_level_bytes`).

use std::collections::HashSet;

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

/// The SSTs of `level` that overlap the key span from the smallest to the largest key of
/// `inputs`. The span, not each input: outputs of a merge can stretch across a gap between
/// inputs, and must never overlap an SST left in the target level.
fn overlapping(level: &[SstInfo], inputs: &[&SstInfo]) -> Vec<SstInfo> {
    let Some(smallest) = inputs.iter().map(|s| s.smallest_user_key()).min() else {
        return Vec::new();
    };
    let largest = inputs
        .iter()
        .map(|s| s.largest_user_key())
        .max()
        .unwrap_or(smallest);
    level
        .iter()
        .filter(|s| s.smallest_user_key() <= largest && smallest <= s.largest_user_key())
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

/// The most urgent compaction that touches no SST in `busy` (the inputs of tasks still
/// running), if any level is over its trigger. Tasks that share no SST can run at once:
/// each one's outputs stay inside the key span its inputs cover in the target level.
pub fn pick(
    version: &Version,
    options: &CompactionOptions,
    safe_epoch: u64,
    target_file_size: usize,
    task_id: u64,
    busy: &HashSet<u64>,
) -> Option<CompactionTask> {
    let targets = level_targets(version, options);
    let l0_score = version.l0.len() as f64 / options.l0_sub_level_trigger.max(1) as f64;
    let mut candidates: Vec<(f64, usize)> = Vec::new();
    if l0_score >= 1.0 {
        candidates.push((l0_score, 0));
    }
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
        if score >= 1.0 {
            candidates.push((score, level));
        }
    }
    // Most urgent first; among equals, the shallower level.
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    candidates.into_iter().find_map(|(_, level)| {
        pick_level(
            version,
            level,
            &targets,
            safe_epoch,
            target_file_size,
            task_id,
            busy,
        )
    })
}

/// A task compacting `level` that touches no SST in `busy`.
fn pick_level(
    version: &Version,
    level: usize,
    targets: &LevelTargets,
    safe_epoch: u64,
    target_file_size: usize,
    task_id: u64,
    busy: &HashSet<u64>,
) -> Option<CompactionTask> {
    let is_busy = |ssts: &[SstInfo]| ssts.iter().any(|s| busy.contains(&s.id));
    if level == 0 {
        let target_level = targets.base_level;
        let l0_inputs: Vec<&SstInfo> = version.l0.iter().flat_map(|s| &s.ssts).collect();
        let below = overlapping(version.level(target_level), &l0_inputs);
        // L0 is taken whole, so one L0 task at a time.
        if l0_inputs.iter().any(|s| busy.contains(&s.id)) || is_busy(&below) {
            return None;
        }
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
    let (chosen, below) = version
        .level(level)
        .iter()
        .filter(|s| !busy.contains(&s.id))
        .map(|s| (s, overlapping(below, &[s])))
        .filter(|(_, overlap)| !is_busy(overlap))
        .min_by_key(|(s, overlap)| {
            let overlap: u64 = overlap.iter().map(|b| b.file_size).sum();
            (overlap.saturating_mul(1024) / s.file_size.max(1), s.id)
        })?;
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
            v = v.with_flush(vec![vec![sst(10 + i, b"c", b"f", 10)]], Epoch(i + 1));
        }
        v.levels[5] = vec![sst(1, b"a", b"b", 10), sst(2, b"d", b"e", 10)];
        let t = pick(&v, &opts(), 3, 1 << 20, 7, &HashSet::new()).unwrap();
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
    fn l0_takes_every_base_sst_inside_its_span() {
        let mut v = Version::empty();
        for (i, (lo, hi)) in [(b"a", b"b"), (b"y", b"z")].into_iter().enumerate() {
            for epoch in 0..2 {
                let id = 10 + 2 * i as u64 + epoch;
                v = v.with_flush(vec![vec![sst(id, lo, hi, 10)]], Epoch(id));
            }
        }
        v.levels[5] = vec![sst(1, b"m", b"n", 10)];
        let t = pick(&v, &opts(), 3, 1 << 20, 7, &HashSet::new()).unwrap();
        // An output may hold keys from a..b and y..z, so it would overlap m..n.
        assert_eq!(
            t.inputs[1].runs[0].iter().map(|s| s.id).collect::<Vec<_>>(),
            vec![1]
        );
        apply(&v, &t, vec![sst(99, b"a", b"z", 40)])
            .unwrap()
            .validate()
            .unwrap();
    }

    #[test]
    fn tasks_that_share_no_sst_are_picked_beside_running_ones() {
        let mut v = Version::empty();
        // L5 (levels[4]) is over its target; L6 holds one SST spanning everything.
        v.levels[5] = vec![sst(1, b"a", b"z", 100_000)];
        v.levels[4] = vec![
            sst(2, b"a", b"c", 5_000),
            sst(3, b"d", b"f", 5_000),
            sst(4, b"g", b"i", 5_000),
        ];
        let first = pick(&v, &opts(), 0, 1 << 20, 1, &HashSet::new()).unwrap();
        let busy: HashSet<u64> = first.input_ssts().map(|s| s.id).collect();
        assert!(busy.contains(&1), "L5 into L6 takes the one L6 SST");
        // Every other L5 SST overlaps the busy L6 SST: nothing else can run.
        assert!(pick(&v, &opts(), 0, 1 << 20, 2, &busy).is_none());

        v.levels[5] = vec![sst(1, b"a", b"c", 50_000), sst(5, b"g", b"z", 50_000)];
        let first = pick(&v, &opts(), 0, 1 << 20, 1, &HashSet::new()).unwrap();
        let busy: HashSet<u64> = first.input_ssts().map(|s| s.id).collect();
        let second = pick(&v, &opts(), 0, 1 << 20, 2, &busy).unwrap();
        assert!(second.input_ssts().all(|s| !busy.contains(&s.id)));
        let both = apply(&v, &first, vec![]).and_then(|v| apply(&v, &second, vec![]));
        both.unwrap().validate().unwrap();
    }

    #[test]
    fn non_overlapping_level_file_moves_trivially() {
        let mut v = Version::empty();
        v.levels[5] = vec![sst(1, b"a", b"b", 100_000)];
        v.levels[3] = vec![sst(2, b"x", b"y", 5_000)];
        let t = pick(&v, &opts(), 0, 1 << 20, 1, &HashSet::new()).unwrap();
        assert_eq!((t.target_level, t.trivial_move), (5, true));
        let next = apply(&v, &t, vec![]).unwrap();
        assert_eq!(next.levels[4][0].id, 2);
        assert!(next.levels[3].is_empty());
    }
}
