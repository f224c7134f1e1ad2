//! `--partition k/n`: split a suite into n shards (for a CI matrix) so that
//! the shards are disjoint and together run every scenario exactly once.

use std::str::FromStr;

use sha2::Digest;

/// How scenarios are assigned to shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Round-robin over the scenarios sorted by name: shards differ in size by at most one.
    Count,
    /// By a hash of the name: a scenario stays in its shard when others are added or removed.
    Hash,
}

/// Shard `index` (1-based) of `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub strategy: Strategy,
    pub index: usize,
    pub total: usize,
}

impl FromStr for Partition {
    type Err = String;

    /// `k/n`, `count:k/n` or `hash:k/n`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (strategy, shard) = match text.split_once(':') {
            Some(("count", shard)) => (Strategy::Count, shard),
            Some(("hash", shard)) => (Strategy::Hash, shard),
            Some((other, _)) => {
                return Err(format!(
                    "unknown partition strategy `{other}` (use `count` or `hash`)"
                ));
            }
            None => (Strategy::Count, text),
        };
        let invalid = || format!("`{text}` is not a partition such as `1/3` or `hash:2/4`");
        let (index, total) = shard.split_once('/').ok_or_else(invalid)?;
        let index: usize = index.trim().parse().map_err(|_| invalid())?;
        let total: usize = total.trim().parse().map_err(|_| invalid())?;
        if total == 0 || index == 0 || index > total {
            return Err(format!(
                "`{text}`: the shard must be between 1 and the number of shards"
            ));
        }
        Ok(Partition {
            strategy,
            index,
            total,
        })
    }
}

impl Partition {
    /// Keep the items of this shard; `name` gives each item's scenario name.
    pub fn select<T>(&self, items: Vec<T>, name: impl Fn(&T) -> &str) -> Vec<T> {
        match self.strategy {
            Strategy::Count => {
                let mut names: Vec<&str> = items.iter().map(&name).collect();
                names.sort_unstable();
                let chosen: Vec<String> = names
                    .iter()
                    .enumerate()
                    .filter(|(position, _)| position % self.total == self.index - 1)
                    .map(|(_, name)| (*name).to_owned())
                    .collect();
                items
                    .into_iter()
                    .filter(|item| chosen.iter().any(|chosen| chosen == name(item)))
                    .collect()
            }
            Strategy::Hash => items
                .into_iter()
                .filter(|item| {
                    let digest = sha2::Sha256::digest(name(item).as_bytes());
                    let value =
                        u64::from_be_bytes(digest[..8].try_into().expect("a sha256 has 8 bytes"));
                    value % self.total as u64 == (self.index - 1) as u64
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        (0..23)
            .map(|index| format!("scenario-{index:02}"))
            .collect()
    }

    #[test]
    fn parses_and_rejects() {
        assert_eq!(
            "2/3".parse(),
            Ok(Partition {
                strategy: Strategy::Count,
                index: 2,
                total: 3
            })
        );
        assert_eq!(
            "hash:1/4".parse(),
            Ok(Partition {
                strategy: Strategy::Hash,
                index: 1,
                total: 4
            })
        );
        assert!("0/3".parse::<Partition>().is_err());
        assert!("4/3".parse::<Partition>().is_err());
        assert!("x:1/2".parse::<Partition>().is_err());
        assert!("1-2".parse::<Partition>().is_err());
    }

    #[test]
    fn shards_are_disjoint_and_cover_everything() {
        for strategy in ["count", "hash"] {
            for total in 1..=5 {
                let mut union: Vec<String> = Vec::new();
                let mut sizes = Vec::new();
                for index in 1..=total {
                    let partition: Partition =
                        format!("{strategy}:{index}/{total}").parse().unwrap();
                    let shard = partition.select(names(), |name| name.as_str());
                    sizes.push(shard.len());
                    union.extend(shard);
                }
                union.sort();
                assert_eq!(union, names(), "{strategy} {total}");
                if strategy == "count" {
                    assert!(
                        sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
                        "{sizes:?}"
                    );
                }
            }
        }
    }
}
