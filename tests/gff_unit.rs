//! GFF3 parsing, gene models, extraction and label tracks on small synthetic inputs.

mod common;

use std::collections::HashMap;
use std::path::Path;

use genolm::io::extract::{extract, ExtractOptions, Extracted, Feature};
use genolm::io::fasta::Record;
use genolm::io::gff::{self, Annotation, Interval, SeqName, Strand};
use genolm::io::labels::{LabelTracks, CDS, INTERGENIC, INTRON, NC_EXON, UTR3, UTR5};
use genolm::seq::revcomp;

use common::{expect_error, run_ok};

const HEAD: &str = "##gff-version 3\n";

fn ann(body: &str) -> Annotation {
    gff::parse_str(&format!("{HEAD}{body}"), "t.gff3").unwrap()
}

fn err(body: &str) -> String {
    gff::parse_str(&format!("{HEAD}{body}"), "t.gff3")
        .unwrap_err()
        .to_string()
}

/// A 1-based inclusive GFF row.
fn row(ty: &str, s: usize, e: usize, strand: char, phase: &str, attrs: &str) -> String {
    format!("chr1\tt\t{ty}\t{s}\t{e}\t.\t{strand}\t{phase}\t{attrs}\n")
}

fn iv(s1: usize, e1: usize) -> Interval {
    Interval {
        start: s1 - 1,
        end: e1,
    }
}

/// A deterministic 300 bp sequence with no long repeats.
fn genome() -> Vec<u8> {
    let mut x: u32 = 12345;
    (0..300)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            b"ACGT"[((x >> 16) & 3) as usize]
        })
        .collect()
}

fn run(a: &Annotation, seq: &[u8], opts: ExtractOptions) -> Vec<Extracted> {
    let recs = vec![Record {
        name: "chr1".into(),
        description: String::new(),
        seq: seq.to_vec(),
    }];
    let index = a.resolve_records("t.fa", &recs).unwrap();
    extract(a, &recs, &index, &opts).unwrap()
}

fn opts(feature: Feature) -> ExtractOptions {
    ExtractOptions {
        feature,
        ..ExtractOptions::default()
    }
}

#[test]
fn malformed_lines_name_file_and_line() {
    let g = row("gene", 1, 100, '+', ".", "ID=g");
    let cases = [
        ("chr1\tt\texon\t1\t10\t.\t+\t.\n", "found 8"),
        ("chr1\tt\texon\t20\t10\t.\t+\t.\t.\n", "start 20 > end 10"),
        ("chr1\tt\texon\tx\t10\t.\t+\t.\t.\n", "start 'x'"),
        ("chr1\tt\texon\t1\t1e3\t.\t+\t.\t.\n", "end '1e3'"),
        ("chr1\tt\texon\t0\t10\t.\t+\t.\t.\n", "start is 0"),
        ("chr1\tt\texon\t1\t10\t.\t*\t.\t.\n", "strand '*'"),
        ("chr1\tt\tCDS\t1\t10\t.\t+\t4\t.\n", "phase '4'"),
        ("chr1\tt\texon\t1\t10\tabc\t+\t.\t.\n", "score 'abc'"),
        (
            "chr1\tt\texon\t1\t10\t.\t+\t.\tID=a%2\n",
            "bad percent escape '%2'",
        ),
        (
            "chr1\tt\texon\t1\t10\t.\t+\t.\tID=a%zz\n",
            "bad percent escape '%zz'",
        ),
        (
            "chr1\tt\texon\t1\t10\t.\t+\t.\tgene_id \"x\"\n",
            "not tag=value",
        ),
        ("chr1 t exon 1 10 . + . ID=x\n", "not spaces"),
        ("\tt\texon\t1\t10\t.\t+\t.\t.\n", "empty seqid"),
    ];
    let moved = row("gene", 1, 100, '+', ".", "ID=g").replace("chr1", "chr2");
    let cases: Vec<(&str, &str)> = cases
        .into_iter()
        .chain([(
            moved.as_str(),
            "ID=g on seqid 'chr2' was already used on line 2",
        )])
        .collect();
    for (line, want) in cases {
        let e = err(&format!("{g}{line}"));
        assert!(e.starts_with("t.gff3:3: "), "{e}");
        assert!(e.contains(want), "{e} (want {want})");
        assert!(!e.contains('\n'));
    }
    let bin = gff::parse(
        &b"##gff-version 3\nchr1\tt\tgene\t1\t5\t.\t+\t.\tID=\xff\n"[..],
        "b.gff3",
    )
    .unwrap_err()
    .to_string();
    assert!(bin.starts_with("b.gff3:2: not UTF-8"), "{bin}");
    let v2 = gff::parse_str("##gff-version 2\n", "v.gff")
        .unwrap_err()
        .to_string();
    assert!(v2.starts_with("v.gff:1: unsupported"), "{v2}");
}

