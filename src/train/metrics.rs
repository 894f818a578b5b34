//! Classification metrics: binary (from scores and 0/1 labels) and multi-class (from predicted and
//! true class indices).
//!
//! Conventions, the same everywhere in this module:
//! - A binary label is **positive when it is non-zero**.
//! - A score is predicted positive when `score >= threshold`; the default threshold is
//!   [`DEFAULT_THRESHOLD`] (0.5, for probabilities; pass 0.0 to [`binary_metrics_at`] for logits).
//! - A NaN score counts as the lowest possible score (−∞): predicted negative, ranked last.
//! - **No metric is ever NaN.** Where a value is undefined (a zero denominator), it is **0.0**:
//!   precision with no predicted positives, recall with no positives, specificity with no
//!   negatives, F1 when precision + recall = 0, MCC when any marginal is zero (as scikit-learn),
//!   AUPRC with no positives, and every metric on an empty input. The one exception is **AUROC,
//!   which is 0.5** (chance) when only one class is present, as ranking is then meaningless.
//! - AUROC is the Mann–Whitney statistic with ties counted as half (equal to the trapezoidal
//!   area under the ROC curve); AUPRC is average precision, step-wise without interpolation
//!   (scikit-learn's `average_precision_score`): `Σ (Rₖ − Rₖ₋₁) · Pₖ` over distinct thresholds.
//! - Multi-class MCC is Gorodkin's (2004) R_K statistic (scikit-learn's `matthews_corrcoef`);
//!   macro averages run over the classes present in the truth or the predictions (scikit-learn's
//!   default), and micro-F1 equals accuracy for single-label data.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Threshold on probabilities used by [`binary_metrics`].
pub const DEFAULT_THRESHOLD: f64 = 0.5;

/// `num / den`, or 0.0 when `den` is zero.
fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

/// A score as f64 for ranking: NaN becomes −∞ and −0.0 becomes 0.0.
fn clean(s: f64) -> f64 {
    if s.is_nan() {
        f64::NEG_INFINITY
    } else {
        s + 0.0
    }
}

fn check_len(a: usize, b: usize, what: &str) {
    assert_eq!(a, b, "metrics: {what} have {a} entries but labels have {b}");
}

/// Counts of a binary confusion matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Confusion {
    /// True positives.
    pub tp: u64,
    /// False positives.
    pub fp: u64,
    /// True negatives.
    pub tn: u64,
    /// False negatives.
    #[serde(rename = "fn")]
    pub fn_: u64,
}

impl Confusion {
    /// Count predictions `score >= threshold` against labels (non-zero = positive).
    ///
    /// # Panics
    /// If `scores` and `labels` differ in length.
    pub fn at<S: Copy + Into<f64>>(scores: &[S], labels: &[u32], threshold: f64) -> Self {
        check_len(scores.len(), labels.len(), "scores");
        let mut c = Confusion::default();
        for (&s, &y) in scores.iter().zip(labels) {
            c.add(clean(s.into()) >= threshold, y != 0);
        }
        c
    }

    /// Count one prediction.
    pub fn add(&mut self, predicted: bool, actual: bool) {
        match (predicted, actual) {
            (true, true) => self.tp += 1,
            (true, false) => self.fp += 1,
            (false, false) => self.tn += 1,
            (false, true) => self.fn_ += 1,
        }
    }

    /// Number of examples counted.
    pub fn total(&self) -> u64 {
        self.tp + self.fp + self.tn + self.fn_
    }

    /// (TP + TN) / n; 0 when empty.
    pub fn accuracy(&self) -> f64 {
        ratio((self.tp + self.tn) as f64, self.total() as f64)
    }

    /// TP / (TP + FP); 0 with no predicted positives.
    pub fn precision(&self) -> f64 {
        ratio(self.tp as f64, (self.tp + self.fp) as f64)
    }

    /// Recall (sensitivity), TP / (TP + FN); 0 with no positives.
    pub fn recall(&self) -> f64 {
        ratio(self.tp as f64, (self.tp + self.fn_) as f64)
    }

