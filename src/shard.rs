//! Scale-out: which tiles a shard `K/N` works on.
//!
//! Every process of a sharded run computes the same assignment from the same inputs (the
//! config's datasets and their grids, or the staged manifests), with no randomness and no
//! look at what is already committed: so N processes that never talk to each other take
//! disjoint sets of tiles that together cover every tile, and a rerun of shard K (or a run
//! with another N) still ends with every tile done once (committed tiles are skipped).
//!
//! Shard indices are 0-based, like Kubernetes' `JOB_COMPLETION_INDEX`, AWS Batch's
//! `AWS_BATCH_JOB_ARRAY_INDEX` and the task ids of a Slurm array submitted with
//! `--array=0-<N-1>` (`SLURM_ARRAY_TASK_ID`), so a job can pass its index through unchanged.

use serde::Serialize;

/// Environment variables that carry a shard index, in the order they are looked at.
pub(crate) const INDEX_ENV: [&str; 3] = ["JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX", SLURM_TASK_ID];

/// Slurm's array task id: the shard index, used as it is (never shifted by the array's
/// first id, so a task resubmitted alone with `--array=K` is still shard K).
const SLURM_TASK_ID: &str = "SLURM_ARRAY_TASK_ID";

/// Errors in a shard specification.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ShardError {
    /// `--shard` is not `K/N` with `0 <= K < N`.
    #[error("--shard {0:?}: use K/N with 0 <= K < N (0-based, like JOB_COMPLETION_INDEX), e.g. 0/4")]
    Bad(String),
    /// `--shards N` without any index variable.
    #[error("--shards {0}: no shard index; set JOB_COMPLETION_INDEX (Kubernetes Indexed Job), AWS_BATCH_JOB_ARRAY_INDEX (AWS Batch array job) or SLURM_ARRAY_TASK_ID (Slurm: sbatch --array=0-{last}), or pass --shard K/{0}", last = .0.saturating_sub(1))]
    NoIndex(usize),
    /// An index variable that is not a number below N.
    #[error("{var}={value:?} is not a shard index below --shards {count}")]
    BadIndex {
        /// The variable.
        var: String,
        /// Its value.
        value: String,
        /// N.
        count: usize,
    },
    /// A Slurm job array with task ids that are not shards of N.
    #[error("Slurm array task ({array}) does not fit --shards {count}: {why}; submit the array with --array=0-{last} (shard indices are 0-based, task ids are used as they are)", last = .count - 1)]
    SlurmArray {
        /// The array as Slurm describes it (the `SLURM_ARRAY_TASK_*` variables).
        array: String,
        /// N.
        count: usize,
        /// What does not fit.
        why: String,
    },
    /// `--shards 0`.
    #[error("--shards must be at least 1")]
    Zero,
}