#[test]
fn inconsistent_features_are_errors() {
    let head = format!(
        "{}{}",
        row("gene", 11, 60, '+', ".", "ID=g"),
        row("mRNA", 11, 60, '+', ".", "ID=t;Parent=g")
    );
    let exons = format!(
        "{}{}",
        row("exon", 11, 30, '+', ".", "Parent=t"),
        row("exon", 41, 60, '+', ".", "Parent=t")
    );
    let cases = [
        (
            format!("{head}{exons}{}", row("CDS", 16, 25, '-', "0", "Parent=t")),
            "t.gff3:6: inconsistent features: CDS 16..25 is on strand -, but its transcript 't' (line 3) on + at 11..60",
        ),
        (
            format!("{head}{exons}{}", row("CDS", 16, 45, '+', "0", "Parent=t")),
            "t.gff3:6: inconsistent features: CDS 16..45 crosses an exon boundary of its transcript 't' (line 3)",
        ),
        (
            format!("{head}{}", row("exon", 50, 70, '+', ".", "Parent=t")),
            "t.gff3:4: inconsistent features: exon 50..70 lies outside its transcript 't' (line 3) on + at 11..60",
        ),
    ];
    for (body, want) in &cases {
        let e = err(body);
        assert!(e.starts_with(want), "{e}\nwant: {want}");
        assert!(!e.contains('\n'));
    }
    // A CDS with no exon row at all (a sliced file's missing exon) is not a conflict.
    let a = ann(&format!(
        "{head}{}{}",
        row("exon", 11, 30, '+', ".", "Parent=t"),
        row("CDS", 45, 55, '+', "0", "Parent=t")
    ));
    assert_eq!(a.genes[0].transcripts[0].cds.len(), 1);
}

#[test]
fn tolerates_real_world_layout() {
    // No version line, CRLF, blank lines, empty attribute column, phase '.' on CDS, trailing
    // ';', '?' strand, ##FASTA section ignored.
    let text = "chr1\tt\tgene\t1\t50\t.\t+\t.\tID=g;Name=a%3Bb%2Cc;\r\n\r\n\
                chr1\tt\tmRNA\t1\t50\t.\t+\t.\tID=t;Parent=g\r\n\
                chr1\tt\tCDS\t1\t30\t.\t+\t.\tParent=t\r\n\
                chr1\tRNASeq\tintron\t31\t40\t3.5\t?\t.\t\r\n\
                ##FASTA\n>chr1\nACGT\n";
    let a = gff::parse_str(text, "x.gff3").unwrap();
    assert_eq!(a.genes.len(), 1);
    let g = &a.genes[0];
    assert_eq!(g.name.as_deref(), Some("a;b,c"));
    assert_eq!(g.span, iv(1, 50));
    let t = &g.transcripts[0];
    assert_eq!(t.cds[0].phase, None);
    assert_eq!(t.exons, vec![iv(1, 30)]);
}