    /// Specificity, TN / (TN + FP); 0 with no negatives.
    pub fn specificity(&self) -> f64 {
        ratio(self.tn as f64, (self.tn + self.fp) as f64)
    }

    /// F1 = 2TP / (2TP + FP + FN); 0 when that denominator is zero.
    pub fn f1(&self) -> f64 {
        ratio(
            2.0 * self.tp as f64,
            (2 * self.tp + self.fp + self.fn_) as f64,
        )
    }

    /// Matthews correlation coefficient; 0 when any marginal is zero.
    pub fn mcc(&self) -> f64 {
        let (tp, fp, tn, fn_) = (
            self.tp as f64,
            self.fp as f64,
            self.tn as f64,
            self.fn_ as f64,
        );
        let den = ((tp + fp) * (tp + fn_) * (tn + fp) * (tn + fn_)).sqrt();
        ratio(tp * tn - fp * fn_, den).clamp(-1.0, 1.0)
    }
}

/// Binary classification metrics at one threshold, plus threshold-free AUROC and AUPRC.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BinaryMetrics {
    /// Number of examples.
    pub n: u64,
    /// Number of positive examples.
    pub positives: u64,
    /// Threshold used for the counts: predicted positive when `score >= threshold`.
    pub threshold: f64,
    /// True positives.
    pub tp: u64,
    /// False positives.
    pub fp: u64,
    /// True negatives.
    pub tn: u64,
    /// False negatives.
    #[serde(rename = "fn")]
    pub fn_: u64,
    /// (TP + TN) / n.
    pub accuracy: f64,
    /// TP / (TP + FP).
    pub precision: f64,
    /// Recall (sensitivity), TP / (TP + FN).
    pub recall: f64,
    /// TN / (TN + FP).
    pub specificity: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Matthews correlation coefficient.
    pub mcc: f64,
    /// Area under the ROC curve (ties count half).
    pub auroc: f64,
    /// Area under the precision-recall curve as average precision (step-wise).
    pub auprc: f64,
}

impl BinaryMetrics {
    /// The confusion counts.
    pub fn confusion(&self) -> Confusion {
        Confusion {
            tp: self.tp,
            fp: self.fp,
            tn: self.tn,
            fn_: self.fn_,
        }
    }
}

impl fmt::Display for BinaryMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "acc {:.4} prec {:.4} rec {:.4} spec {:.4} f1 {:.4} mcc {:.4} auroc {:.4} auprc {:.4}",
            self.accuracy,
            self.precision,
            self.recall,
            self.specificity,
            self.f1,
            self.mcc,
            self.auroc,
            self.auprc
        )
    }
}

/// Binary metrics of probabilities against labels at threshold [`DEFAULT_THRESHOLD`] (0.5).
///
/// # Panics
/// If `scores` and `labels` differ in length.
pub fn binary_metrics<S: Copy + Into<f64>>(scores: &[S], labels: &[u32]) -> BinaryMetrics {
    binary_metrics_at(scores, labels, DEFAULT_THRESHOLD)
}

/// Binary metrics of scores against labels, predicting positive when `score >= threshold`.
///
/// # Panics
/// If `scores` and `labels` differ in length.
pub fn binary_metrics_at<S: Copy + Into<f64>>(
    scores: &[S],
    labels: &[u32],
    threshold: f64,
) -> BinaryMetrics {
    let c = Confusion::at(scores, labels, threshold);
    let ranked = Ranked::new(scores, labels);
    BinaryMetrics {
        n: c.total(),
        positives: c.tp + c.fn_,
        threshold,
        tp: c.tp,
        fp: c.fp,
        tn: c.tn,
        fn_: c.fn_,
        accuracy: c.accuracy(),
        precision: c.precision(),
        recall: c.recall(),
        specificity: c.specificity(),
        f1: c.f1(),
        mcc: c.mcc(),
        auroc: ranked.auroc(),
        auprc: ranked.auprc(),
    }
}

