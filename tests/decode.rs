//! Gene-model decoder (`infer::decode`) and GFF3 writer (`io::gffwrite`).
//!
//! Synthetic genes with real codons and splice sites are painted into label tracks
//! (`io::labels::LabelTracks`), turned into probabilities and decoded back; decoded genes are
//! written as GFF3, read back with `io::gff` and checked with `gt gff3validator` when installed.
//! The real-data test decodes perfect probabilities from the A. thaliana 1 % reference.

use std::process::Command;

use genolm::infer::decode::{decode, DecodeConfig, Mode, PredictedGene};
use genolm::io::gff::{self, CdsPart, Gene, Interval, Strand, Transcript};
use genolm::io::gffwrite::{fill_phases, write_gff3};
use genolm::io::labels::{LabelTracks, NUM_CLASSES};
use genolm::seq::revcomp;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BASES: &[u8; 4] = b"ACGT";

fn random_seq(r: &mut ChaCha8Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| BASES[r.random_range(0..4)]).collect()
}

fn random_codon(r: &mut ChaCha8Rng) -> [u8; 3] {
    loop {
        let c = [
            BASES[r.random_range(0..4)],
            BASES[r.random_range(0..4)],
            BASES[r.random_range(0..4)],
        ];
        if !matches!(&c, b"TAA" | b"TAG" | b"TGA") {
            return c;
        }
    }
}

/// One gene to plant: UTR lengths, CDS exon lengths (5′→3′, summing to a multiple of 3),
/// intron lengths, and codons forced at chosen CDS offsets (to split `T|GG`, `TA|C`, ...).
struct Plan {
    at: usize,
    minus: bool,
    utr5: usize,
    utr3: usize,
    cds_exons: Vec<usize>,
    introns: Vec<usize>,
    forced: Vec<(usize, [u8; 3])>,
    start: [u8; 3],
}

impl Plan {
    fn new(at: usize, minus: bool, cds_exons: &[usize], introns: &[usize]) -> Self {
        Plan {
            at,
            minus,
            utr5: 40,
            utr3: 60,
            cds_exons: cds_exons.to_vec(),
            introns: introns.to_vec(),
            forced: Vec::new(),
            start: *b"ATG",
        }
    }
}

/// Write the planned gene into `seq` and return its model (forward coordinates).
fn plant(r: &mut ChaCha8Rng, seq: &mut [u8], seqid: &str, p: &Plan) -> Gene {
    let cds_len: usize = p.cds_exons.iter().sum();
    assert_eq!(cds_len % 3, 0);
    let mut cds = p.start.to_vec();
    while cds.len() < cds_len - 3 {
        cds.extend_from_slice(&random_codon(r));
    }
    cds.extend_from_slice(b"TGA");
    for (off, codon) in &p.forced {
        cds[*off..off + 3].copy_from_slice(codon);
    }
    // Oriented gene: utr5, exon, intron, exon, ..., utr3; record intervals in oriented coords.
    let mut o = random_seq(r, p.utr5);
    let mut exons = Vec::new();
    let mut cds_iv = Vec::new();
    let mut k = 0;
    let mut exon_start = 0;
    for (x, &len) in p.cds_exons.iter().enumerate() {
        let s = o.len();
        o.extend_from_slice(&cds[k..k + len]);
        k += len;
        cds_iv.push((s, o.len()));
        if x + 1 < p.cds_exons.len() {
            exons.push((exon_start, o.len()));
            let il = p.introns[x];
            let mut intron = b"GT".to_vec();
            intron.extend(random_seq(r, il - 4));
            intron.extend_from_slice(b"AG");
            o.extend(intron);
            exon_start = o.len();
        }
    }
    let cds_end = o.len();
    o.extend(random_seq(r, p.utr3));
    exons.push((exon_start, o.len()));
    let total = o.len();
    let to_fwd = |(a, b): (usize, usize)| {
        if p.minus {
            Interval {
                start: p.at + total - b,
                end: p.at + total - a,
            }
        } else {
            Interval {
                start: p.at + a,
                end: p.at + b,
            }
        }
    };
    let placed = if p.minus { revcomp(&o) } else { o };
    seq[p.at..p.at + total].copy_from_slice(&placed);
    let fwd = |v: Vec<(usize, usize)>| {
        let mut x: Vec<Interval> = v.into_iter().map(to_fwd).collect();
        x.sort();
        x
    };
    let strand = if p.minus { Strand::Minus } else { Strand::Plus };
    let utr5: Vec<(usize, usize)> = if p.utr5 > 0 {
        vec![(0, p.utr5)]
    } else {
        vec![]
    };
    let utr3: Vec<(usize, usize)> = if p.utr3 > 0 {
        vec![(cds_end, total)]
    } else {
        vec![]
    };
    let span = to_fwd((0, total));
    let mut t = Transcript {
        id: "t".into(),
        kind: "mRNA".into(),
        implicit: false,
        strand,
        span,
        exons: fwd(exons),
        cds: fwd(cds_iv)
            .into_iter()
            .map(|iv| CdsPart { iv, phase: None })
            .collect(),
        utr5: fwd(utr5),
        utr3: fwd(utr3),
        line: 0,
    };
    fill_phases(&mut t);
    Gene {
        id: "g".into(),
        name: None,
        seqid: seqid.into(),
        strand,
        span,
        kind: "gene".into(),
        transcripts: vec![t],
        line: 0,
    }
}

/// Probabilities from label tracks: `hit` on the true class, the rest spread evenly.
fn probs(track: &[u8], hit: f32) -> Vec<f32> {
    let rest = (1.0 - hit) / (NUM_CLASSES as f32 - 1.0);
    let mut p = vec![rest; track.len() * NUM_CLASSES];
    for (i, &c) in track.iter().enumerate() {
        p[i * NUM_CLASSES + usize::from(c)] = hit;
    }
    p
}

/// The structure that must match: strand, span, exons, CDS (with phases), UTRs.
fn shape(g: &Gene) -> (Strand, Interval, Transcript) {
    let mut t = g.transcripts[0].clone();
    t.id.clear();
    t.line = 0;
    (g.strand, g.span, t)
}

fn assert_same(decoded: &[PredictedGene], expected: &[Gene]) {
    let mut exp: Vec<_> = expected.iter().map(shape).collect();
    exp.sort_by_key(|x| (x.1, x.0.is_minus()));
    let got: Vec<_> = decoded.iter().map(|p| shape(&p.gene)).collect();
    assert_eq!(got.len(), exp.len(), "gene count: {got:#?}");
    for (g, e) in got.iter().zip(&exp) {
        assert_eq!(g, e);
    }
    for p in decoded {
        assert!(p.score > 0.5 && p.score <= 1.0, "score {}", p.score);
    }
}