/// Shard `index` of `count` (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Shard {
    /// K, in `0..count`.
    pub(crate) index: usize,
    /// N, at least 1.
    pub count: usize,
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Parses `K/N`.
    ///
    /// # Errors
    /// [`ShardError::Bad`].
    pub fn parse(s: &str) -> Result<Shard, ShardError> {
        let bad = || ShardError::Bad(s.to_string());
        let (k, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let index: usize = k.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// Shard K of `count`, with K from the first of [`INDEX_ENV`] that `get` (the process
    /// environment, or a test's) has.
    ///
    /// # Errors
    /// [`ShardError::Zero`], [`ShardError::NoIndex`], [`ShardError::BadIndex`],
    /// [`ShardError::SlurmArray`].
    pub(crate) fn from_lookup(count: usize, get: impl Fn(&str) -> Option<String>) -> Result<Shard, ShardError> {
        if count == 0 {
            return Err(ShardError::Zero);
        }
        for var in INDEX_ENV {
            let Some(index) = number(&get, var, count)? else { continue };
            if var == SLURM_TASK_ID {
                check_slurm_array(index, count, &get)?;
            }
            if index >= count {
                return Err(ShardError::BadIndex { var: var.to_string(), value: get(var).unwrap_or_default(), count });
            }
            return Ok(Shard { index, count });
        }
        Err(ShardError::NoIndex(count))
    }

    /// The shard from the CLI: `--shard K/N`, or `--shards N` with K from the environment;
    /// `None` when neither is given (the whole job).
    ///
    /// # Errors
    /// As [`Shard::parse`] and [`Shard::from_lookup`].
    pub fn from_args(shard: Option<&str>, shards: Option<usize>) -> Result<Option<Shard>, ShardError> {
        match (shard, shards) {
            (Some(s), _) => Shard::parse(s).map(Some),
            (None, Some(n)) => Shard::from_lookup(n, |v| std::env::var(v).ok()).map(Some),
            (None, None) => Ok(None),
        }
    }
}

/// Checks the Slurm array that task `index` belongs to against `--shards count`, from
/// `SLURM_ARRAY_TASK_MIN`, `_MAX` and `_COUNT` (each checked only when set, as older Slurm
/// versions lack some).
///
/// Refused, in every task of the array so that none of them does a wrong share: task ids of
/// N or more (a 1-based `--array=1-N` among them: shifting it by its first id would make a
/// task resubmitted alone, `--array=K`, take shard 0), and more tasks than shards. Accepted
/// with a warning: fewer tasks than shards, which is how failed tasks are resubmitted
/// (`sbatch --array=2,5`); the shards outside the array are left to another job, and
/// `finalize` names the datasets they leave incomplete.
fn check_slurm_array(index: usize, count: usize, get: &impl Fn(&str) -> Option<String>) -> Result<(), ShardError> {
    let var = |name: &str| number(get, &format!("SLURM_ARRAY_TASK_{name}"), count);
    let (min, max, tasks) = (var("MIN")?, var("MAX")?, var("COUNT")?);
    let array = [("ID", Some(index)), ("MIN", min), ("MAX", max), ("COUNT", tasks)]
        .into_iter()
        .filter_map(|(name, v)| Some(format!("SLURM_ARRAY_TASK_{name}={}", v?)))
        .collect::<Vec<_>>()
        .join(", ");
    let highest = max.unwrap_or(index).max(index);
    let why = if highest >= count {
        format!("its task ids go up to {highest}, shards are 0 to {}", count - 1)
    } else if let Some(n) = tasks.filter(|&n| n > count) {
        format!("{n} tasks for {count} shards")
    } else {
        if let Some(n) = tasks.filter(|&n| n < count) {
            tracing::warn!(
                "Slurm array of {n} task(s) ({array}) for --shards {count}: the other shards do not run in this job (as when failed tasks are resubmitted)"
            );
        }
        return Ok(());
    };
    Err(ShardError::SlurmArray { array, count, why })
}

/// The number in variable `var` (`None` when unset or blank).
///
/// # Errors
/// [`ShardError::BadIndex`] for anything else.
fn number(get: &impl Fn(&str) -> Option<String>, var: &str, count: usize) -> Result<Option<usize>, ShardError> {
    let Some(value) = get(var).filter(|v| !v.trim().is_empty()) else { return Ok(None) };
    let n =
        value.trim().parse().map_err(|_| ShardError::BadIndex { var: var.to_string(), value: value.clone(), count })?;
    Ok(Some(n))
}

/// One unit of work: a tile of a dataset, with what it costs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unit {
    /// Dataset name.
    pub dataset: String,
    /// Tile id (`r<row0>_c<col0>`).
    pub tile: String,
    /// Target cells of the tile.
    pub cells: u64,
    /// What balancing weighs: source cells read (convert), rows copied (load), or cells.
    pub weight: u64,
}

/// Assigns each unit to one of `count` shards; returns the shard of each unit, in input
/// order.
///
/// Largest weight first (ties by dataset, then tile id, so the order is total and the same
/// in every process), each to the currently least-loaded shard (ties to the lowest index).
/// Greedy list scheduling keeps every shard's load within one unit's weight of every other
/// shard's, and the input order does not matter.
pub fn assign(units: &[Unit], count: usize) -> Vec<usize> {
    let count = count.max(1);
    let mut order: Vec<usize> = (0..units.len()).collect();
    order.sort_by(|&a, &b| {
        let (ua, ub) = (&units[a], &units[b]);
        ub.weight.cmp(&ua.weight).then_with(|| ua.dataset.cmp(&ub.dataset)).then_with(|| ua.tile.cmp(&ub.tile))
    });
    // (load, shard) in a min-heap: the least-loaded shard, lowest index on ties.
    let mut heap: std::collections::BinaryHeap<std::cmp::Reverse<(u128, usize)>> =
        (0..count).map(|k| std::cmp::Reverse((0u128, k))).collect();
    let mut out = vec![0; units.len()];
    for i in order {
        let std::cmp::Reverse((load, k)) = heap.pop().expect("count >= 1");
        out[i] = k;
        heap.push(std::cmp::Reverse((load + units[i].weight as u128, k)));
    }
    out
}