/// Mean and sample standard deviation (n − 1 in the denominator; 0 for fewer than two values).
pub fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// Mean and sd over cross-validation folds of each figure in `keys` that `get` finds in the
/// folds' metric objects; figures no fold has are left out. Returns the (mean, sd) maps.
pub fn summarise_folds(
    folds: &[serde_json::Value],
    keys: &[&str],
    get: impl Fn(&serde_json::Value, &str) -> Option<f64>,
) -> (
    serde_json::Map<String, serde_json::Value>,
    serde_json::Map<String, serde_json::Value>,
) {
    let mut mean = serde_json::Map::new();
    let mut sd = serde_json::Map::new();
    for &k in keys {
        let v: Vec<f64> = folds.iter().filter_map(|m| get(m, k)).collect();
        if !v.is_empty() {
            let (mu, s) = mean_sd(&v);
            mean.insert(k.into(), serde_json::json!(mu));
            sd.insert(k.into(), serde_json::json!(s));
        }
    }
    (mean, sd)
}

/// The score threshold that maximises Youden's J = sensitivity + specificity − 1 on these
/// scores (predict positive when `score >= threshold`); a threshold between two distinct scores
/// is placed at their midpoint. [`DEFAULT_THRESHOLD`] when only one class is present.
///
/// # Panics
/// If `scores` and `labels` differ in length.
pub fn youden_threshold<S: Copy + Into<f64>>(scores: &[S], labels: &[u32]) -> f64 {
    let r = Ranked::new(scores, labels);
    if r.pos == 0 || r.neg == 0 {
        return DEFAULT_THRESHOLD;
    }
    // Cut below each run of equal scores in turn. J is compared exactly, as
    // J · pos · neg = tp · neg − fp · pos.
    let (pos, neg) = (r.pos as i128, r.neg as i128);
    let (mut tp, mut fp) = (0i128, 0i128);
    let (mut best_j, mut best) = (i128::MIN, DEFAULT_THRESHOLD);
    for (i, &(p, n)) in r.groups.iter().enumerate() {
        tp += p as i128;
        fp += n as i128;
        let j = tp * neg - fp * pos;
        if j > best_j {
            best_j = j;
            best = r.cut_below(i);
        }
    }
    best
}

/// The highest score threshold whose sensitivity (recall) on these scores is at least
/// `min_recall` (predict positive when `score >= threshold`): the cut below the group of equal
/// scores that first brings recall to `min_recall`, at the midpoint to the next lower score.
/// [`DEFAULT_THRESHOLD`] when only one class is present.
///
/// # Panics
/// If `scores` and `labels` differ in length.
pub fn recall_threshold<S: Copy + Into<f64>>(scores: &[S], labels: &[u32], min_recall: f64) -> f64 {
    let r = Ranked::new(scores, labels);
    if r.pos == 0 || r.neg == 0 {
        return DEFAULT_THRESHOLD;
    }
    // The number of positives that must score at or above the threshold (at least one).
    let need = ((min_recall * r.pos as f64 - 1e-9).ceil().max(1.0) as u64).min(r.pos);
    let mut tp = 0u64;
    for (i, &(p, _)) in r.groups.iter().enumerate() {
        tp += p;
        if tp >= need {
            return r.cut_below(i);
        }
    }
    // Not reached: `need <= pos`, so some group brings tp to it.
    r.cut_below(r.groups.len() - 1)
}

/// Area under the ROC curve (Mann–Whitney, ties half); 0.5 when only one class is present.
///
/// # Panics
/// If `scores` and `labels` differ in length.
pub fn auroc<S: Copy + Into<f64>>(scores: &[S], labels: &[u32]) -> f64 {
    Ranked::new(scores, labels).auroc()
}

/// Average precision (step-wise area under the precision-recall curve); 0 with no positives.
///
/// # Panics
/// If `scores` and `labels` differ in length.
pub fn auprc<S: Copy + Into<f64>>(scores: &[S], labels: &[u32]) -> f64 {
    Ranked::new(scores, labels).auprc()
}

