//! Metrics against values computed independently with scikit-learn 1.9.1 (once, by hand; the
//! tests do not need Python). The data were drawn with numpy's default_rng(12345): scores are
//! rounded to one decimal so that there are many ties.

use genolm::train::metrics::{
    auprc, auroc, binary_metrics, binary_metrics_at, multi_metrics, recall_threshold,
    youden_threshold,
};

const Y: [u32; 60] = [
    1, 0, 1, 0, 0, 1, 1, 1, 1, 0, 1, 0, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1,
    0, 1, 0, 0, 0, 1, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1,
];
const S: [f64; 60] = [
    0.9, 0.5, 0.5, 0.0, 0.0, 0.9, 0.9, 0.6, 0.4, 0.3, 0.8, 0.2, 1.0, 0.7, 0.2, 0.0, 0.3, 1.0, 0.8,
    0.8, 0.9, 0.3, 0.9, 0.9, 0.9, 0.6, 0.3, 0.0, 0.3, 0.0, 0.2, 0.9, 0.1, 0.8, 0.0, 0.0, 0.4, 0.5,
    0.9, 0.0, 0.5, 0.0, 0.3, 0.4, 0.5, 0.2, 0.7, 0.2, 0.0, 0.3, 0.7, 0.6, 0.0, 0.5, 0.1, 0.3, 0.0,
    0.6, 0.4, 1.0,
];

const T: [u32; 50] = [
    1, 0, 1, 0, 3, 3, 3, 3, 2, 1, 2, 1, 1, 1, 2, 3, 0, 0, 1, 1, 1, 0, 0, 0, 2, 3, 1, 0, 1, 2, 3, 1,
    0, 2, 0, 1, 0, 1, 0, 1, 1, 0, 1, 1, 0, 3, 3, 3, 0, 0,
];
const P: [u32; 50] = [
    1, 0, 0, 3, 3, 3, 3, 3, 2, 1, 2, 3, 1, 1, 2, 3, 1, 2, 1, 0, 1, 1, 2, 0, 3, 3, 1, 0, 2, 2, 3, 0,
    0, 2, 0, 0, 2, 1, 0, 1, 1, 0, 1, 1, 2, 2, 1, 1, 1, 0,
];

fn assert_close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() < 1e-12,
        "{what}: got {got}, scikit-learn {want}"
    );
}

#[test]
fn binary_matches_sklearn() {
    // accuracy_score, precision_score, recall_score, recall_score(pos_label=0), f1_score,
    // matthews_corrcoef on (S >= t), and roc_auc_score, average_precision_score on S.
    let m = binary_metrics(&S, &Y);
    assert_close(m.accuracy, 0.9166666666666666, "accuracy");
    assert_close(m.precision, 0.8620689655172413, "precision");
    assert_close(m.recall, 0.9615384615384616, "recall");
    assert_close(m.specificity, 0.8823529411764706, "specificity");
    assert_close(m.f1, 0.9090909090909091, "f1");
    assert_close(m.mcc, 0.836821537267039, "mcc");
    assert_close(m.auroc, 0.9739819004524887, "auroc");
    assert_close(m.auprc, 0.9565393048782933, "auprc");
    assert_eq!((m.n, m.positives), (60, 26));

    let m = binary_metrics_at(&S, &Y, 0.3);
    assert_close(m.accuracy, 0.75, "accuracy@0.3");
    assert_close(m.precision, 0.6341463414634146, "precision@0.3");
    assert_close(m.recall, 1.0, "recall@0.3");
    assert_close(m.specificity, 0.5588235294117647, "specificity@0.3");
    assert_close(m.f1, 0.7761194029850746, "f1@0.3");
    assert_close(m.mcc, 0.5952947981463835, "mcc@0.3");

    // f32 scores give the same ranks.
    let s32: Vec<f32> = S.iter().map(|&x| x as f32).collect();
    assert_close(auroc(&s32, &Y), 0.9739819004524887, "auroc f32");
    assert_close(auprc(&s32, &Y), 0.9565393048782933, "auprc f32");
}

#[test]
fn ranking_metrics_ignore_monotone_transforms() {
    let logits: Vec<f64> = S
        .iter()
        .map(|&p| (p + 0.01).ln() - (1.01 - p).ln())
        .collect();
    assert_close(auroc(&logits, &Y), auroc(&S, &Y), "auroc");
    assert_close(auprc(&logits, &Y), auprc(&S, &Y), "auprc");
}

#[test]
fn multiclass_matches_sklearn() {
    let m = multi_metrics(&P, &T, 4);
    assert_eq!(
        m.confusion,
        vec![
            vec![8, 3, 4, 1],
            vec![4, 12, 1, 1],
            vec![0, 0, 5, 1],
            vec![0, 2, 1, 7]
        ]
    );
    assert_close(m.accuracy, 0.64, "accuracy");
    assert_close(m.macro_f1, 0.636344537815126, "macro f1");
    assert_close(m.micro_f1, 0.64, "micro f1");
    assert_close(m.mcc, 0.5157777168438927, "mcc");
    assert_close(m.macro_precision, 0.6317736185383245, "macro precision");
    assert_close(m.macro_recall, 0.675, "macro recall");
    let f1 = [
        0.5714285714285714,
        0.6857142857142857,
        0.5882352941176471,
        0.7,
    ];
    let p = [
        0.6666666666666666,
        0.7058823529411765,
        0.45454545454545453,
        0.7,
    ];
    let r = [0.5, 0.6666666666666666, 0.8333333333333334, 0.7];
    for c in 0..4 {
        assert_close(m.per_class[c].f1, f1[c], "per-class f1");
        assert_close(m.per_class[c].precision, p[c], "per-class precision");
        assert_close(m.per_class[c].recall, r[c], "per-class recall");
    }
    assert_eq!(
        m.per_class.iter().map(|c| c.support).collect::<Vec<_>>(),
        vec![16, 18, 6, 10]
    );
}

