//! Shards: a run split into `N` parts that separate processes (on separate machines) compute,
//! then merge. strata, not the engine that launches it, decides what each shard holds, from
//! the input alone, so a rerun or another engine (Ray, a Slurm array) makes the same shards.

use crate::hash::path_sha256;
use crate::manifest::{Manifest, ManifestError, StageRun};
use crate::rundir::{RunDir, MANIFEST};
use crate::stage::is_recorded;
use crate::{Stage, StageError, StageName, StageSummary};
use std::fmt;
use std::str::FromStr;

/// Shard `index` (from 0) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    pub fn new(index: u32, count: u32) -> Result<Self, String> {
        if count == 0 || index >= count {
            return Err(format!("shard {index}/{count}: the index must be below the count (shards are numbered from 0)"));
        }
        Ok(Self { index, count })
    }

    /// Every shard of `count`, in order.
    pub fn all(count: u32) -> impl Iterator<Item = Shard> {
        (0..count).map(move |index| Shard { index, count })
    }

    /// The part of `0..total` this shard owns: `count` ranges as equal as whole numbers allow.
    pub fn range(&self, total: u64) -> std::ops::Range<u64> {
        let at = |i: u32| (total as u128 * i as u128 / self.count as u128) as u64;
        at(self.index)..at(self.index + 1)
    }

    /// The name of the shard's folder, `part-IIIII-of-NNNNN`.
    pub fn part_name(&self) -> String {
        format!("part-{:05}-of-{:05}", self.index, self.count)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    /// `I/N`, e.g. `0/4` for the first of four.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a shard: write I/N, e.g. 0/4 for the first of four (shards are numbered from 0)");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (i, n) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        Self::new(i, n)
    }
}

/// The run directories of a run's shards, in shard order, with their manifests (read once):
/// what a merge reads.
#[derive(Debug, Clone)]
pub struct Parts {
    pub dirs: Vec<RunDir>,
    /// Each part's manifest; `None` where the part has not run.
    manifests: Vec<Option<Manifest>>,
}

impl Parts {
    /// The `count` shards of `run`.
    pub fn load(run: &RunDir, count: u32) -> Result<Self, ManifestError> {
        let dirs: Vec<RunDir> = Shard::all(count).map(|s| run.part(s)).collect();
        let manifests = dirs.iter().map(|dir| Manifest::load(&dir.path(MANIFEST))).collect::<Result<_, _>>()?;
        Ok(Self { dirs, manifests })
    }

    /// Each shard with its part's folder and manifest (`None`: the part has not run).
    pub fn each(&self) -> impl Iterator<Item = (Shard, &RunDir, Option<&Manifest>)> {
        Shard::all(self.dirs.len() as u32).zip(&self.dirs).zip(&self.manifests).map(|((shard, dir), m)| (shard, dir, m.as_ref()))
    }

    /// What `stage` recorded in each part's manifest, in shard order; an error names the first
    /// part where it has not run.
    pub fn records(&self, stage: StageName) -> Result<Vec<(StageRun, StageSummary)>, StageError> {
        self.each()
            .map(|(shard, dir, manifest)| {
                let record = manifest.and_then(|m| Some((m.stages.run(stage)?.clone(), m.stages.summary(stage)?)));
                record.ok_or_else(|| format!("shard {shard}: stage `{}` has not run in `{}`", stage.as_str(), dir.root().display()).into())
            })
            .collect()
    }

    /// The first shard whose part has not run `stage` on its present inputs (`is_recorded`),
    /// or none when every part has: what a reduce step asks before it takes the parts' work.
    pub fn first_not_recorded(&self, stage: &dyn Stage) -> Option<Shard> {
        let recorded = |dir: &RunDir, manifest: Option<&Manifest>| manifest.is_some_and(|m| is_recorded(dir, m, stage).unwrap_or(false));
        self.each().find(|&(_, dir, manifest)| !recorded(dir, manifest)).map(|(shard, _, _)| shard)
    }

    /// Checks that the files `stage` recorded in shard `index`'s part still hold what it wrote.
    /// A merge calls it just before it reads them, so each part is read from disk once (the
    /// check fills the page cache the merge then reads from).
    pub fn verify(&self, index: usize, stage: StageName) -> Result<(), StageError> {
        let (shard, dir, manifest) = self.each().nth(index).ok_or("no such shard")?;
        let recorded = manifest.and_then(|m| m.stages.run(stage)).map(|r| &r.outputs);
        for (rel, hash) in recorded.into_iter().flatten() {
            let path = dir.path(rel);
            if path_sha256(&path).ok().as_ref() != Some(hash) {
                return Err(format!(
                    "shard {shard}: `{}` is not the file its `{name}` stage wrote (changed or damaged since); rerun `strata {name} --shard {shard}` with the run's recipe",
                    path.display(),
                    name = stage.as_str(),
                )
                .into());
            }
        }
        Ok(())
    }

    /// A merge's own fingerprint: each part's fingerprint and output hashes for `stage`.
    pub fn fingerprint(&self, stage: StageName) -> Result<serde_json::Value, StageError> {
        let records: Vec<_> = self.records(stage)?.into_iter().map(|(run, _)| serde_json::json!([run.fingerprint, run.outputs])).collect();
        Ok(serde_json::Value::Array(records))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_cover_a_range_without_gaps() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, count: 4 }));
        assert!("4/4".parse::<Shard>().is_err() && "1-4".parse::<Shard>().is_err() && "0/0".parse::<Shard>().is_err());
        assert_eq!(Shard { index: 2, count: 4 }.part_name(), "part-00002-of-00004");
        for total in [0, 1, 3, 10, 1_000_003] {
            let ranges: Vec<_> = Shard::all(4).map(|s| s.range(total)).collect();
            assert_eq!((ranges[0].start, ranges[3].end), (0, total));
            assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
        }
    }
}