/// Scores sorted descending (NaN lowest, −0.0 = 0.0), grouped into runs of equal score:
/// `(positives, negatives)` per run, then the totals of positives and negatives. The one ranking
/// behind AUROC, AUPRC and the ROC/PR curves of [`crate::train::plot`].
///
/// # Panics
/// If `scores` and `labels` differ in length.
pub fn ranked_groups<S: Copy + Into<f64>>(
    scores: &[S],
    labels: &[u32],
) -> (Vec<(u64, u64)>, u64, u64) {
    let r = Ranked::new(scores, labels);
    (r.groups, r.pos, r.neg)
}

/// Scores sorted descending, grouped into runs of equal score: (positives, negatives) per run.
struct Ranked {
    groups: Vec<(u64, u64)>,
    /// The score of each group, descending.
    values: Vec<f64>,
    pos: u64,
    neg: u64,
}

impl Ranked {
    fn new<S: Copy + Into<f64>>(scores: &[S], labels: &[u32]) -> Self {
        check_len(scores.len(), labels.len(), "scores");
        let mut v: Vec<(f64, bool)> = scores
            .iter()
            .zip(labels)
            .map(|(&s, &y)| (clean(s.into()), y != 0))
            .collect();
        v.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        let mut groups: Vec<(u64, u64)> = Vec::new();
        let mut values: Vec<f64> = Vec::new();
        for (s, y) in v {
            if values.last() != Some(&s) {
                groups.push((0, 0));
                values.push(s);
            }
            let g = groups.last_mut().expect("a group was just pushed");
            if y {
                g.0 += 1;
            } else {
                g.1 += 1;
            }
        }
        let pos = groups.iter().map(|g| g.0).sum();
        let neg = groups.iter().map(|g| g.1).sum();
        Ranked {
            groups,
            values,
            pos,
            neg,
        }
    }

    /// The threshold that cuts below group `i`: midway to the next lower score, if finite.
    fn cut_below(&self, i: usize) -> f64 {
        let here = self.values[i];
        match self.values.get(i + 1) {
            Some(&next) if next.is_finite() && here.is_finite() => 0.5 * (here + next),
            _ => here,
        }
    }

    fn auroc(&self) -> f64 {
        if self.pos == 0 || self.neg == 0 {
            return 0.5;
        }
        // Twice the Mann–Whitney U: each negative scores 2 per positive ranked above it and 1 per
        // positive tied with it. Exact in integers.
        let mut above = 0u128;
        let mut twice_u = 0u128;
        for &(p, n) in &self.groups {
            twice_u += u128::from(n) * (2 * above + u128::from(p));
            above += u128::from(p);
        }
        twice_u as f64 / (2.0 * self.pos as f64 * self.neg as f64)
    }

    fn auprc(&self) -> f64 {
        if self.pos == 0 {
            return 0.0;
        }
        let (mut tp, mut fp) = (0u64, 0u64);
        let mut ap = 0.0;
        for &(p, n) in &self.groups {
            tp += p;
            fp += n;
            if p > 0 {
                ap += (p as f64 / self.pos as f64) * (tp as f64 / (tp + fp) as f64);
            }
        }
        ap
    }
}

/// Precision, recall and F1 of one class (one-vs-rest).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// Correct predictions of this class / predictions of this class.
    pub precision: f64,
    /// Correct predictions of this class / true members of this class.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// True members of this class.
    pub support: u64,
}

/// Multi-class metrics from predicted and true class indices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiMetrics {
    /// Number of examples.
    pub n: u64,
    /// Number of classes (rows and columns of the confusion matrix).
    pub num_classes: usize,
    /// Confusion matrix, `confusion[true][predicted]`.
    pub confusion: Vec<Vec<u64>>,
    /// One-vs-rest metrics per class, indexed by class.
    pub per_class: Vec<ClassMetrics>,
    /// Fraction predicted correctly.
    pub accuracy: f64,
    /// Mean per-class precision over the classes present (in truth or predictions).
    pub macro_precision: f64,
    /// Mean per-class recall over the classes present.
    pub macro_recall: f64,
    /// Mean per-class F1 over the classes present.
    pub macro_f1: f64,
    /// F1 of the pooled counts (equals accuracy for single-label data).
    pub micro_f1: f64,
    /// Gorodkin's multi-class Matthews correlation coefficient.
    pub mcc: f64,
}