#[test]
fn multi_parent_parts_join_every_transcript() {
    let a = ann(&[
        row("gene", 10, 200, '+', ".", "ID=g"),
        row("mRNA", 10, 200, '+', ".", "ID=t1;Parent=g"),
        row("mRNA", 10, 150, '+', ".", "ID=t2;Parent=g"),
        row("exon", 10, 50, '+', ".", "Parent=t1,t2"),
        row("exon", 100, 150, '+', ".", "Parent=t2"),
        row("exon", 100, 200, '+', ".", "Parent=t1"),
        row("CDS", 20, 50, '+', "0", "ID=c;Parent=t1,t2"),
        row("CDS", 100, 120, '+', "2", "ID=c;Parent=t1,t2"),
    ]
    .concat());
    let g = &a.genes[0];
    assert_eq!(g.transcripts.len(), 2);
    let (t1, t2) = (&g.transcripts[0], &g.transcripts[1]);
    assert_eq!(t1.id, "t1");
    assert_eq!(t1.exons, vec![iv(10, 50), iv(100, 200)]);
    assert_eq!(t2.exons, vec![iv(10, 50), iv(100, 150)]);
    assert_eq!(t1.cds.len(), 2);
    assert_eq!(t2.cds.len(), 2);
    // UTRs derived from exons minus the CDS span.
    assert_eq!(t1.utr5, vec![iv(10, 19)]);
    assert_eq!(t1.utr3, vec![iv(121, 200)]);
    // Longest: same CDS, t1 longer spliced.
    assert_eq!(g.longest().unwrap().id, "t1");
}

#[test]
fn exons_derived_from_cds_and_utrs() {
    let a = ann(&[
        row("gene", 1, 100, '-', ".", "ID=g"),
        row("mRNA", 1, 100, '-', ".", "ID=t;Parent=g"),
        row("three_prime_UTR", 1, 9, '-', ".", "Parent=t"),
        row("CDS", 10, 30, '-', "0", "Parent=t"),
        row("CDS", 51, 80, '-', "0", "Parent=t"),
        row("five_prime_UTR", 81, 90, '-', ".", "Parent=t"),
        row("five_prime_UTR", 95, 100, '-', ".", "Parent=t"),
    ]
    .concat());
    let t = &a.genes[0].transcripts[0];
    // Adjacent UTR/CDS merge; the gaps stay introns.
    assert_eq!(t.exons, vec![iv(1, 30), iv(51, 90), iv(95, 100)]);
    assert_eq!(t.utr5, vec![iv(81, 90), iv(95, 100)]);
    assert_eq!(t.utr3, vec![iv(1, 9)]);
    assert_eq!(t.tss(), 99);
}

#[test]
fn minus_strand_splicing_and_phase() {
    let seq = genome();
    let a = ann(&[
        row("gene", 11, 120, '-', ".", "ID=g;Name=G"),
        row("mRNA", 11, 120, '-', ".", "ID=t;Parent=g"),
        row("exon", 11, 40, '-', ".", "Parent=t"),
        row("exon", 61, 120, '-', ".", "Parent=t"),
        row("CDS", 21, 40, '-', "1", "Parent=t"),
        row("CDS", 61, 100, '-', "0", "Parent=t"),
    ]
    .concat());
    let s = |a: usize, b: usize| seq[a - 1..b].to_vec();
    // Transcript: exons in descending order, each reverse-complemented.
    let tx = run(&a, &seq, opts(Feature::Transcript));
    let want = [revcomp(&s(61, 120)), revcomp(&s(11, 40))].concat();
    assert_eq!(tx[0].seq, want);
    assert!(
        tx[0].description.contains("loc=chr1:11-120(-)"),
        "{}",
        tx[0].description
    );
    // CDS: the 5'-most part (61-100 on '-') has phase 0; nothing trimmed.
    let cds = run(&a, &seq, opts(Feature::Cds));
    assert_eq!(
        cds[0].seq,
        [revcomp(&s(61, 100)), revcomp(&s(21, 40))].concat()
    );
    assert!(cds[0].description.contains("name=G"));
    // Gene: unspliced.
    let gene = run(&a, &seq, opts(Feature::Gene));
    assert_eq!(gene[0].seq, revcomp(&s(11, 120)));
    assert_eq!(gene[0].id, "g");

    // Phase on the 5'-most CDS part is trimmed.
    let b = ann(&[
        row("mRNA", 5, 60, '+', ".", "ID=t"),
        row("CDS", 5, 30, '+', "2", "Parent=t"),
        row("CDS", 41, 60, '+', "0", "Parent=t"),
    ]
    .concat());
    let c = run(&b, &seq, opts(Feature::Cds));
    assert_eq!(c[0].seq, [s(7, 30), s(41, 60)].concat());
    assert!(c[0].description.contains("phase_trim=2"));
}