fn run_case(len: usize, plans: &[Plan], cfg: &DecodeConfig, hit: f32, seed: u64) {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let mut seq = random_seq(&mut r, len);
    let genes: Vec<Gene> = plans
        .iter()
        .map(|p| plant(&mut r, &mut seq, "s1", p))
        .collect();
    let tracks = LabelTracks::from_genes(len, &genes);
    let out = decode(
        "s1",
        0,
        &seq,
        &probs(&tracks.plus, hit),
        &probs(&tracks.minus, hit),
        cfg,
    )
    .unwrap();
    assert_same(&out, &genes);
}

#[test]
fn single_exon_gene_decodes_exactly() {
    let plans = [Plan::new(300, false, &[300], &[])];
    run_case(1200, &plans, &DecodeConfig::default(), 0.9, 1);
}

#[test]
fn spliced_gene_all_phases_decodes_exactly() {
    let mut p = Plan::new(200, false, &[98, 101, 100, 100], &[80, 25, 150]);
    // Introns after 98 (phase 2), 199 (phase 1), 299 (phase 2).
    p.forced = vec![(96, *b"TAC"), (198, *b"TGG"), (297, *b"TGG")];
    let g = {
        let mut r = ChaCha8Rng::seed_from_u64(0);
        let mut s = vec![b'A'; 2000];
        plant(&mut r, &mut s, "s1", &p)
    };
    let phases: Vec<u8> = g.transcripts[0]
        .cds
        .iter()
        .map(|c| c.phase.unwrap())
        .collect();
    assert_eq!(phases, vec![0, 1, 2, 1], "test plan covers phases");
    run_case(1500, &[p], &DecodeConfig::default(), 0.9, 2);
}

#[test]
fn minus_strand_spliced_gene_decodes_exactly() {
    let mut p = Plan::new(150, true, &[98, 101, 100, 100], &[80, 25, 150]);
    p.forced = vec![(96, *b"TAC"), (198, *b"TGG"), (297, *b"TGG")];
    run_case(1500, &[p], &DecodeConfig::default(), 0.9, 3);
}

#[test]
fn two_genes_both_strands_decode_exactly() {
    let plans = [
        Plan::new(100, false, &[150, 90], &[60]),
        Plan::new(900, true, &[120, 60, 90], &[40, 70]),
        Plan::new(1800, false, &[210], &[]),
    ];
    run_case(2600, &plans, &DecodeConfig::default(), 0.9, 4);
}

#[test]
fn prokaryote_mode_decodes_operon_like_genes() {
    let mut a = Plan::new(50, false, &[300], &[]);
    a.utr5 = 0;
    a.utr3 = 0;
    let mut b = Plan::new(400, false, &[450], &[]);
    b.utr5 = 0;
    b.utr3 = 0;
    b.start = *b"GTG";
    let mut c = Plan::new(1000, true, &[240], &[]);
    c.utr5 = 0;
    c.utr3 = 0;
    run_case(1400, &[a, b, c], &DecodeConfig::prokaryote(), 0.9, 5);
    // Without introns a spliced gene cannot be decoded as spliced.
    let mut r = ChaCha8Rng::seed_from_u64(6);
    let mut seq = random_seq(&mut r, 1500);
    let g = plant(
        &mut r,
        &mut seq,
        "s1",
        &Plan::new(200, false, &[150, 150], &[100]),
    );
    let t = LabelTracks::from_genes(1500, [&g]);
    let cfg = DecodeConfig {
        mode: Mode::Prokaryote,
        ..DecodeConfig::default()
    };
    let out = decode(
        "s1",
        0,
        &seq,
        &probs(&t.plus, 0.9),
        &probs(&t.minus, 0.9),
        &cfg,
    )
    .unwrap();
    assert!(out.iter().all(|p| p.gene.transcripts[0].exons.len() == 1));
}

#[test]
fn offset_shifts_coordinates() {
    let mut r = ChaCha8Rng::seed_from_u64(7);
    let mut seq = random_seq(&mut r, 1000);
    let g = plant(
        &mut r,
        &mut seq,
        "s1",
        &Plan::new(100, true, &[120, 180], &[50]),
    );
    let t = LabelTracks::from_genes(1000, [&g]);
    let a = decode(
        "s1",
        0,
        &seq,
        &probs(&t.plus, 0.9),
        &probs(&t.minus, 0.9),
        &DecodeConfig::default(),
    )
    .unwrap();
    let b = decode(
        "s1",
        5000,
        &seq,
        &probs(&t.plus, 0.9),
        &probs(&t.minus, 0.9),
        &DecodeConfig::default(),
    )
    .unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].gene.span.start, a[0].gene.span.start + 5000);
    assert_eq!(
        b[0].gene.transcripts[0].cds[0].iv.end,
        a[0].gene.transcripts[0].cds[0].iv.end + 5000
    );
}

#[test]
fn noisy_probabilities_still_decode_exactly() {
    // Each base: 50 % on the true class, the rest random; 3 % of bases get a random wrong class
    // as the most likely one.
    let mut r = ChaCha8Rng::seed_from_u64(8);
    let len = 4000;
    let mut seq = random_seq(&mut r, len);
    let plans = [
        Plan::new(200, false, &[150, 99, 111], &[70, 90]),
        Plan::new(1500, true, &[240, 120], &[200]),
        Plan::new(2800, false, &[330], &[]),
    ];
    let genes: Vec<Gene> = plans
        .iter()
        .map(|p| plant(&mut r, &mut seq, "s1", p))
        .collect();
    let tracks = LabelTracks::from_genes(len, &genes);
    let mut noisy = |track: &[u8]| {
        let mut p = vec![0f32; track.len() * NUM_CLASSES];
        for (i, &c) in track.iter().enumerate() {
            let row = &mut p[i * NUM_CLASSES..(i + 1) * NUM_CLASSES];
            let mut s = 0.0;
            for x in row.iter_mut() {
                *x = r.random::<f32>();
                s += *x;
            }
            for x in row.iter_mut() {
                *x *= 0.5 / s;
            }
            let top = if r.random::<f32>() < 0.03 {
                (usize::from(c) + r.random_range(1..NUM_CLASSES)) % NUM_CLASSES
            } else {
                usize::from(c)
            };
            row[top] += 0.5;
        }
        p
    };
    let (pp, pm) = (noisy(&tracks.plus), noisy(&tracks.minus));
    let out = decode("s1", 0, &seq, &pp, &pm, &DecodeConfig::default()).unwrap();
    // Coding structure is pinned by codons and splice sites; UTR ends (no signal) may move.
    assert_eq!(out.len(), genes.len());
    let mut exp: Vec<&Gene> = genes.iter().collect();
    exp.sort_by_key(|g| g.span);
    for (p, g) in out.iter().zip(exp) {
        let (a, b) = (&p.gene.transcripts[0], &g.transcripts[0]);
        assert_eq!(a.strand, b.strand);
        assert_eq!(a.cds, b.cds);
        assert!(
            p.gene.span.start.abs_diff(g.span.start) <= 10,
            "{:?} vs {:?}",
            p.gene.span,
            g.span
        );
        assert!(
            p.gene.span.end.abs_diff(g.span.end) <= 10,
            "{:?} vs {:?}",
            p.gene.span,
            g.span
        );
    }
}