impl fmt::Display for MultiMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "acc {:.4} macro-f1 {:.4} micro-f1 {:.4} mcc {:.4}",
            self.accuracy, self.macro_f1, self.micro_f1, self.mcc
        )
    }
}

/// Multi-class metrics of predictions against true classes.
///
/// The matrix has `num_classes` rows, or more if a class index is larger.
///
/// # Panics
/// If `pred` and `truth` differ in length.
pub fn multi_metrics(pred: &[u32], truth: &[u32], num_classes: usize) -> MultiMetrics {
    check_len(pred.len(), truth.len(), "predictions");
    let k = pred
        .iter()
        .chain(truth)
        .map(|&c| c as usize + 1)
        .max()
        .unwrap_or(0)
        .max(num_classes);
    let mut confusion = vec![vec![0u64; k]; k];
    for (&p, &t) in pred.iter().zip(truth) {
        confusion[t as usize][p as usize] += 1;
    }
    let n = pred.len() as u64;
    let row: Vec<u64> = confusion.iter().map(|r| r.iter().sum()).collect();
    let col: Vec<u64> = (0..k)
        .map(|j| confusion.iter().map(|r| r[j]).sum())
        .collect();
    let correct: u64 = (0..k).map(|i| confusion[i][i]).sum();
    let per_class: Vec<ClassMetrics> = (0..k)
        .map(|i| {
            let c = Confusion {
                tp: confusion[i][i],
                fp: col[i] - confusion[i][i],
                fn_: row[i] - confusion[i][i],
                tn: 0,
            };
            ClassMetrics {
                precision: c.precision(),
                recall: c.recall(),
                f1: c.f1(),
                support: row[i],
            }
        })
        .collect();
    let present: Vec<usize> = (0..k).filter(|&i| row[i] + col[i] > 0).collect();
    let mean = |f: fn(&ClassMetrics) -> f64| {
        ratio(
            present.iter().map(|&i| f(&per_class[i])).sum::<f64>(),
            present.len() as f64,
        )
    };
    // Pooled counts: every error is one FP (of the predicted class) and one FN (of the true one).
    let errors = n - correct;
    let micro_f1 = ratio(2.0 * correct as f64, (2 * correct + 2 * errors) as f64);
    // Gorodkin: (c·s − Σ pₖtₖ) / √((s² − Σ pₖ²)(s² − Σ tₖ²)), c correct, s total,
    // pₖ predicted and tₖ true counts of class k.
    let (c, s) = (correct as f64, n as f64);
    let pt: f64 = (0..k).map(|i| col[i] as f64 * row[i] as f64).sum();
    let pp: f64 = col.iter().map(|&x| (x as f64).powi(2)).sum();
    let tt: f64 = row.iter().map(|&x| (x as f64).powi(2)).sum();
    let mcc = ratio(c * s - pt, ((s * s - pp) * (s * s - tt)).sqrt()).clamp(-1.0, 1.0);
    MultiMetrics {
        n,
        num_classes: k,
        accuracy: ratio(c, s),
        macro_precision: mean(|m| m.precision),
        macro_recall: mean(|m| m.recall),
        macro_f1: mean(|m| m.f1),
        micro_f1,
        mcc,
        confusion,
        per_class,
    }
}