#[test]
fn slippage_reads_overlap_twice() {
    // SARS-CoV-2 style: one CDS ID in two rows whose ranges overlap by one base.
    let seq = genome();
    let a = ann(&[
        row("gene", 10, 60, '+', ".", "ID=g"),
        row("CDS", 10, 30, '+', "0", "ID=cds1;Parent=g"),
        row("CDS", 30, 60, '+', "0", "ID=cds1;Parent=g"),
    ]
    .concat());
    let t = &a.genes[0].transcripts[0];
    assert_eq!(t.id, "cds1");
    assert_eq!(t.cds_len(), 52);
    assert_eq!(t.exons, vec![iv(10, 60)]);
    let c = run(&a, &seq, opts(Feature::Cds));
    assert_eq!(c[0].seq, [&seq[9..30], &seq[29..60]].concat());

    // Minus strand +1 frameshift (E. coli prfB style): a skipped base.
    let b = ann(&[
        row("gene", 10, 60, '-', ".", "ID=g"),
        row("CDS", 36, 60, '-', "0", "ID=c;Parent=g"),
        row("CDS", 10, 34, '-', "0", "ID=c;Parent=g"),
    ]
    .concat());
    let c = run(&b, &seq, opts(Feature::Cds));
    assert_eq!(c[0].seq, revcomp(&[&seq[9..34], &seq[35..60]].concat()));
}

#[test]
fn mature_peptides_form_the_polyprotein() {
    // NCBI mature-peptide CDS rows (ID=id-ACC:a..b) under one gene; the stop codon is the last
    // 3 bp of the gene.
    let seq = genome();
    let a = ann(&[
        row("gene", 1, 33, '+', ".", "ID=g;Name=ORF1ab"),
        row("CDS", 1, 12, '+', "0", "ID=id-PP1AB.1:1..4;Parent=g"),
        row("CDS", 13, 18, '+', "0", "ID=id-PP1A.1:5..6;Parent=g"),
        row("CDS", 13, 21, '+', "0", "ID=id-PP1AB.1:5..10;Parent=g"),
        row("CDS", 21, 30, '+', "0", "ID=id-PP1AB.1:5..10;Parent=g"),
    ]
    .concat());
    let g = &a.genes[0];
    assert_eq!(g.transcripts.len(), 2);
    let pp = g.longest().unwrap();
    assert_eq!(pp.id, "PP1AB.1");
    assert_eq!(pp.cds_len(), 12 + 9 + 13);
    let c = run(
        &a,
        &seq,
        ExtractOptions {
            longest: true,
            ..opts(Feature::Cds)
        },
    );
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].seq, [&seq[0..21], &seq[20..33]].concat());
}

#[test]
fn cds_under_gene_makes_implicit_transcripts() {
    let a = ann(&[
        // SGD style: spliced CDS without IDs.
        row("gene", 10, 100, '+', ".", "ID=YAL001C;Name=TFC3"),
        row("CDS", 10, 40, '+', "0", "Parent=YAL001C;Name=YAL001C"),
        row("CDS", 61, 100, '+', "2", "Parent=YAL001C;Name=YAL001C"),
        // NCBI prokaryote style: two CDS IDs under one gene.
        row("gene", 120, 200, '-', ".", "ID=gene-b1"),
        row("CDS", 120, 200, '-', "0", "ID=cds-A;Parent=gene-b1"),
        row("CDS", 150, 200, '-', "0", "ID=cds-B;Parent=gene-b1"),
        // Pseudogene without parts; tRNA without exons.
        row("pseudogene", 210, 220, '+', ".", "ID=ps"),
        row("tRNA", 230, 250, '-', ".", "ID=trna1"),
    ]
    .concat());
    assert_eq!(a.genes.len(), 4);
    let y = &a.genes[0];
    assert_eq!(y.transcripts.len(), 1);
    let t = &y.transcripts[0];
    assert!(t.implicit);
    assert_eq!((t.id.as_str(), t.kind.as_str()), ("YAL001C", "mRNA"));
    assert_eq!(t.exons, vec![iv(10, 40), iv(61, 100)]);
    let b = &a.genes[1];
    let ids: Vec<&str> = b.transcripts.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["cds-A", "cds-B"]);
    assert_eq!(b.longest().unwrap().id, "cds-A");
    assert_eq!(b.strand, Strand::Minus);
    assert!(a.genes[2].transcripts.is_empty());
    let trna = &a.genes[3];
    assert_eq!(trna.transcripts[0].kind, "tRNA");
    assert_eq!(trna.transcripts[0].exons, vec![iv(230, 250)]);
}

