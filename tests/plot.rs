//! SVG writers and the ROC / precision-recall curve helpers.

use genolm::train::metrics::{auprc, auroc};
use genolm::train::plot::{line_chart, pr_curve, roc_curve, roc_pr_svg, Series};

/// Well-formed enough: one `<svg>` root, balanced `<g>` groups, no stray `<` or `&` in the text.
fn assert_svg(svg: &str) {
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
    assert!(svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<svg").count(), 1);
    assert_eq!(svg.matches("</svg>").count(), 1);
    let opened = svg.matches("<g>").count() + svg.matches("<g ").count();
    assert_eq!(opened, svg.matches("</g>").count(), "unbalanced <g>");
    assert_eq!(
        svg.matches("<text").count(),
        svg.matches("</text>").count(),
        "unbalanced <text>"
    );
    for (i, piece) in svg.split('&').enumerate().skip(1) {
        let ok = ["amp;", "lt;", "gt;", "quot;", "apos;"]
            .iter()
            .any(|e| piece.starts_with(e));
        assert!(ok, "bare & at piece {i}: {}", &piece[..piece.len().min(20)]);
    }
    // Every '<' opens a tag: it is followed by a letter, '/' or '!' (no raw '<' in text).
    for piece in svg.split('<').skip(1) {
        let c = piece.chars().next().unwrap_or(' ');
        assert!(
            c.is_ascii_alphabetic() || c == '/' || c == '!',
            "stray <{piece:.20}"
        );
    }
    for bad in [
        "\"NaN", "NaN,", ",NaN", "NaN\"", "inf,", ",inf", "inf\"", "\"inf", "-inf",
    ] {
        assert!(!svg.contains(bad), "non-finite number in SVG ({bad})");
    }
}

fn trapezoid(pts: &[(f64, f64)]) -> f64 {
    pts.windows(2)
        .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
        .sum()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[test]
fn line_chart_is_well_formed() {
    let loss: Vec<(f64, f64)> = (0..200)
        .map(|i| (i as f64, 0.7 * (-(i as f64) / 60.0).exp() + 0.1))
        .collect();
    let val: Vec<(f64, f64)> = (0..=10)
        .map(|i| (20.0 * i as f64, 0.75 * (-(i as f64) / 3.0).exp() + 0.15))
        .collect();
    let svg = line_chart(
        "Training loss",
        "step",
        "loss",
        &[Series::new("train", loss), Series::new("validation", val)],
    );
    assert_svg(&svg);
    assert_eq!(svg.matches("<polyline").count(), 2);
    assert!(svg.contains(">train</text>") && svg.contains(">validation</text>"));
    assert!(
        svg.contains("#1f77b4") && svg.contains("#ff7f0e"),
        "distinct colours"
    );
    assert!(svg.contains(">Training loss</text>"));
}

#[test]
fn line_chart_degenerate_inputs() {
    let cases: Vec<Vec<Series>> = vec![
        vec![],
        vec![Series::new("empty", vec![])],
        vec![Series::new("one", vec![(3.0, 4.0)])],
        vec![Series::new(
            "flat",
            vec![(0.0, 2.0), (1.0, 2.0), (2.0, 2.0)],
        )],
        vec![Series::new("zero", vec![(0.0, 0.0), (0.0, 0.0)])],
        vec![Series::new(
            "nan",
            vec![
                (0.0, f64::NAN),
                (1.0, 1.0),
                (f64::INFINITY, 2.0),
                (2.0, f64::NEG_INFINITY),
                (3.0, 0.5),
            ],
        )],
        vec![Series::new("all nan", vec![(f64::NAN, f64::NAN)])],
        vec![Series::new(
            "huge",
            vec![(-f64::MAX, f64::MAX), (f64::MAX, -f64::MAX)],
        )],
        vec![Series::new("tiny", vec![(0.0, 1e-9), (1.0, 3e-9)])],
        (0..25)
            .map(|i| Series::new(format!("s{i}"), vec![(0.0, i as f64), (1.0, i as f64)]))
            .collect(),
    ];
    for series in &cases {
        let svg = line_chart("t", "x", "y", series);
        assert_svg(&svg);
    }
    let single = line_chart("", "", "", &cases[2]);
    assert!(
        single.contains("<circle"),
        "a single point is drawn as a marker"
    );
    let skipped = line_chart("", "", "", &cases[5]);
    // Only the two finite points remain.
    let poly = skipped.split("<polyline points=\"").nth(1).unwrap();
    let poly = &poly[..poly.find('"').unwrap()];
    assert_eq!(poly.split(' ').count(), 2, "{poly}");
}

#[test]
fn text_is_escaped() {
    let svg = line_chart(
        "a<b & c>d",
        "x \"q\"",
        "y 'p'",
        &[Series::new("<script>&amp;", vec![(0.0, 0.0), (1.0, 1.0)])],
    );
    assert_svg(&svg);
    assert!(svg.contains("a&lt;b &amp; c&gt;d"));
    assert!(svg.contains("&lt;script&gt;&amp;amp;"));
    assert!(svg.contains("x &quot;q&quot;") && svg.contains("y &apos;p&apos;"));
    assert!(!svg.contains("<script"));
    let ctl = line_chart("bell\u{7}", "", "", &[]);
    assert!(!ctl.contains('\u{7}'));
}

#[test]
fn roc_endpoints_and_shapes() {
    let perfect = roc_curve(&[0.9, 0.8, 0.2, 0.1], &[1, 1, 0, 0]);
    assert_eq!(
        perfect,
        [(0.0, 0.0), (0.0, 0.5), (0.0, 1.0), (0.5, 1.0), (1.0, 1.0)]
    );
    assert!(perfect.contains(&(0.0, 1.0)));

    let reversed = roc_curve(&[0.9, 0.8, 0.2, 0.1], &[0, 0, 1, 1]);
    assert_eq!(reversed.first(), Some(&(0.0, 0.0)));
    assert_eq!(reversed.last(), Some(&(1.0, 1.0)));
    let first_tp = reversed.iter().find(|p| p.1 > 0.0).unwrap();
    assert_eq!(first_tp.0, 1.0, "reaches FPR 1 before any true positive");
    assert!(reversed.contains(&(1.0, 0.0)));

    // All scores tied: a single diagonal step.
    assert_eq!(
        roc_curve(&[0.5; 4], &[1, 0, 1, 0]),
        [(0.0, 0.0), (1.0, 1.0)]
    );
    // A tie between one positive and one negative in the middle: a diagonal segment.
    let tied = roc_curve(&[0.9, 0.5, 0.5, 0.1], &[1, 1, 0, 0]);
    assert_eq!(tied, [(0.0, 0.0), (0.0, 0.5), (0.5, 1.0), (1.0, 1.0)]);

    // One class only, or nothing: the chance diagonal.
    assert_eq!(roc_curve(&[0.1, 0.2], &[1, 1]), [(0.0, 0.0), (1.0, 1.0)]);
    assert_eq!(roc_curve(&[], &[]), [(0.0, 0.0), (1.0, 1.0)]);
    // NaN ranks last, as in the metrics.
    assert_eq!(
        roc_curve(&[f64::NAN, 0.3], &[0, 1]),
        [(0.0, 0.0), (0.0, 1.0), (1.0, 1.0)]
    );
}

#[test]
fn pr_curve_hand_checked() {
    // Ranked: + - + -. Precision after each: 1, 1/2, 2/3, 1/2; recall: 1/2, 1/2, 1, 1.
    let pr = pr_curve(&[0.9, 0.8, 0.7, 0.6], &[1, 0, 1, 0]);
    let want = [
        (0.0, 1.0),
        (0.5, 1.0),
        (0.5, 0.5),
        (0.5, 2.0 / 3.0),
        (1.0, 2.0 / 3.0),
        (1.0, 0.5),
    ];
    assert_eq!(pr.len(), want.len(), "{pr:?}");
    for (g, w) in pr.iter().zip(&want) {
        assert!(close(g.0, w.0) && close(g.1, w.1), "{pr:?}");
    }
    // Area = average precision = 1/2 · 1 + 1/2 · 2/3.
    assert!(close(trapezoid(&pr), 0.5 + 1.0 / 3.0));

    // Ties: one step for the tied group.
    let tied = pr_curve(&[0.5, 0.5, 0.1], &[1, 0, 1]);
    assert_eq!(
        tied,
        [(0.0, 0.5), (0.5, 0.5), (0.5, 2.0 / 3.0), (1.0, 2.0 / 3.0)]
    );
    assert!(pr_curve(&[0.1, 0.2], &[0, 0]).is_empty());
    assert!(pr_curve(&[], &[]).is_empty());
}

#[test]
fn curve_areas_match_metrics() {
    // A small deterministic generator; scores rounded to 0.1 so there are many ties.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    for n in [1, 2, 5, 30, 200] {
        let labels: Vec<u32> = (0..n).map(|_| u32::from(next() < 0.4)).collect();
        let scores: Vec<f64> = labels
            .iter()
            .map(|&y| ((next() + 0.3 * f64::from(y)) * 10.0).round() / 10.0)
            .collect();
        let roc = roc_curve(&scores, &labels);
        assert!(close(trapezoid(&roc), auroc(&scores, &labels)), "n={n}");
        let pr = pr_curve(&scores, &labels);
        assert!(close(trapezoid(&pr), auprc(&scores, &labels)), "n={n}");
        assert!(roc.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        let svg = roc_pr_svg(
            &scores,
            &labels,
            auroc(&scores, &labels),
            auprc(&scores, &labels),
        );
        assert_svg(&svg);
    }
}

#[test]
fn roc_pr_panels() {
    let scores = [0.9, 0.8, 0.7, 0.6, 0.55, 0.4, 0.3, 0.1];
    let labels = [1, 1, 0, 1, 0, 0, 1, 0];
    let svg = roc_pr_svg(
        &scores,
        &labels,
        auroc(&scores, &labels),
        auprc(&scores, &labels),
    );
    assert_svg(&svg);
    assert!(svg.contains("AUROC = 0.7500"), "{svg}");
    assert!(svg.contains("AUPRC = "));
    assert!(svg.contains("positive rate (0.500)"));
    // Curve + diagonal, curve + baseline.
    assert_eq!(svg.matches("<polyline").count(), 4);
    // Degenerate inputs still render.
    assert_svg(&roc_pr_svg(&[], &[], 0.5, 0.0));
    assert_svg(&roc_pr_svg(&[0.3], &[0], 0.5, 0.0));
    assert_svg(&roc_pr_svg(&[f64::NAN, 0.2], &[1, 0], f64::NAN, 0.5));
}

#[test]
#[should_panic(expected = "labels")]
fn length_mismatch_panics() {
    roc_curve(&[0.1, 0.2], &[1]);
}