/// Index of the largest score in each row of a row-major `[n, num_classes]` matrix.
///
/// Ties go to the lowest index; NaN counts as −∞. A trailing partial row is ignored.
pub fn argmax_rows<S: Copy + Into<f64>>(scores: &[S], num_classes: usize) -> Vec<u32> {
    if num_classes == 0 {
        return Vec::new();
    }
    scores
        .chunks_exact(num_classes)
        .map(|row| {
            let mut best = 0;
            let mut best_s = f64::NEG_INFINITY;
            for (j, &s) in row.iter().enumerate() {
                let s = clean(s.into());
                if s > best_s {
                    best = j;
                    best_s = s;
                }
            }
            best as u32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn hand_computed_binary() {
        // scores  0.9 0.8 0.7 0.6 0.55 0.4 0.3 0.2
        // labels   1   1   0   1   0    1   0   0
        // At 0.5: predicted positive = first five → TP 3 (0.9, 0.8, 0.6), FP 2 (0.7, 0.55),
        // FN 1 (0.4), TN 2 (0.3, 0.2).
        let s = [0.9, 0.8, 0.7, 0.6, 0.55, 0.4, 0.3, 0.2];
        let y = [1, 1, 0, 1, 0, 1, 0, 0];
        let m = binary_metrics(&s, &y);
        assert_eq!((m.tp, m.fp, m.tn, m.fn_), (3, 2, 2, 1));
        assert!(close(m.accuracy, 5.0 / 8.0)); // (3 + 2) / 8
        assert!(close(m.precision, 3.0 / 5.0)); // 3 / (3 + 2)
        assert!(close(m.recall, 3.0 / 4.0)); // 3 / (3 + 1)
        assert!(close(m.specificity, 2.0 / 4.0)); // 2 / (2 + 2)
        assert!(close(m.f1, 6.0 / 9.0)); // 2·3 / (2·3 + 2 + 1)
                                         // MCC = (3·2 − 2·1) / √(5·4·4·3) = 4 / √240
        assert!(close(m.mcc, 4.0 / 240f64.sqrt()));
        // AUROC: for each negative count positives above it:
        // neg 0.7 → 2, neg 0.55 → 3, neg 0.3 → 4, neg 0.2 → 4; total 13 of 16 pairs.
        assert!(close(m.auroc, 13.0 / 16.0));
        // AP: positives at ranks 1, 2, 4, 6 → precisions 1/1, 2/2, 3/4, 4/6; each step ΔR = 1/4.
        assert!(close(m.auprc, (1.0 + 1.0 + 0.75 + 4.0 / 6.0) / 4.0));
    }

    #[test]
    fn ties_count_half() {
        // All scores equal: AUROC 0.5; AP = prevalence (one threshold, P = 2/4, ΔR = 1).
        let m = binary_metrics(&[0.3f32; 4], &[1, 0, 1, 0]);
        assert!(close(m.auroc, 0.5));
        assert!(close(m.auprc, 0.5));
        // scores 0.8 0.5 0.5 0.1, labels 1 1 0 0: the negative at 0.5 has one positive above
        // and one tied (1.5); the negative at 0.1 has two above (2) → 3.5 / 4.
        // AP: thresholds 0.8 (R 1/2, P 1), 0.5 (R 1, P 2/3) → 0.5 + 0.5·2/3.
        let s = [0.8, 0.5, 0.5, 0.1];
        let y = [1, 1, 0, 0];
        assert!(close(auroc(&s, &y), 3.5 / 4.0));
        assert!(close(auprc(&s, &y), 0.5 + 1.0 / 3.0));
    }

    #[test]
    fn edge_cases_are_defined() {
        let empty: [f64; 0] = [];
        let m = binary_metrics(&empty, &[]);
        for v in [
            m.accuracy,
            m.precision,
            m.recall,
            m.specificity,
            m.f1,
            m.mcc,
            m.auprc,
        ] {
            assert_eq!(v, 0.0);
        }
        assert_eq!(m.auroc, 0.5);
        // All negative, all predicted negative: accuracy 1, everything else undefined → 0.
        let m = binary_metrics(&[0.1, 0.2], &[0, 0]);
        assert_eq!(
            (m.accuracy, m.precision, m.recall, m.f1, m.mcc),
            (1.0, 0.0, 0.0, 0.0, 0.0)
        );
        assert_eq!((m.specificity, m.auroc, m.auprc), (1.0, 0.5, 0.0));
        // All positive, all predicted positive.
        let m = binary_metrics(&[0.9, 0.6], &[1, 1]);
        assert_eq!(
            (m.accuracy, m.precision, m.recall, m.f1, m.mcc),
            (1.0, 1.0, 1.0, 1.0, 0.0)
        );
        assert_eq!((m.specificity, m.auroc, m.auprc), (0.0, 0.5, 1.0));
        // NaN ranks last and is predicted negative.
        let m = binary_metrics(&[f64::NAN, 0.9], &[0, 1]);
        assert_eq!((m.tp, m.tn, m.auroc, m.auprc), (1, 1, 1.0, 1.0));
        let m = binary_metrics(&[f64::NAN, 0.1], &[1, 0]);
        assert_eq!(m.auroc, 0.0);
        // Perfectly inverted.
        let m = binary_metrics(&[0.9, 0.1], &[0, 1]);
        assert_eq!((m.mcc, m.auroc), (-1.0, 0.0));
    }

    #[test]
    fn hand_computed_multi() {
        // truth 0 0 0 1 1 2 2 2 2, pred 0 0 1 1 2 2 2 2 0
        // confusion (true × pred): [2 1 0] [0 1 1] [1 0 3]
        let t = [0, 0, 0, 1, 1, 2, 2, 2, 2];
        let p = [0, 0, 1, 1, 2, 2, 2, 2, 0];
        let m = multi_metrics(&p, &t, 3);
        assert_eq!(
            m.confusion,
            vec![vec![2, 1, 0], vec![0, 1, 1], vec![1, 0, 3]]
        );
        // class 0: P 2/3, R 2/3, F1 2/3; class 1: P 1/2, R 1/2, F1 1/2; class 2: P 3/4, R 3/4.
        assert!(close(m.per_class[0].f1, 2.0 / 3.0));
        assert!(close(m.per_class[1].f1, 0.5));
        assert!(close(m.per_class[2].f1, 0.75));
        assert!(close(m.macro_f1, (2.0 / 3.0 + 0.5 + 0.75) / 3.0));
        assert!(close(m.accuracy, 6.0 / 9.0));
        assert!(close(m.micro_f1, 6.0 / 9.0));
        // Gorodkin: c = 6, s = 9, p = (3, 2, 4), t = (3, 2, 4):
        // (6·9 − (9 + 4 + 16)) / √((81 − 29)(81 − 29)) = 25 / 52.
        assert!(close(m.mcc, 25.0 / 52.0));
        // Binary data through the multi-class path gives the binary MCC.
        let s = [0.9, 0.8, 0.7, 0.6, 0.55, 0.4, 0.3, 0.2];
        let y = [1, 1, 0, 1, 0, 1, 0, 0];
        let pred: Vec<u32> = s.iter().map(|&x| u32::from(x >= 0.5)).collect();
        assert!(close(
            multi_metrics(&pred, &y, 2).mcc,
            binary_metrics(&s, &y).mcc
        ));
    }

    #[test]
    fn multi_edge_cases_and_argmax() {
        let m = multi_metrics(&[], &[], 3);
        assert_eq!(
            (m.accuracy, m.macro_f1, m.micro_f1, m.mcc),
            (0.0, 0.0, 0.0, 0.0)
        );
        // A single class everywhere: accuracy 1, MCC undefined → 0.
        let m = multi_metrics(&[1, 1], &[1, 1], 3);
        assert_eq!((m.accuracy, m.macro_f1, m.mcc), (1.0, 1.0, 0.0));
        // A class index beyond num_classes grows the matrix instead of panicking.
        assert_eq!(multi_metrics(&[4], &[0], 2).num_classes, 5);
        let probs = [0.1f32, 0.7, 0.2, 0.5, 0.5, 0.0, f32::NAN, 0.0, 0.1];
        assert_eq!(argmax_rows(&probs, 3), vec![1, 0, 2]);
    }

    #[test]
    fn serialises_with_plain_names() {
        let m = binary_metrics(&[0.9, 0.1], &[1, 0]);
        let v: serde_json::Value = serde_json::to_value(m).unwrap();
        for k in [
            "accuracy",
            "precision",
            "recall",
            "specificity",
            "f1",
            "mcc",
            "auroc",
            "auprc",
            "tp",
            "fn",
        ] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
        let back: BinaryMetrics = serde_json::from_value(v).unwrap();
        assert_eq!(back, m);
    }
}