#[test]
fn macro_average_skips_absent_classes() {
    // Class 2 is only predicted (F1 0, counted, as in scikit-learn); class 3 never occurs and is
    // left out of the macro average. scikit-learn: f1_score(average='macro') 0.48888…,
    // matthews_corrcoef 0.45226701686664544.
    let t = [0, 0, 1, 1, 0, 1];
    let p = [0, 2, 1, 1, 0, 0];
    let m = multi_metrics(&p, &t, 4);
    assert_close(m.macro_f1, 0.48888888888888893, "macro f1");
    assert_close(m.mcc, 0.45226701686664544, "mcc");
}

#[test]
fn no_metric_is_nan() {
    let cases: [(&[f64], &[u32]); 6] = [
        (&[], &[]),
        (&[0.2], &[0]),
        (&[0.7], &[1]),
        (&[f64::NAN, f64::NAN], &[0, 1]),
        (&[f64::INFINITY, f64::NEG_INFINITY], &[1, 0]),
        (&[0.5, 0.5, 0.5], &[1, 1, 0]),
    ];
    for (s, y) in cases {
        let m = binary_metrics(s, y);
        let all = [
            m.accuracy,
            m.precision,
            m.recall,
            m.specificity,
            m.f1,
            m.mcc,
            m.auroc,
            m.auprc,
        ];
        assert!(all.iter().all(|v| v.is_finite()), "{s:?} {y:?}: {m:?}");
    }
    let m = multi_metrics(&[0, 0], &[0, 0], 2);
    assert!([m.accuracy, m.macro_f1, m.micro_f1, m.mcc]
        .iter()
        .all(|v| v.is_finite()));
}

#[test]
fn youden_threshold_hand_computed() {
    // Cuts after 0.9, 0.8, 0.7, ...: J = 1/3, 2/3, 1/3, 2/3, 1/3, 0; the first maximum wins and
    // the threshold sits midway between 0.8 and 0.7.
    let s = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4];
    let y = [1, 1, 0, 1, 0, 0];
    assert!((youden_threshold(&s, &y) - 0.75).abs() < 1e-12);
    // A cut never splits tied scores.
    let s = [0.9, 0.5, 0.5, 0.1];
    let y = [1, 1, 0, 0];
    assert!((youden_threshold(&s, &y) - 0.7).abs() < 1e-12);
    // One class only: the default threshold.
    assert_eq!(youden_threshold(&[0.2, 0.9], &[1, 1]), 0.5);
}

#[test]
fn recall_threshold_hand_computed() {
    // Positives at 0.9, 0.8, 0.6 (three): recall 2/3 needs the cut below 0.8, midway to 0.7.
    let s = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4];
    let y = [1, 1, 0, 1, 0, 0];
    assert!((recall_threshold(&s, &y, 0.6) - 0.75).abs() < 1e-12);
    assert!((recall_threshold(&s, &y, 2.0 / 3.0) - 0.75).abs() < 1e-12);
    // Any more than 2/3 needs all three positives: the cut below 0.6, midway to 0.5.
    assert!((recall_threshold(&s, &y, 0.7) - 0.55).abs() < 1e-12);
    assert!((recall_threshold(&s, &y, 1.0) - 0.55).abs() < 1e-12);
    // A tiny target still keeps one positive.
    assert!((recall_threshold(&s, &y, 0.01) - 0.85).abs() < 1e-12);
    // A cut never splits tied scores.
    let s = [0.9, 0.5, 0.5, 0.1];
    let y = [1, 1, 0, 0];
    assert!((recall_threshold(&s, &y, 1.0) - 0.3).abs() < 1e-12);
    // The lowest score: the threshold is that score.
    assert_eq!(recall_threshold(&[0.9, 0.2, 0.1], &[0, 0, 1], 1.0), 0.1);
    // One class only: the default threshold.
    assert_eq!(recall_threshold(&[0.2, 0.9], &[1, 1], 0.9), 0.5);
}

#[test]
fn recall_threshold_is_the_highest_cut_that_keeps_the_recall() {
    let recall = |t: f64| binary_metrics_at(&S, &Y, t).recall;
    for target in [0.1, 0.25, 0.5, 0.75, 0.9, 1.0] {
        let t = recall_threshold(&S, &Y, target);
        assert!(
            recall(t) >= target - 1e-12,
            "{target}: recall {} at {t}",
            recall(t)
        );
        // A cut just above the lowest score kept loses the recall.
        let lowest = S
            .iter()
            .copied()
            .filter(|&c| c >= t)
            .fold(f64::INFINITY, f64::min);
        assert!(
            recall(lowest + 1e-9) < target,
            "{target}: a cut above {lowest} keeps it"
        );
    }
}

#[test]
fn youden_threshold_is_at_least_as_good_as_any_cut() {
    let j = |t: f64| {
        let m = binary_metrics_at(&S, &Y, t);
        m.recall + m.specificity - 1.0
    };
    let best = j(youden_threshold(&S, &Y));
    for &t in &S {
        assert!(
            best >= j(t) - 1e-12,
            "cut at {t} beats the chosen threshold"
        );
    }
}