/// Check the grammar of every decoded gene against the sequence.
fn check_grammar(seq: &[u8], p: &PredictedGene, cfg: &DecodeConfig) -> Result<(), String> {
    let t = &p.gene.transcripts[0];
    let minus = t.strand.is_minus();
    let orient = |iv: &Interval| {
        let s = seq[iv.start..iv.end].to_vec();
        if minus {
            revcomp(&s)
        } else {
            s
        }
    };
    let cds = t.cds_in_order();
    let spliced: Vec<u8> = cds.iter().flat_map(|c| orient(&c.iv)).collect();
    if spliced.len() % 3 != 0 || spliced.len() < cfg.min_cds {
        return Err(format!("CDS length {}", spliced.len()));
    }
    let starts: &[&[u8]] = if cfg.alt_starts {
        &[b"ATG", b"GTG", b"TTG"]
    } else {
        &[b"ATG"]
    };
    if !starts.contains(&&spliced[..3]) {
        return Err("no start codon".into());
    }
    for (k, c) in spliced.chunks(3).enumerate() {
        let stop = matches!(c, b"TAA" | b"TAG" | b"TGA");
        if stop != (k + 1 == spliced.len() / 3) {
            return Err(format!("stop codon misplaced at codon {k}"));
        }
    }
    let mut before = 0;
    for c in &cds {
        if c.phase != Some(((3 - before % 3) % 3) as u8) {
            return Err("bad phase".into());
        }
        before += c.iv.len();
    }
    for w in t.exons.windows(2) {
        let intron = orient(&Interval {
            start: w[0].end,
            end: w[1].start,
        });
        if intron.len() < cfg.min_intron || !intron.starts_with(b"GT") || !intron.ends_with(b"AG") {
            return Err(format!("bad intron {:?}", String::from_utf8_lossy(&intron)));
        }
    }
    if t.exons.iter().any(|e| e.len() < cfg.min_exon) {
        return Err("short exon".into());
    }
    let utr_only = |e: &&Interval| {
        !t.cds
            .iter()
            .any(|c| c.iv.start < e.end && e.start < c.iv.end)
    };
    if cfg.mode == Mode::Eukaryote
        && t.exons
            .iter()
            .filter(utr_only)
            .any(|e| e.len() < cfg.min_exon)
    {
        return Err("short UTR-only exon".into());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]
    /// Random sequence, random blocky probabilities: whatever is decoded obeys the grammar.
    #[test]
    fn decoded_genes_obey_grammar(seed in 0u64..1_000_000, prok in any::<bool>()) {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        let len = 3000;
        let seq = random_seq(&mut r, len);
        let mut blocky = || {
            let mut p = vec![0f32; len * NUM_CLASSES];
            let mut i = 0;
            while i < len {
                let run = r.random_range(5..200).min(len - i);
                let mut w = [0f32; NUM_CLASSES];
                for x in &mut w {
                    *x = r.random::<f32>().powi(3);
                }
                w[2] += 0.3; // favour CDS so that genes appear
                let s: f32 = w.iter().sum();
                for k in i..i + run {
                    for c in 0..NUM_CLASSES {
                        p[k * NUM_CLASSES + c] = w[c] / s;
                    }
                }
                i += run;
            }
            p
        };
        let (pp, pm) = (blocky(), blocky());
        let cfg = if prok {
            DecodeConfig { min_cds: 30, ..DecodeConfig::prokaryote() }
        } else {
            DecodeConfig {
                min_cds: 30,
                min_exon: 10,
                gene_penalty: 2.0,
                intron_penalty: 1.0,
                ..DecodeConfig::default()
            }
        };
        let out = decode("s", 0, &seq, &pp, &pm, &cfg).unwrap();
        for p in &out {
            if let Err(e) = check_grammar(&seq, p, &cfg) {
                prop_assert!(false, "{e}: {:?}", p.gene);
            }
        }
    }
}

#[test]
fn grammar_property_finds_genes() {
    // The property test is only meaningful if decoding random input yields genes.
    let mut r = ChaCha8Rng::seed_from_u64(11);
    let len = 20000;
    let seq = random_seq(&mut r, len);
    let mut p = vec![0f32; len * NUM_CLASSES];
    for i in 0..len {
        p[i * NUM_CLASSES + 2] = 0.6;
        p[i * NUM_CLASSES + 3] = 0.3;
        p[i * NUM_CLASSES] = 0.1;
    }
    let cfg = DecodeConfig {
        min_cds: 30,
        ..DecodeConfig::default()
    };
    let out = decode("s", 0, &seq, &p, &p, &cfg).unwrap();
    assert!(out.len() > 5, "{} genes", out.len());
    assert!(out.iter().any(|g| g.gene.transcripts[0].exons.len() > 1));
    for g in &out {
        check_grammar(&seq, g, &cfg).unwrap();
    }
}

#[test]
fn bad_input_is_an_error() {
    let seq = b"ACGTACGT";
    let ok = vec![0.2f32; seq.len() * NUM_CLASSES];
    let short = vec![0.2f32; 5];
    let cfg = DecodeConfig::default();
    let e = decode("s", 0, seq, &short, &ok, &cfg).unwrap_err();
    assert!(e.to_string().contains("plus-strand"), "{e}");
    let bad = DecodeConfig {
        min_intron: 2,
        ..DecodeConfig::default()
    };
    assert!(decode("s", 0, seq, &ok, &ok, &bad).is_err());
    assert!(decode("s", 0, b"", &[], &[], &cfg).unwrap().is_empty());
}

fn gff_text(genes: &[Gene], scores: &[f64], len: usize) -> String {
    let mut buf = Vec::new();
    write_gff3(
        &mut buf,
        "genolm",
        &[("s1".to_string(), len)],
        genes,
        Some(scores),
    )
    .unwrap();
    String::from_utf8(buf).unwrap()
}