#[test]
fn missing_parents_are_grouped_with_a_warning() {
    let a = ann(&[
        // Transcript row cut off: CDS + UTR remain, plus a protein parent (TAIR style).
        row("protein", 20, 40, '+', ".", "ID=t9-Protein;Derives_from=t9"),
        row("five_prime_UTR", 10, 19, '+', ".", "Parent=t9"),
        row("CDS", 20, 40, '+', "0", "Parent=t9,t9-Protein"),
        // Two transcripts whose gene row is cut off.
        row("mRNA", 50, 80, '+', ".", "ID=ta;Parent=Gene:X"),
        row("mRNA", 50, 90, '+', ".", "ID=tb;Parent=Gene:X"),
        row("exon", 50, 80, '+', ".", "Parent=ta"),
        row("exon", 50, 90, '+', ".", "Parent=tb"),
    ]
    .concat());
    assert_eq!(a.genes.len(), 2);
    let t9 = &a.genes[0].transcripts[0];
    assert_eq!(t9.id, "t9");
    assert_eq!(t9.exons, vec![iv(10, 40)]);
    assert_eq!(t9.utr5, vec![iv(10, 19)]);
    let x = &a.genes[1];
    assert_eq!(x.id, "Gene:X");
    assert_eq!(x.transcripts.len(), 2);
    assert_eq!(x.span, iv(50, 90));
    assert_eq!(a.warnings.len(), 2, "{:?}", a.warnings);
    assert!(a.warnings.iter().all(|w| w.starts_with("t.gff3: ")));
}

#[test]
fn seqids_resolve_against_fasta_names() {
    let a = ann("NC_1.1\tt\tgene\t1\t10\t.\t+\t.\tID=g\nchrA\tt\tgene\t1\t10\t.\t+\t.\tID=h\n");
    let names = [
        SeqName {
            name: "NC_1",
            description: "NC_1.1 some virus",
            len: 20,
        },
        SeqName {
            name: "chrA",
            description: "",
            len: 20,
        },
    ];
    let m = a.resolve_seqids("g.fa", &names).unwrap();
    assert_eq!(
        m,
        HashMap::from([("NC_1.1".to_string(), 0), ("chrA".to_string(), 1)])
    );
    // Version-insensitive fallback.
    let names2 = [
        SeqName {
            name: "NC_1",
            description: "",
            len: 20,
        },
        SeqName {
            name: "chrA",
            description: "",
            len: 20,
        },
    ];
    assert_eq!(a.resolve_seqids("g.fa", &names2).unwrap()["NC_1.1"], 0);
    // Unknown seqid: both files named.
    let e = a
        .resolve_seqids("g.fa", &names2[1..])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("t.gff3:2: seqid 'NC_1.1'") && e.contains("g.fa"),
        "{e}"
    );
    // Past the end: the GFF line is named.
    let short = [
        SeqName {
            name: "NC_1",
            description: "",
            len: 20,
        },
        SeqName {
            name: "chrA",
            description: "",
            len: 9,
        },
    ];
    let e = a.resolve_seqids("g.fa", &short).unwrap_err().to_string();
    assert!(e.starts_with("t.gff3:3: feature ends at 10"), "{e}");
}