/// Per-shard totals of an assignment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ShardLoad {
    /// Shard index.
    pub shard: usize,
    /// Tiles.
    pub tiles: usize,
    /// Target cells.
    pub cells: u64,
    /// Summed weights.
    pub weight: u64,
}

/// Totals per shard of `assign(units, count)`.
pub fn loads(units: &[Unit], count: usize) -> Vec<ShardLoad> {
    let count = count.max(1);
    let mut out: Vec<ShardLoad> = (0..count).map(|shard| ShardLoad { shard, ..Default::default() }).collect();
    for (u, k) in units.iter().zip(assign(units, count)) {
        out[k].tiles += 1;
        out[k].cells += u.cells;
        out[k].weight += u.weight;
    }
    out
}

/// The units of `units` that belong to `shard`, as `(dataset, tile)` pairs.
pub fn mine(units: &[Unit], shard: Shard) -> std::collections::HashSet<(String, String)> {
    units
        .iter()
        .zip(assign(units, shard.count))
        .filter(|(_, k)| *k == shard.index)
        .map(|(u, _)| (u.dataset.clone(), u.tile.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn units() -> Vec<Unit> {
        // Three datasets of different sizes and resampling factors, with edge tiles smaller
        // than the others, like real grids.
        let mut v = Vec::new();
        for (ds, w, h, win, factor) in
            [("plants", 1000, 700, 256, 4), ("cover", 300, 300, 128, 1), ("t", 50, 40, 64, 9)]
        {
            for r0 in (0..h).step_by(win) {
                for c0 in (0..w).step_by(win) {
                    let cells = (win.min(h - r0) * win.min(w - c0)) as u64;
                    v.push(Unit { dataset: ds.into(), tile: format!("r{r0}_c{c0}"), cells, weight: cells * factor });
                }
            }
        }
        v
    }

    #[test]
    fn parse_and_env() {
        assert_eq!(Shard::parse("0/4"), Ok(Shard { index: 0, count: 4 }));
        assert_eq!(Shard::parse(" 3 / 4 "), Ok(Shard { index: 3, count: 4 }));
        for bad in ["4/4", "1/0", "a/2", "1", "-1/2", ""] {
            assert!(matches!(Shard::parse(bad), Err(ShardError::Bad(_))), "{bad}");
        }
        let env = |k: &'static str, v: &'static str| move |n: &str| (n == k).then(|| v.to_string());
        assert_eq!(Shard::from_lookup(4, env("JOB_COMPLETION_INDEX", "2")), Ok(Shard { index: 2, count: 4 }));
        assert_eq!(Shard::from_lookup(4, env("AWS_BATCH_JOB_ARRAY_INDEX", "3")), Ok(Shard { index: 3, count: 4 }));
        assert!(matches!(Shard::from_lookup(4, env("JOB_COMPLETION_INDEX", "4")), Err(ShardError::BadIndex { .. })));
        assert_eq!(Shard::from_lookup(4, |_| None), Err(ShardError::NoIndex(4)));
        assert_eq!(Shard::from_lookup(0, |_| None), Err(ShardError::Zero));
        assert_eq!(Shard::from_args(None, None), Ok(None));
        assert_eq!(Shard::from_args(Some("1/2"), Some(9)), Ok(Some(Shard { index: 1, count: 2 })));
    }

    #[test]
    fn slurm_array() {
        let slurm = |vars: &'static [(&'static str, &'static str)]| {
            move |n: &str| vars.iter().find(|(k, _)| n == format!("SLURM_ARRAY_TASK_{k}")).map(|(_, v)| v.to_string())
        };
        // --array=0-3 for --shards 4, and a task resubmitted alone with --array=2.
        let full = slurm(&[("ID", "2"), ("MIN", "0"), ("MAX", "3"), ("COUNT", "4")]);
        assert_eq!(Shard::from_lookup(4, full), Ok(Shard { index: 2, count: 4 }));
        let rerun = slurm(&[("ID", "2"), ("MIN", "2"), ("MAX", "2"), ("COUNT", "1")]);
        assert_eq!(Shard::from_lookup(4, rerun), Ok(Shard { index: 2, count: 4 }));
        // Only the task id (an older Slurm).
        assert_eq!(Shard::from_lookup(4, slurm(&[("ID", "3")])), Ok(Shard { index: 3, count: 4 }));
        // 1-based --array=1-4: refused in every task, also in those whose id is a shard.
        for id in ["1", "4"] {
            let vars: &'static [(&'static str, &'static str)] = if id == "1" {
                &[("ID", "1"), ("MIN", "1"), ("MAX", "4"), ("COUNT", "4")]
            } else {
                &[("ID", "4"), ("MIN", "1"), ("MAX", "4"), ("COUNT", "4")]
            };
            let e = Shard::from_lookup(4, slurm(vars)).unwrap_err();
            let text = e.to_string();
            assert!(matches!(e, ShardError::SlurmArray { .. }), "{text}");
            assert!(text.contains("SLURM_ARRAY_TASK_MIN=1") && text.contains("--array=0-3"), "{text}");
        }
        // --array=0-7 for --shards 4; too many tasks; bad numbers.
        let e = Shard::from_lookup(4, slurm(&[("ID", "0"), ("MIN", "0"), ("MAX", "7"), ("COUNT", "8")])).unwrap_err();
        assert!(e.to_string().contains("task ids go up to 7, shards are 0 to 3"), "{e}");
        let e = Shard::from_lookup(4, slurm(&[("ID", "0"), ("MAX", "3"), ("COUNT", "5")])).unwrap_err();
        assert!(e.to_string().contains("5 tasks for 4 shards"), "{e}");
        let e = Shard::from_lookup(4, slurm(&[("ID", "0"), ("COUNT", "x")])).unwrap_err();
        assert!(matches!(e, ShardError::BadIndex { ref var, .. } if var == "SLURM_ARRAY_TASK_COUNT"), "{e}");
        // Kubernetes' and Batch's variables come first.
        let both = |n: &str| match n {
            "JOB_COMPLETION_INDEX" => Some("1".to_string()),
            "SLURM_ARRAY_TASK_ID" => Some("3".to_string()),
            _ => None,
        };
        assert_eq!(Shard::from_lookup(4, both), Ok(Shard { index: 1, count: 4 }));
        assert!(ShardError::NoIndex(4).to_string().contains("sbatch --array=0-3"));
    }

    #[test]
    fn disjoint_covering_balanced() {
        let u = units();
        let max_w = u.iter().map(|x| x.weight).max().unwrap();
        for n in [1, 2, 3, 4, 7, 16, 100] {
            let mut seen: HashMap<(String, String), usize> = HashMap::new();
            for k in 0..n {
                for key in mine(&u, Shard { index: k, count: n }) {
                    assert!(seen.insert(key.clone(), k).is_none(), "{key:?} in two shards (n = {n})");
                }
            }
            assert_eq!(seen.len(), u.len(), "every tile in some shard (n = {n})");
            let l = loads(&u, n);
            assert_eq!(l.iter().map(|s| s.tiles).sum::<usize>(), u.len());
            let (lo, hi) = (l.iter().map(|s| s.weight).min().unwrap(), l.iter().map(|s| s.weight).max().unwrap());
            if n <= u.len() {
                assert!(hi - lo <= max_w, "n = {n}: loads {lo}..{hi} differ by more than one tile ({max_w})");
            }
        }
    }

    #[test]
    fn independent_of_input_order() {
        let u = units();
        let mut rev = u.clone();
        rev.reverse();
        for n in [2, 5] {
            for k in 0..n {
                let s = Shard { index: k, count: n };
                assert_eq!(mine(&u, s), mine(&rev, s));
            }
        }
    }
}