fn gt_available() -> bool {
    Command::new("gt")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn written_gff3_round_trips_and_validates() {
    let mut r = ChaCha8Rng::seed_from_u64(9);
    let len = 3000;
    let mut seq = random_seq(&mut r, len);
    let plans = [
        Plan::new(100, false, &[150, 90], &[60]),
        Plan::new(900, true, &[120, 60, 90], &[40, 70]),
        Plan::new(1800, false, &[210], &[]),
    ];
    let genes: Vec<Gene> = plans
        .iter()
        .map(|p| plant(&mut r, &mut seq, "s1", p))
        .collect();
    let t = LabelTracks::from_genes(len, &genes);
    let out = decode(
        "s1",
        0,
        &seq,
        &probs(&t.plus, 0.9),
        &probs(&t.minus, 0.9),
        &DecodeConfig::default(),
    )
    .unwrap();
    let decoded: Vec<Gene> = out.iter().map(|p| p.gene.clone()).collect();
    let scores: Vec<f64> = out.iter().map(|p| p.score).collect();
    let text = gff_text(&decoded, &scores, len);
    assert!(text.starts_with("##gff-version 3\n##sequence-region s1 1 3000\n"));
    assert!(text.contains("\tfive_prime_UTR\t") && text.contains("\tthree_prime_UTR\t"));
    let back = gff::parse_str(&text, "written").unwrap();
    assert!(back.warnings.is_empty(), "{:?}", back.warnings);
    assert_eq!(back.genes.len(), decoded.len());
    for (a, b) in back.genes.iter().zip(&decoded) {
        assert_eq!(a.id, b.id);
        assert_eq!(a.span, b.span);
        assert_eq!(a.strand, b.strand);
        let (ta, tb) = (&a.transcripts[0], &b.transcripts[0]);
        assert_eq!(ta.id, tb.id);
        assert_eq!(ta.exons, tb.exons);
        assert_eq!(ta.cds, tb.cds);
        assert_eq!(ta.utr5, tb.utr5);
        assert_eq!(ta.utr3, tb.utr3);
    }
    // Out-of-range genes and wrong score counts are errors.
    let mut buf = Vec::new();
    assert!(write_gff3(&mut buf, "x", &[("s1".to_string(), 500)], &decoded, None).is_err());
    assert!(write_gff3(
        &mut buf,
        "x",
        &[("other".to_string(), 5000)],
        &decoded,
        None
    )
    .is_err());
    assert!(write_gff3(&mut buf, "x", &[], &decoded, Some(&[1.0])).is_err());
    if !gt_available() {
        eprintln!("skipping gt gff3validator check: `gt` (genometools) not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pred.gff3");
    std::fs::write(&path, &text).unwrap();
    let o = Command::new("gt")
        .arg("gff3validator")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "gt gff3validator: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Decoder throughput on 4 Mb of random sequence with blocky probabilities (both strands).
/// Ignored by default; run with `--ignored --nocapture` to measure.
#[test]
#[ignore]
fn decode_speed() {
    let mut r = ChaCha8Rng::seed_from_u64(12);
    let len = 4_000_000;
    let seq = random_seq(&mut r, len);
    let mut p = vec![0f32; len * NUM_CLASSES];
    let mut i = 0;
    while i < len {
        let run = r.random_range(50..2000).min(len - i);
        let c = r.random_range(0..NUM_CLASSES);
        for k in i..i + run {
            for x in 0..NUM_CLASSES {
                p[k * NUM_CLASSES + x] = if x == c { 0.7 } else { 0.06 };
            }
        }
        i += run;
    }
    let t0 = std::time::Instant::now();
    let out = decode("s", 0, &seq, &p, &p, &DecodeConfig::default()).unwrap();
    let s = t0.elapsed().as_secs_f64();
    eprintln!(
        "decoded {len} bp (both strands) in {s:.2} s = {:.2} Mb/s, {} genes",
        len as f64 / s / 1e6,
        out.len()
    );
}

// ---- Sequence signals (`infer::signals`) --------------------------------------------------

use genolm::infer::signals::{code, Piece, Signals, ACCEPTOR_BEFORE, DONOR_BEFORE, START_BEFORE};
use std::borrow::Cow;
use std::sync::Arc;

/// A sequence with single-exon genes on both strands whose inner codons come from a small
/// biased set, and the gene models.
fn biased_genes(seed: u64, len: usize, n_genes: usize) -> (Vec<u8>, Vec<Gene>) {
    const CODONS: [&[u8; 3]; 5] = [b"GCT", b"GAA", b"AAG", b"CTG", b"ATC"];
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let mut seq = random_seq(&mut r, len);
    let slot = len / n_genes;
    let mut genes = Vec::new();
    for k in 0..n_genes {
        let cds_len = 3 * r.random_range(80..160);
        let at = k * slot + r.random_range(50..slot - cds_len - 200);
        let g = plant(
            &mut r,
            &mut seq,
            "s1",
            &Plan::new(at, k % 2 == 1, &[cds_len], &[]),
        );
        let iv = g.transcripts[0].cds[0].iv;
        let mut inner = Vec::new();
        while inner.len() < cds_len - 6 {
            inner.extend_from_slice(CODONS[r.random_range(0..CODONS.len())]);
        }
        if g.strand == Strand::Minus {
            seq[iv.start + 3..iv.end - 3].copy_from_slice(&revcomp(&inner));
        } else {
            seq[iv.start + 3..iv.end - 3].copy_from_slice(&inner);
        }
        genes.push(g);
    }
    (seq, genes)
}

fn pieces<'a>(seq: &'a [u8], tracks: &'a LabelTracks) -> Vec<Piece<'a>> {
    vec![
        Piece {
            seq: Cow::Borrowed(seq),
            track: Cow::Borrowed(&tracks.plus),
        },
        Piece {
            seq: Cow::Owned(revcomp(seq)),
            track: Cow::Owned(tracks.minus.iter().rev().copied().collect()),
        },
    ]
}

#[test]
fn signals_fit_counts_sites_and_normalises() {
    // Spliced genes with canonical sites on both strands: one donor and one acceptor per intron.
    let mut r = ChaCha8Rng::seed_from_u64(5);
    let len = 6000;
    let mut seq = random_seq(&mut r, len);
    let plans = [
        Plan::new(200, false, &[90, 60, 120], &[80, 100]),
        Plan::new(2500, true, &[150, 51], &[70]),
        Plan::new(4200, false, &[300], &[]),
    ];
    let genes: Vec<Gene> = plans
        .iter()
        .map(|p| plant(&mut r, &mut seq, "s1", p))
        .collect();
    let tracks = LabelTracks::from_genes(len, &genes);
    let sig = Signals::fit(3, pieces(&seq, &tracks)).unwrap();
    sig.validate().unwrap();
    assert_eq!(sig.sites, [3, 3, 3], "donors, acceptors, starts");
    // Three complete introns: too few to fit a minimum intron length.
    assert_eq!((sig.introns, sig.min_intron), (3, None));
    // Every content row is a distribution.
    for row in sig.content.chunks(4) {
        let s: f32 = row.iter().map(|x| x.exp()).sum();
        assert!((s - 1.0).abs() < 1e-4, "{s}");
    }
    // The fixed GT / AG columns score 0; the other columns do not all.
    for j in [DONOR_BEFORE, DONOR_BEFORE + 1] {
        assert!(sig.donor[j * 4..j * 4 + 4].iter().all(|&x| x == 0.0));
    }
    for j in [ACCEPTOR_BEFORE - 2, ACCEPTOR_BEFORE - 1] {
        assert!(sig.acceptor[j * 4..j * 4 + 4].iter().all(|&x| x == 0.0));
    }
    for j in START_BEFORE..START_BEFORE + 3 {
        assert!(sig.start[j * 4..j * 4 + 4].iter().all(|&x| x == 0.0));
    }
    assert!(sig.donor.iter().any(|&x| x != 0.0));
    assert!(sig.start.iter().any(|&x| x != 0.0));
    // Codon positions: 3 CDS slots share the CDS bases (stop codon included).
    let cds: usize = plans
        .iter()
        .map(|p| p.cds_exons.iter().sum::<usize>())
        .sum();
    let counted: u64 = sig.bases[..3].iter().sum();
    // Bases whose 3-base context is inside the sequence: all CDS bases here.
    assert_eq!(counted as usize, cds);
    assert!(sig.bases[0].abs_diff(sig.bases[2]) <= 3);
    // Bad input: too high an order, mismatched lengths.
    assert!(Signals::fit(9, pieces(&seq, &tracks)).is_err());
    let bad = Piece {
        seq: Cow::Borrowed(&seq[..10]),
        track: Cow::Borrowed(&tracks.plus[..9]),
    };
    assert!(Signals::fit(2, [bad]).is_err());
}

#[test]
fn start_models_score_a_planted_ribosome_binding_site_and_start_codon() {
    // Plus-strand genes, each with AGGAGG 5 to 9 bases before its ATG.
    let mut r = ChaCha8Rng::seed_from_u64(21);
    let len = 40_000;
    let mut seq = random_seq(&mut r, len);
    let mut genes = Vec::new();
    for k in 0..40 {
        let g = plant(
            &mut r,
            &mut seq,
            "s1",
            &Plan::new(k * 1000 + 100, false, &[300], &[]),
        );
        let start = g.transcripts[0].cds[0].iv.start;
        let at = start - r.random_range(5..10) - 6;
        seq[at..at + 6].copy_from_slice(b"AGGAGG");
        genes.push(g);
    }
    let tracks = LabelTracks::from_genes(len, &genes);
    let sig = Signals::fit(2, pieces(&seq, &tracks)).unwrap();
    sig.validate().unwrap();
    assert_eq!(sig.upstream.len(), 256);
    let word = |w: &[u8]| {
        w.iter()
            .fold(0usize, |a, &x| (a << 2) | usize::from(code(x)))
    };
    assert!(
        sig.upstream[word(b"GGAG")] > 2.0,
        "{}",
        sig.upstream[word(b"GGAG")]
    );
    // Every planted gene opens with ATG: the start-codon model favours it over GTG.
    assert_eq!(sig.start_codons.len(), 64);
    assert!(sig.start_codons[word(b"ATG")] > 2.0);
    assert!(sig.start_codons[word(b"GTG")] < 0.0);
    // A start with the site scores above the same start without it.
    let codes = |t: &[u8]| t.iter().map(|&x| code(x)).collect::<Vec<u8>>();
    let with = codes(b"TGCTTACGCACATCAAGGAGGTTACTCAATGGCT");
    let without = codes(b"TGCTTACGCACATCATCTACGTTACTCAATGGCT");
    let i = 28; // the ATG
    assert!(
        sig.upstream_at(&with, i) > 1.0,
        "{}",
        sig.upstream_at(&with, i)
    );
    assert!(sig.upstream_at(&with, i) > sig.upstream_at(&without, i) + 1.0);
    // Too near the sequence start, or without the model: 0.
    assert_eq!(sig.upstream_at(&with, 10), 0.0);
    assert!(sig.start_codon_at(&with, i) > 2.0);
    assert_eq!(sig.start_codon_at(&with, with.len() - 2), 0.0);
    let old = Signals {
        upstream: Vec::new(),
        start_codons: Vec::new(),
        ..sig.clone()
    };
    old.validate().unwrap();
    assert_eq!(old.upstream_at(&with, i), 0.0);
    assert_eq!(old.start_codon_at(&with, i), 0.0);
    let bad = Signals {
        upstream: vec![0.0; 5],
        ..sig
    };
    assert!(bad.validate().is_err());
}

#[test]
fn prokaryote_genes_may_overlap_their_neighbour() {
    // Two operon genes sharing "ATGA": the first one's stop TGA, the second one's start ATG.
    let mut r = ChaCha8Rng::seed_from_u64(41);
    let len = 1500;
    let mut seq = random_seq(&mut r, len);
    let mut a = Plan::new(200, false, &[300], &[]);
    a.utr5 = 0;
    a.utr3 = 0;
    a.forced = vec![(294, *b"GCA")];
    let ga = plant(&mut r, &mut seq, "s1", &a);
    let end_a = ga.transcripts[0].cds[0].iv.end;
    let mut b = Plan::new(end_a - 4, false, &[240], &[]);
    b.utr5 = 0;
    b.utr3 = 0;
    // Its second codon begins with the first gene's last base; an in-frame ATG 5 codons in.
    b.forced = vec![(3, *b"AAA"), (15, *b"ATG")];
    let gb = plant(&mut r, &mut seq, "s1", &b);
    assert_eq!(&seq[end_a - 4..end_a], b"ATGA");
    let start_b = gb.transcripts[0].cds[0].iv.start;
    assert_eq!(start_b, end_a - 4);
    let tracks = LabelTracks::from_genes(len, &[ga.clone(), gb]);
    let out = decode(
        "s1",
        0,
        &seq,
        &probs(&tracks.plus, 0.9),
        &probs(&tracks.minus, 0.9),
        &DecodeConfig::prokaryote(),
    )
    .unwrap();
    let starts: Vec<usize> = out
        .iter()
        .map(|g| g.gene.transcripts[0].cds[0].iv.start)
        .collect();
    assert_eq!(
        starts,
        [ga.transcripts[0].cds[0].iv.start, start_b],
        "{out:#?}"
    );
    assert_eq!(out[0].gene.span.end, end_a);
    // Eukaryote grammar: genes never overlap.
    let euk = DecodeConfig {
        min_intron: 40,
        ..DecodeConfig::default()
    };
    let out = decode(
        "s1",
        0,
        &seq,
        &probs(&tracks.plus, 0.9),
        &probs(&tracks.minus, 0.9),
        &euk,
    )
    .unwrap();
    for w in out.windows(2) {
        assert!(w[0].gene.span.end <= w[1].gene.span.start);
    }
}

#[test]
fn prokaryote_decoder_weighs_the_start_codon_model() {
    // An ATG-opened gene with an in-frame GTG 10 codons in; the network cannot tell where
    // the CDS starts between them, so the start-codon model decides.
    let mut r = ChaCha8Rng::seed_from_u64(31);
    let len = 1200;
    let mut seq = random_seq(&mut r, len);
    let mut p = Plan::new(300, false, &[300], &[]);
    p.utr5 = 0;
    p.utr3 = 0;
    p.forced = vec![(30, *b"GTG")];
    let g = plant(&mut r, &mut seq, "s1", &p);
    let start = g.transcripts[0].cds[0].iv.start;
    let tracks = LabelTracks::from_genes(len, &[g]);
    let mut plus = probs(&tracks.plus, 0.9);
    for i in start..start + 30 {
        let row = &mut plus[i * NUM_CLASSES..(i + 1) * NUM_CLASSES];
        row.fill(0.0);
        row[usize::from(genolm::io::labels::CDS)] = 0.5;
        row[usize::from(genolm::io::labels::INTERGENIC)] = 0.5;
    }
    let minus = probs(&tracks.minus, 0.9);
    let fitted = Signals::fit(2, pieces(&seq, &tracks)).unwrap();
    let word = |w: &[u8]| {
        w.iter()
            .fold(0usize, |a, &x| (a << 2) | usize::from(code(x)))
    };
    let called_start = |atg: f32, gtg: f32| {
        let mut codons = vec![0f32; 64];
        codons[word(b"ATG")] = atg;
        codons[word(b"GTG")] = gtg;
        let sig = Signals {
            start: vec![0.0; fitted.start.len()],
            upstream: Vec::new(),
            start_codons: codons,
            ..fitted.clone()
        };
        let cfg = DecodeConfig {
            site_weight: 1.0,
            ..DecodeConfig::prokaryote()
        }
        .with_signals(Arc::new(sig));
        let out = decode("s1", 0, &seq, &plus, &minus, &cfg).unwrap();
        assert_eq!(out.len(), 1, "{out:?}");
        out[0].gene.transcripts[0].cds[0].iv.start
    };
    assert_eq!(called_start(3.0, -3.0), start);
    assert_eq!(called_start(-3.0, 3.0), start + 30);
}

#[test]
fn signals_fit_the_shortest_intron_and_the_decoder_never_calls_a_shorter_one() {
    // Six spliced genes (both strands), four introns each: 24 introns of 64 to 180 bases.
    let mut r = ChaCha8Rng::seed_from_u64(9);
    let len = 14_000;
    let mut seq = random_seq(&mut r, len);
    let mut lengths = Vec::new();
    let mut genes = Vec::new();
    for g in 0..6 {
        // Every gene but the last has a short (64 or 93 base) intron.
        let introns: Vec<usize> = if g == 5 {
            vec![122, 151, 180, 151]
        } else {
            (0..4).map(|i| 64 + 29 * ((g + 2 * i) % 5)).collect()
        };
        lengths.extend(&introns);
        let plan = Plan::new(300 + 2200 * g, g % 2 == 1, &[90, 60, 120, 75, 63], &introns);
        genes.push(plant(&mut r, &mut seq, "s1", &plan));
    }
    let tracks = LabelTracks::from_genes(len, &genes);
    let sig = Signals::fit(2, pieces(&seq, &tracks)).unwrap();
    assert_eq!(sig.introns, 24);
    // The 0.5 % quantile of 24 lengths is the shortest.
    assert_eq!(sig.min_intron, lengths.iter().copied().min());
    let sig = Arc::new(sig);
    // Exons: 130 (UTR + CDS), 60, 120, 75, 123 (CDS + UTR) in each of the six genes.
    assert_eq!(sig.exons, 30);
    assert_eq!(sig.min_exon, Some(60));
    let cfg = DecodeConfig::default().with_signals(sig.clone());
    assert_eq!(cfg.min_intron, 64);
    assert_eq!(cfg.min_exon, 60);
    // Exact probabilities decode every gene with the fitted minimum...
    let (plus, minus) = (probs(&tracks.plus, 0.9), probs(&tracks.minus, 0.9));
    let out = decode("s1", 0, &seq, &plus, &minus, &cfg).unwrap();
    assert_same(&out, &genes);
    // ...while a longer minimum never calls the shorter introns.
    let strict = DecodeConfig {
        min_intron: 100,
        ..cfg
    };
    let out = decode("s1", 0, &seq, &plus, &minus, &strict).unwrap();
    let long = shape(&genes[5]);
    assert!(
        out.iter().any(|p| shape(&p.gene) == long),
        "the gene with long introns is lost"
    );
    for p in &out {
        let cds = &p.gene.transcripts[0].cds;
        for w in cds.windows(2) {
            let intron = w[1].iv.start - w[0].iv.end;
            assert!(
                intron >= 100,
                "intron of {intron} bases with min_intron 100"
            );
        }
        check_grammar(&seq, p, &strict).unwrap();
    }
}

#[test]
fn signals_with_zero_weight_change_nothing_and_content_finds_genes_alone() {
    let (train_seq, train_genes) = biased_genes(1, 40_000, 24);
    let tracks = LabelTracks::from_genes(train_seq.len(), &train_genes);
    let sig = Arc::new(Signals::fit(4, pieces(&train_seq, &tracks)).unwrap());
    // The coding models learned the bias: GCT in frame scores far above the background.
    let (test_seq, test_genes) = biased_genes(2, 20_000, 10);
    let n = test_seq.len();
    // Uninformative network: every class equally likely.
    let flat = vec![1.0 / NUM_CLASSES as f32; n * NUM_CLASSES];
    let base = DecodeConfig {
        min_cds: 90,
        ..DecodeConfig::default()
    };
    let none = decode("s1", 0, &test_seq, &flat, &flat, &base).unwrap();
    let zero = DecodeConfig {
        signals: Some(sig.clone()),
        ..base.clone()
    };
    assert_eq!(
        decode("s1", 0, &test_seq, &flat, &flat, &zero).unwrap(),
        none
    );
    let with = DecodeConfig {
        signals: Some(sig),
        content_weight: 1.0,
        site_weight: 1.0,
        ..base
    };
    let out = decode("s1", 0, &test_seq, &flat, &flat, &with).unwrap();
    // Content alone finds the planted genes: exact CDS for most, on the right strands.
    let exact = test_genes
        .iter()
        .filter(|g| {
            out.iter().any(|p| {
                p.gene.strand == g.strand && p.gene.transcripts[0].cds == g.transcripts[0].cds
            })
        })
        .count();
    assert!(
        exact * 10 >= test_genes.len() * 8,
        "{exact} of {} genes exact; decoded {}",
        test_genes.len(),
        out.len()
    );
    assert!(
        none.len() <= 1,
        "flat probabilities alone call {} genes",
        none.len()
    );
    for p in &out {
        check_grammar(&test_seq, p, &with).unwrap();
    }
}

// ---- Decoder tuning (`infer::tune`) -----------------------------------------------------

use genolm::infer::tune::{best, default_grid, tune, DecoderSettings, Evidence, Trial};
use genolm::io::gff::Annotation;

#[test]
fn default_grid_has_the_network_alone_and_the_signal_mixes() {
    assert_eq!(default_grid(false, true).len(), 25);
    let g = default_grid(true, true);
    assert_eq!(g.len(), 25 * (1 + 8 * 3 * 5));
    assert!(g.contains(&DecoderSettings::default()));
    // Prokaryotes: one intron penalty.
    let p = default_grid(true, false);
    assert_eq!(p.len(), 5 * (1 + 8 * 3 * 5));
    assert!(p.iter().all(|s| s.intron_penalty == 4.0));
    assert!(g.iter().all(|s| s.nn_weight > 0.0));
}

#[test]
fn tuning_prefers_signals_when_the_network_is_uninformative() {
    let (train_seq, train_genes) = biased_genes(1, 40_000, 24);
    let tracks = LabelTracks::from_genes(train_seq.len(), &train_genes);
    let sig = Arc::new(Signals::fit(4, pieces(&train_seq, &tracks)).unwrap());
    let (seq, genes) = biased_genes(3, 20_000, 10);
    let n = seq.len();
    // A poor network: half the mass on the true class at 50 % of bases, on a wrong class at
    // 35 %, flat elsewhere.
    let t = LabelTracks::from_genes(n, &genes);
    let mut r = ChaCha8Rng::seed_from_u64(9);
    let mut noisy = |track: &[u8]| {
        let mut p = vec![1.0 / NUM_CLASSES as f32; n * NUM_CLASSES];
        for (i, &c) in track.iter().enumerate() {
            let u = r.random::<f32>();
            let hot = if u < 0.5 {
                usize::from(c)
            } else if u < 0.85 {
                (usize::from(c) + r.random_range(1..5)) % 5
            } else {
                continue;
            };
            for k in 0..NUM_CLASSES {
                p[i * NUM_CLASSES + k] = 0.5 / (NUM_CLASSES as f32 - 1.0);
            }
            p[i * NUM_CLASSES + hot] = 0.5;
        }
        p
    };
    let ev = vec![Evidence {
        seqid: "s1".into(),
        offset: 0,
        seq: seq.clone(),
        plus: noisy(&t.plus),
        minus: noisy(&t.minus),
    }];
    let reference = Annotation {
        source: "ref".into(),
        genes: genes.clone(),
        ..Annotation::default()
    };
    let base = DecodeConfig {
        signals: Some(sig),
        ..DecodeConfig::default()
    };
    let alone = DecoderSettings::default();
    let mixed = DecoderSettings {
        nn_weight: 0.2,
        content_weight: 1.0,
        site_weight: 1.0,
        ..alone
    };
    let trials = tune(&ev, &reference, &base, &[alone, mixed]).unwrap();
    assert_eq!(trials.len(), 2);
    for t in &trials {
        assert!((t.objective - 0.5 * (t.base_cds_f1 + t.exon_all_f1)).abs() < 1e-12);
        assert!((0.0..=1.0).contains(&t.base_cds_f1));
    }
    let b = best(&trials).unwrap();
    assert_eq!(b.settings, mixed, "{trials:#?}");
    assert!(
        trials[1].base_cds_f1 > trials[0].base_cds_f1 + 0.05,
        "{trials:#?}"
    );
    // Ties go to the first trial.
    let tie: Vec<Trial> = vec![trials[0].clone(), trials[0].clone()];
    assert!(std::ptr::eq(best(&tie).unwrap(), &tie[0]));
    assert!(best(&[]).is_none());
    // Bad settings are refused.
    let bad = DecoderSettings {
        nn_weight: f64::NAN,
        ..alone
    };
    assert!(tune(&ev, &reference, &base, &[bad]).is_err());
    assert!(tune(&ev, &reference, &base, &[]).is_err());
}

/// Framed probabilities (8 per base): `hit` on the true framed class, the rest spread evenly.
fn framed_probs(track: &[u8], hit: f32) -> Vec<f32> {
    use genolm::io::labels::NUM_FRAMED;
    let rest = (1.0 - hit) / (NUM_FRAMED as f32 - 1.0);
    let mut p = vec![rest; track.len() * NUM_FRAMED];
    for (i, &c) in track.iter().enumerate() {
        p[i * NUM_FRAMED + usize::from(c)] = hit;
    }
    p
}

/// Framed rows summed to the six classes.
fn coarse_of(framed: &[f32]) -> Vec<f32> {
    framed
        .chunks_exact(8)
        .flat_map(genolm::train::segment::coarse_row)
        .collect()
}

#[test]
fn framed_rows_without_frame_weight_decode_like_their_classes() {
    let mut r = ChaCha8Rng::seed_from_u64(40);
    let len = 3000;
    let mut seq = random_seq(&mut r, len);
    let genes: Vec<Gene> = [
        Plan::new(100, false, &[150, 90, 66], &[60, 45]),
        Plan::new(1100, true, &[120, 60, 90], &[40, 70]),
        Plan::new(2200, false, &[210], &[]),
    ]
    .iter()
    .map(|p| plant(&mut r, &mut seq, "s1", p))
    .collect();
    let t = LabelTracks::from_genes_framed(len, &genes);
    // Noisy: a random share of each row moved to a random class.
    let noisy = |track: &[u8], r: &mut ChaCha8Rng| {
        let mut p = framed_probs(track, 0.8);
        for row in p.chunks_exact_mut(8) {
            let m = r.random_range(0.0..0.5f32);
            for x in row.iter_mut() {
                *x *= 1.0 - m;
            }
            row[r.random_range(0..8)] += m;
        }
        p
    };
    let (pp, pm) = (noisy(&t.plus, &mut r), noisy(&t.minus, &mut r));
    let cfg = DecodeConfig::default();
    let framed = decode("s1", 0, &seq, &pp, &pm, &cfg).unwrap();
    let coarse = decode("s1", 0, &seq, &coarse_of(&pp), &coarse_of(&pm), &cfg).unwrap();
    assert!(!framed.is_empty());
    assert_eq!(framed, coarse);
    // Rows of 8 on one strand and 6 on the other are refused.
    assert!(decode("s1", 0, &seq, &pp, &coarse_of(&pm), &cfg).is_err());
}

/// Where the classes blur exon ends (CDS and intron nearly even, the intron slightly ahead, for
/// 12 bases either side of every splice site), the network's codon positions put the ends back:
/// on true CDS bases the right codon position is confident, on intron bases there is no opinion.
#[test]
fn codon_positions_place_exon_ends_the_classes_blur() {
    use genolm::io::labels::{coarse, codon_position, CDS, INTRON, NUM_FRAMED};
    let seeds = 8;
    let mut exact = [0usize; 2];
    for seed in 0..seeds {
        let mut r = ChaCha8Rng::seed_from_u64(100 + seed);
        let len = 2400;
        let mut seq = random_seq(&mut r, len);
        let genes: Vec<Gene> = [
            Plan::new(150, false, &[120, 99, 102, 90], &[70, 60, 90]),
            Plan::new(1300, true, &[93, 108, 120], &[80, 65]),
        ]
        .iter()
        .map(|p| plant(&mut r, &mut seq, "s1", p))
        .collect();
        let t = LabelTracks::from_genes_framed(len, &genes);
        let blur = |track: &[u8]| {
            let mut p = framed_probs(track, 0.9);
            let mut near = vec![false; track.len()];
            for i in 1..track.len() {
                let (a, b) = (coarse(track[i - 1]), coarse(track[i]));
                if (a == CDS && b == INTRON) || (a == INTRON && b == CDS) {
                    for x in near.iter_mut().take((i + 12).min(track.len())).skip(i - 12) {
                        *x = true;
                    }
                }
            }
            for (i, row) in p.chunks_exact_mut(NUM_FRAMED).enumerate() {
                let c = track[i];
                if !near[i] || !(coarse(c) == CDS || c == INTRON) {
                    continue;
                }
                row.fill(0.1 / 5.0);
                row[usize::from(INTRON)] = 0.46;
                let frames = match codon_position(c) {
                    Some(k) => {
                        let mut f = [0.05f32; 3];
                        f[k] = 0.9;
                        f
                    }
                    None => [1.0 / 3.0; 3],
                };
                for (k, code) in [CDS, 6, 7].into_iter().enumerate() {
                    row[usize::from(code)] = 0.44 * frames[k];
                }
            }
            p
        };
        let (pp, pm) = (blur(&t.plus), blur(&t.minus));
        for (j, w) in [0.0, 1.0].into_iter().enumerate() {
            let cfg = DecodeConfig {
                frame_weight: w,
                ..DecodeConfig::default()
            };
            let out = decode("s1", 0, &seq, &pp, &pm, &cfg).unwrap();
            let mut got: Vec<_> = out.iter().map(|p| shape(&p.gene)).collect();
            let mut exp: Vec<_> = genes.iter().map(shape).collect();
            got.sort_by_key(|x| x.1);
            exp.sort_by_key(|x| x.1);
            if got == exp {
                exact[j] += 1;
            }
        }
    }
    eprintln!(
        "exact genes out of {seeds}: classes alone {}, with codon positions {}",
        exact[0], exact[1]
    );
    assert_eq!(
        exact[1], seeds as usize,
        "codon positions recover every gene"
    );
    assert!(
        exact[0] < exact[1],
        "the blur must matter without codon positions"
    );
}

/// A 3-base internal exon that the probabilities call: kept with `min_exon` 3; with a longer
/// minimum the strand is decoded again without it (its two introns become one, the frame is
/// kept), instead of the gene being dropped.
#[test]
fn a_short_exon_is_decoded_away_not_the_gene_dropped() {
    let mut r = ChaCha8Rng::seed_from_u64(77);
    let len = 1500;
    let mut seq = random_seq(&mut r, len);
    let g = plant(
        &mut r,
        &mut seq,
        "s1",
        &Plan::new(200, false, &[120, 3, 117], &[80, 90]),
    );
    let t = LabelTracks::from_genes(len, [&g]);
    let (pp, pm) = (probs(&t.plus, 0.9), probs(&t.minus, 0.9));
    let out = decode("s1", 0, &seq, &pp, &pm, &DecodeConfig::default()).unwrap();
    assert_same(&out, std::slice::from_ref(&g));
    let cfg = DecodeConfig {
        min_exon: 10,
        ..DecodeConfig::default()
    };
    let out = decode("s1", 0, &seq, &pp, &pm, &cfg).unwrap();
    assert_eq!(out.len(), 1, "the gene is kept: {out:?}");
    let tx = &out[0].gene.transcripts[0];
    assert!(tx.exons.iter().all(|e| e.len() >= 10), "{:?}", tx.exons);
    let cds: usize = tx.cds.iter().map(|c| c.iv.len()).sum();
    assert_eq!(cds, 237);
    assert_eq!(tx.exons.len(), 2);
    let gt = &g.transcripts[0];
    assert_eq!(tx.exons[0].end, gt.exons[0].end, "the first intron's donor");
    assert_eq!(
        tx.exons[1].start, gt.exons[2].start,
        "the second intron's acceptor"
    );
    check_grammar(&seq, &out[0], &cfg).unwrap();
}

/// Probabilities that make a 5′ UTR of one base and a long UTR intron the best path: allowed
/// with `min_exon` 1; with 3 or 20 the UTR-only exon is at least that long (exactly, not by
/// dropping the gene), while the coding part stays exact.
#[test]
fn utr_only_exons_are_at_least_min_exon() {
    use genolm::io::labels::{INTRON, UTR5};
    let mut r = ChaCha8Rng::seed_from_u64(78);
    let len = 1600;
    let mut seq = random_seq(&mut r, len);
    let g = plant(
        &mut r,
        &mut seq,
        "s1",
        &Plan::new(400, false, &[150, 150], &[60]),
    );
    let mut t = LabelTracks::from_genes(len, [&g]);
    // Before the 40-base 5' UTR at 400: one UTR base at 299, a UTR intron 300..400 (GT...AG).
    seq[300..302].copy_from_slice(b"GT");
    seq[398..400].copy_from_slice(b"AG");
    t.plus[299] = UTR5;
    for x in &mut t.plus[300..400] {
        *x = INTRON;
    }
    let (pp, pm) = (probs(&t.plus, 0.9), probs(&t.minus, 0.9));
    let shortest = |min_exon: usize| {
        let cfg = DecodeConfig {
            min_exon,
            ..DecodeConfig::default()
        };
        let out = decode("s1", 0, &seq, &pp, &pm, &cfg).unwrap();
        assert_eq!(out.len(), 1);
        let tx = out[0].gene.transcripts[0].clone();
        assert_eq!(tx.cds, g.transcripts[0].cds, "coding part exact");
        check_grammar(&seq, &out[0], &cfg).unwrap();
        tx.exons.iter().map(|e| e.len()).min().unwrap()
    };
    assert_eq!(shortest(1), 1, "the setup favours a 1-base exon");
    assert!(shortest(3) >= 3);
    assert!(shortest(20) >= 20);
}