#[test]
fn promoter_windows_clip_and_say_so() {
    let seq = genome();
    let a = ann(&[
        row("mRNA", 21, 60, '+', ".", "ID=p"),
        row("mRNA", 21, 80, '+', ".", "ID=p2"),
        row("mRNA", 250, 295, '-', ".", "ID=m"),
    ]
    .concat());
    let o = ExtractOptions {
        feature: Feature::Promoter,
        longest: false,
        upstream: 50,
        downstream: 10,
    };
    let r = run(&a, &seq, o);
    // p and p2 share a TSS but are different genes here (each its own gene): two records.
    assert_eq!(r.len(), 3);
    assert_eq!(r[0].seq, seq[0..30].to_vec());
    assert!(
        r[0].description.contains("clipped_upstream=30"),
        "{}",
        r[0].description
    );
    // Minus: TSS at 295; upstream runs right (296..345, clipped at 300), downstream left.
    assert_eq!(r[2].seq, revcomp(&seq[285..300]));
    assert!(
        r[2].description.contains("clipped_upstream=45"),
        "{}",
        r[2].description
    );
    assert!(r[2].description.contains("tss=chr1:295(-)"));
}

#[test]
fn label_tracks_follow_precedence() {
    let a = ann(&[
        // Coding gene on '+': UTR5 1-10, CDS 11-20 | intron 21-30 | CDS 31-40, UTR3 41-50.
        row("mRNA", 1, 50, '+', ".", "ID=c"),
        row("exon", 1, 20, '+', ".", "Parent=c"),
        row("exon", 31, 50, '+', ".", "Parent=c"),
        row("CDS", 11, 20, '+', "0", "Parent=c"),
        row("CDS", 31, 40, '+', "2", "Parent=c"),
        // Non-coding gene on '+' overlapping the intron and UTR3: CDS/UTR win, intron loses.
        row("ncRNA", 25, 45, '+', ".", "ID=n"),
        row("exon", 25, 45, '+', ".", "Parent=n"),
        // Minus-strand coding gene: UTR5 is on the right.
        row("mRNA", 61, 80, '-', ".", "ID=m"),
        row("exon", 61, 80, '-', ".", "Parent=m"),
        row("CDS", 66, 75, '-', "0", "Parent=m"),
    ]
    .concat());
    let t = LabelTracks::from_genes(90, &a.genes);
    let p = &t.plus;
    assert!(p[0..10].iter().all(|&c| c == UTR5));
    assert!(p[10..20].iter().all(|&c| c == CDS));
    assert!(p[20..24].iter().all(|&c| c == INTRON));
    assert!(p[24..30].iter().all(|&c| c == NC_EXON));
    assert!(p[30..40].iter().all(|&c| c == CDS));
    assert!(p[40..50].iter().all(|&c| c == UTR3));
    assert!(p[50..].iter().all(|&c| c == INTERGENIC));
    let m = &t.minus;
    assert!(m[60..65].iter().all(|&c| c == UTR3));
    assert!(m[65..75].iter().all(|&c| c == CDS));
    assert!(m[75..80].iter().all(|&c| c == UTR5));
    assert!(m[..60].iter().chain(&m[80..]).all(|&c| c == INTERGENIC));
    let [pc, mc] = t.counts();
    assert_eq!(pc.iter().sum::<u64>(), 90);
    assert_eq!(mc[CDS as usize], 10);
}

#[test]
fn malformed_fixtures_fail_with_one_line() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/malformed/gff");
    let fasta = dir.join("ref.fa");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        expect_error(
            &[
                "labels",
                "--fasta",
                fasta.to_str().unwrap(),
                "--gff",
                path.to_str().unwrap(),
            ],
            &name,
        );
        n += 1;
    }
    assert!(n >= 9, "only {n} fixtures");
}

#[test]
fn valid_gff_on_fixture_fasta_runs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/malformed/gff");
    let tmp = tempfile::tempdir().unwrap();
    let gff = tmp.path().join("ok.gff3");
    std::fs::write(
        &gff,
        format!(
            "{HEAD}{}{}{}",
            row("gene", 10, 120, '+', ".", "ID=g"),
            row("CDS", 10, 60, '+', "0", "Parent=g"),
            row("CDS", 100, 120, '+', "0", "Parent=g")
        ),
    )
    .unwrap();
    let out = run_ok(&[
        "labels",
        "--json",
        "--fasta",
        dir.join("ref.fa").to_str().unwrap(),
        "--gff",
        gff.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["plus"]["cds"], 72);
    assert_eq!(v["plus"]["intron"], 39);
    assert_eq!(v["minus"]["intergenic"], 200);
}
