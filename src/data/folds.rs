//! Train/test splits as record indices: stratified k-fold, stratified holdout, and given folds.
//!
//! All splits are deterministic: the same labels and seed give the same split, on any machine
//! (ChaCha8 seeded with [`rand::SeedableRng::seed_from_u64`]). Indices in every split are sorted
//! ascending.
//!
//! Stratification: each class's records are shuffled, then dealt round-robin to the folds, the
//! deal continuing from class to class (classes in label order). So every fold holds each class
//! to within one record of every other fold, and fold sizes differ by at most one.

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::data::classify::LabeledSet;
use crate::error::{Error, Result};

/// One train/test split of record indices (each sorted ascending, disjoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Indices of the training records.
    pub train: Vec<usize>,
    /// Indices of the test (or validation) records.
    pub test: Vec<usize>,
}

/// Record indices per label, in label order, each shuffled by `rng`.
fn shuffled_classes(labels: &[u32], rng: &mut ChaCha8Rng) -> Vec<Vec<usize>> {
    let mut by_class: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, &l) in labels.iter().enumerate() {
        by_class.entry(l).or_default().push(i);
    }
    by_class
        .into_values()
        .map(|mut idx| {
            idx.shuffle(rng);
            idx
        })
        .collect()
}

/// Splits from a fold number per record: fold `f` is the test set of split `f`.
fn splits_from_assignment(fold_of: &[usize], k: usize) -> Vec<Split> {
    (0..k)
        .map(|f| {
            let (test, train): (Vec<usize>, Vec<usize>) =
                (0..fold_of.len()).partition(|&i| fold_of[i] == f);
            Split { train, test }
        })
        .collect()
}

/// Stratified k-fold cross-validation: `k` splits whose test sets partition the records.
///
/// Errors when `k < 2` or there are fewer records than folds. A class with fewer than `k`
/// records is missing from some test folds.
pub fn stratified_kfold(labels: &[u32], k: usize, seed: u64) -> Result<Vec<Split>> {
    if k < 2 {
        return Err(Error::input(format!(
            "k-fold cross-validation needs k >= 2, got {k}"
        )));
    }
    if labels.len() < k {
        return Err(Error::input(format!(
            "cannot split {} records into {k} folds",
            labels.len()
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut fold_of = vec![0; labels.len()];
    let mut next = 0;
    for class in shuffled_classes(labels, &mut rng) {
        for i in class {
            fold_of[i] = next;
            next = (next + 1) % k;
        }
    }
    Ok(splits_from_assignment(&fold_of, k))
}

/// Stratified holdout: `round(valid_fraction · n)` records (at least one, leaving at least one
/// for training) go to `test`, apportioned to classes by largest remainder.
pub fn stratified_holdout(labels: &[u32], valid_fraction: f64, seed: u64) -> Result<Split> {
    if !(valid_fraction > 0.0 && valid_fraction < 1.0) {
        return Err(Error::input(format!(
            "validation fraction must be between 0 and 1 (exclusive), got {valid_fraction}"
        )));
    }
    let n = labels.len();
    if n < 2 {
        return Err(Error::input(format!(
            "cannot hold out a validation set from {n} record(s)"
        )));
    }
    let total = ((valid_fraction * n as f64).round() as usize).clamp(1, n - 1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let classes = shuffled_classes(labels, &mut rng);
    // Hamilton apportionment of `total` over the classes by size.
    let exact: Vec<f64> = classes
        .iter()
        .map(|c| total as f64 * c.len() as f64 / n as f64)
        .collect();
    let mut quota: Vec<usize> = exact.iter().map(|&e| e.floor() as usize).collect();
    let mut order: Vec<usize> = (0..classes.len()).collect();
    order.sort_by(|&a, &b| {
        let fa = exact[a] - quota[a] as f64;
        let fb = exact[b] - quota[b] as f64;
        fb.total_cmp(&fa).then(a.cmp(&b))
    });
    let short = total - quota.iter().sum::<usize>();
    for &c in order.iter().take(short) {
        quota[c] += 1;
    }
    let mut test = Vec::with_capacity(total);
    let mut train = Vec::with_capacity(n - total);
    for (class, q) in classes.into_iter().zip(quota) {
        test.extend_from_slice(&class[..q]);
        train.extend_from_slice(&class[q..]);
    }
    test.sort_unstable();
    train.sort_unstable();
    Ok(Split { train, test })
}

/// Given folds: one split per distinct fold id (ascending), testing on that fold and training
/// on all others. Errors with fewer than two folds.
pub fn given_folds(fold_ids: &[u32]) -> Result<Vec<Split>> {
    let ids: BTreeMap<u32, usize> = {
        let mut ids: Vec<u32> = fold_ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter().enumerate().map(|(i, id)| (id, i)).collect()
    };
    if ids.len() < 2 {
        return Err(Error::input(format!(
            "given folds need at least two folds, found {}",
            ids.len()
        )));
    }
    let fold_of: Vec<usize> = fold_ids.iter().map(|id| ids[id]).collect();
    Ok(splits_from_assignment(&fold_of, ids.len()))
}

/// Given folds from a set's input files: each file (SPEC part) is one fold, as the EPDnew
/// `fold_{1..5}.csv.gz` files loaded together (train on four, test on the fifth).
pub fn by_file(set: &LabeledSet) -> Result<Vec<Split>> {
    let ids: Vec<u32> = set.origins.iter().map(|o| o.file).collect();
    given_folds(&ids).map_err(|e| Error::input(format!("{}: {e}", set.source)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kfold_small_exact() {
        // 7 of class 0, 3 of class 1, k = 3: class 0 deals 3/2/2, class 1 continues at fold 1.
        let labels = [0, 0, 0, 0, 0, 0, 0, 1, 1, 1];
        let splits = stratified_kfold(&labels, 3, 1).unwrap();
        let sizes: Vec<usize> = splits.iter().map(|s| s.test.len()).collect();
        assert_eq!(sizes, vec![4, 3, 3]);
        assert!(stratified_kfold(&labels, 1, 1).is_err());
        assert!(stratified_kfold(&labels[..2], 3, 1).is_err());
    }

    #[test]
    fn holdout_apportions() {
        let labels: Vec<u32> = (0..100).map(|i| u32::from(i % 10 < 3)).collect();
        let s = stratified_holdout(&labels, 0.2, 7).unwrap();
        assert_eq!(s.test.len(), 20);
        assert_eq!(s.test.iter().filter(|&&i| labels[i] == 1).count(), 6);
        assert_eq!(stratified_holdout(&[0, 1], 0.01, 0).unwrap().test.len(), 1);
        assert_eq!(stratified_holdout(&[0, 1], 0.99, 0).unwrap().train.len(), 1);
        for bad in [0.0, 1.0, f64::NAN, -0.5] {
            assert!(stratified_holdout(&labels, bad, 0).is_err());
        }
    }

    #[test]
    fn given_folds_by_id() {
        let s = given_folds(&[5, 1, 5, 3]).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].test, vec![1]);
        assert_eq!(s[2].test, vec![0, 2]);
        assert_eq!(s[2].train, vec![1, 3]);
        assert!(given_folds(&[2, 2]).is_err());
    }
}
