//! `genolm annotate`: gene models (GFF3) for a genome from a `--task segment` run.
//!
//! Streams the FASTA one record at a time and, within a record, one decode chunk at a time: the
//! bases of the chunk plus `--chunk-overlap` on each side are kept, their per-base probabilities
//! computed by [`crate::train::segment::predict_region`] (overlapping tiles, linear-ramp
//! blending, reverse-complement averaging, rayon over tiles), decoded by
//! [`crate::infer::decode::decode`], and the genes that start inside the chunk kept. Memory is
//! bounded by the chunk size, not the chromosome size.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::infer::decode::{self, DecodeConfig, Mode, PredictedGene};
use crate::io::fasta::Reader;
use crate::io::labels::CLASS_NAMES;
use crate::seq::{self, SeqPolicy};
use crate::train::segment::{self, LoadedSegmentRun, TileOptions};

/// Arguments of `genolm annotate`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  genolm annotate --model runs/seg genome.fa.gz --out pred.gff3 --bed cds.bedgraph\n\nThe model is a `genolm train --task segment` run directory. --bed writes a bedGraph of the\nper-base probability of --bed-class (the larger of the two strands), rounded to 0.01, with\nequal neighbours merged."
)]
pub struct Args {
    /// Run directory of a `--task segment` model.
    #[arg(long)]
    pub model: PathBuf,
    /// Genome FASTA (any container, or `-`).
    pub genome: String,
    /// Output GFF3.
    #[arg(long)]
    pub out: PathBuf,
    /// Also write a bedGraph of per-base probabilities.
    #[arg(long)]
    pub bed: Option<PathBuf>,
    /// Class whose probability --bed writes.
    #[arg(long, default_value = "cds")]
    pub bed_class: String,
    /// Gene grammar (default: the run's, set by `train --task segment --mode`).
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// Tile length in bases (default: the run's).
    #[arg(long)]
    pub tile: Option<usize>,
    /// Overlap of neighbouring tiles, blended with linear ramps (default: the run's).
    #[arg(long)]
    pub overlap: Option<usize>,
    /// Bases decoded at a time (memory scales with this, not with chromosome length).
    #[arg(long, default_value_t = 2_000_000)]
    pub chunk: usize,
    /// Context added on both sides of a decode chunk; genes starting in the chunk are kept.
    #[arg(long, default_value_t = 50_000)]
    pub chunk_overlap: usize,
    /// Do not average with the reverse complement.
    #[arg(long)]
    pub no_rc_average: bool,
    /// Decoder: cost (nats) of opening a gene (default: the run's `decoder.json`, else 10).
    #[arg(long)]
    pub gene_penalty: Option<f64>,
    /// Decoder: cost (nats) of opening an intron (default: `decoder.json`, else 4).
    #[arg(long)]
    pub intron_penalty: Option<f64>,
    /// Decoder: shortest intron in bases (default: fitted on the training introns and stored
    /// in `signals.json`, else 20).
    #[arg(long)]
    pub min_intron: Option<usize>,
    /// Decoder: shortest exon (default: fitted on the training exons and stored in
    /// `signals.json`, else 3).
    #[arg(long)]
    pub min_exon: Option<usize>,
    /// Decoder: genes with a shorter CDS (spliced, stop included) are dropped (default 90).
    #[arg(long)]
    pub min_cds: Option<usize>,
    /// Decoder: weight of the network's log-probabilities (default: `decoder.json`, else 1).
    #[arg(long)]
    pub nn_weight: Option<f64>,
    /// Decoder: weight of the network's genic-or-intergenic evidence (default: `decoder.json`,
    /// else 0).
    #[arg(long)]
    pub genic_weight: Option<f64>,
    /// Decoder: weight of the run's content models (default: `decoder.json`, else 0).
    #[arg(long)]
    pub content_weight: Option<f64>,
    /// Decoder: weight of the run's site matrices (donor, acceptor, start) (default: `decoder.json`, else 0).
    #[arg(long)]
    pub site_weight: Option<f64>,
    /// Decoder: weight of the network's codon positions, for models that predict them
    /// (default: `decoder.json`, else 0).
    #[arg(long)]
    pub frame_weight: Option<f64>,
    /// Decoder: ignore the run's `signals.json` and `decoder.json` (network alone, defaults).
    #[arg(long)]
    pub no_signals: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// The decoder settings: `--mode`'s defaults, then the run's `signals.json` and
/// `decoder.json` (unless `--no-signals`), then the flags given.
fn decoder_config(args: &Args, run: &LoadedSegmentRun) -> Result<DecodeConfig> {
    let mut cfg = DecodeConfig::for_mode(args.mode.unwrap_or(run.config.segment.mode));
    if !args.no_signals {
        if let Some(sig) = run.signals.clone() {
            cfg = cfg.with_signals(std::sync::Arc::new(sig));
        }
        if let Some(s) = crate::infer::tune::read_run_decoder(&args.model)? {
            s.apply(&mut cfg);
        }
    }
    let set = |slot: &mut f64, v: Option<f64>| {
        if let Some(v) = v {
            *slot = v;
        }
    };
    set(&mut cfg.gene_penalty, args.gene_penalty);
    set(&mut cfg.intron_penalty, args.intron_penalty);
    set(&mut cfg.nn_weight, args.nn_weight);
    set(&mut cfg.genic_weight, args.genic_weight);
    set(&mut cfg.content_weight, args.content_weight);
    set(&mut cfg.site_weight, args.site_weight);
    set(&mut cfg.frame_weight, args.frame_weight);
    if let Some(m) = args.min_intron {
        cfg.min_intron = m;
    }
    if let Some(m) = args.min_exon {
        cfg.min_exon = m;
    }
    if let Some(m) = args.min_cds {
        cfg.min_cds = m;
    }
    if cfg.signals.is_none() && (cfg.content_weight > 0.0 || cfg.site_weight > 0.0) {
        return Err(Error::input(format!(
            "--content-weight/--site-weight need the run's signals.json, which {} does not \
             have (or --no-signals was given); retrain, or resume the run with this version",
            args.model.display()
        )));
    }
    cfg.check()?;
    Ok(cfg)
}

/// Run-length writer of a bedGraph track.
struct BedRuns<'w> {
    w: &'w mut dyn Write,
    path: String,
    run: Option<(usize, usize, u32)>,
}

impl BedRuns<'_> {
    fn push(&mut self, name: &str, pos: usize, value: f32) -> Result<()> {
        let v = (value.clamp(0.0, 1.0) * 100.0).round() as u32;
        match &mut self.run {
            Some((_, end, rv)) if *end == pos && *rv == v => *end += 1,
            _ => {
                self.flush(name)?;
                self.run = Some((pos, pos + 1, v));
            }
        }
        Ok(())
    }

    fn flush(&mut self, name: &str) -> Result<()> {
        if let Some((s, e, v)) = self.run.take() {
            writeln!(self.w, "{name}\t{s}\t{e}\t{}.{:02}", v / 100, v % 100)
                .map_err(|e| Error::io(&self.path, e))?;
        }
        Ok(())
    }
}

/// Per-record streaming state.
struct Streamer<'a, 'w> {
    run: &'a LoadedSegmentRun,
    tiles: TileOptions,
    chunk: usize,
    ctx: usize,
    decode: DecodeConfig,
    bed_class: usize,
    bed: Option<BedRuns<'w>>,
    progress: &'a (dyn Fn(u64) + Sync),
    genes: Vec<PredictedGene>,
    decode_error: Option<Error>,
    // Current record.
    name: String,
    buf: Vec<u8>,
    buf_start: usize,
    core_start: usize,
}

impl Streamer<'_, '_> {
    fn start_record(&mut self, name: &str) {
        self.name = name.to_string();
        self.buf.clear();
        self.buf_start = 0;
        self.core_start = 0;
    }

    fn push(&mut self, bases: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(bases);
        while self.buf_start + self.buf.len() >= self.core_start + self.chunk + self.ctx {
            let end = self.core_start + self.chunk;
            self.process(end)?;
        }
        Ok(())
    }

    /// Predict, write and decode the core `[core_start, core_end)`.
    fn process(&mut self, core_end: usize) -> Result<()> {
        let total_end = self.buf_start + self.buf.len();
        let ext_start = self.core_start.saturating_sub(self.ctx).max(self.buf_start);
        let ext_end = (core_end + self.ctx).min(total_end);
        let region = &self.buf[ext_start - self.buf_start..ext_end - self.buf_start];
        let (plus, minus) = segment::predict_region(
            &self.run.model,
            self.run.tokenizer.as_ref(),
            region,
            &self.tiles,
            self.progress,
        )?;
        let k = self.run.model.config.num_classes;
        if let Some(bed) = &mut self.bed {
            for pos in self.core_start..core_end {
                let i = pos - ext_start;
                let p = segment::coarse_row(&plus[i * k..(i + 1) * k]);
                let m = segment::coarse_row(&minus[i * k..(i + 1) * k]);
                bed.push(&self.name, pos, p[self.bed_class].max(m[self.bed_class]))?;
            }
        }
        if self.decode_error.is_none() {
            match decode::decode(&self.name, ext_start, region, &plus, &minus, &self.decode) {
                Ok(genes) => self.genes.extend(
                    genes
                        .into_iter()
                        .filter(|g| (self.core_start..core_end).contains(&g.gene.span.start)),
                ),
                Err(e) => self.decode_error = Some(e),
            }
        }
        self.core_start = core_end;
        // Keep `ctx` bases of left context for the next chunk.
        let keep_from = self.core_start.saturating_sub(self.ctx).max(self.buf_start);
        self.buf.drain(..keep_from - self.buf_start);
        self.buf_start = keep_from;
        Ok(())
    }

    fn finish_record(&mut self) -> Result<()> {
        let end = self.buf_start + self.buf.len();
        while self.core_start < end {
            let core_end = (self.core_start + self.chunk).min(end);
            self.process(core_end)?;
        }
        let name = self.name.clone();
        if let Some(bed) = &mut self.bed {
            bed.flush(&name)?;
        }
        Ok(())
    }
}

/// Summary of one `annotate` run.
struct Summary {
    regions: Vec<(String, usize)>,
    genes: Vec<PredictedGene>,
    decode_error: Option<Error>,
}

fn stream(
    args: &Args,
    run: &LoadedSegmentRun,
    bed: Option<&mut dyn Write>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Summary> {
    let bed_class = CLASS_NAMES
        .iter()
        .position(|c| *c == args.bed_class)
        .ok_or_else(|| {
            Error::input(format!(
                "--bed-class {}: not a class (known: {})",
                args.bed_class,
                CLASS_NAMES.join(", ")
            ))
        })?;
    if args.chunk == 0 {
        return Err(Error::input("--chunk must be at least 1"));
    }
    let spec = &run.config.segment;
    let tiles = TileOptions {
        tile: args.tile.unwrap_or(spec.tile),
        overlap: args.overlap.unwrap_or(spec.overlap),
        rc_average: !args.no_rc_average,
    };
    if tiles.tile == 0 || tiles.overlap >= tiles.tile {
        return Err(Error::input(format!(
            "--tile ({}) must be positive and larger than --overlap ({})",
            tiles.tile, tiles.overlap
        )));
    }
    let decode_cfg = decoder_config(args, run)?;
    let mut st = Streamer {
        run,
        tiles,
        chunk: args.chunk,
        ctx: args.chunk_overlap,
        decode: decode_cfg,
        bed_class,
        bed: bed.map(|w| BedRuns {
            w,
            path: args
                .bed
                .as_ref()
                .map_or("-".into(), |p| p.display().to_string()),
            run: None,
        }),
        progress,
        genes: Vec::new(),
        decode_error: None,
        name: String::new(),
        buf: Vec::new(),
        buf_start: 0,
        core_start: 0,
    };
    if let Some(b) = &mut st.bed {
        writeln!(
            b.w,
            "track type=bedGraph name=\"p_{}\" description=\"genolm annotate: P({}) per base, max over strands\"",
            args.bed_class, args.bed_class
        )
        .map_err(|e| Error::io(&b.path, e))?;
    }
    let mut reader = Reader::open(&args.genome, SeqPolicy::default())?;
    let label = reader.label().to_string();
    let mut regions = Vec::new();
    let mut norm = Vec::new();
    while let Some(h) = reader.next_header()? {
        st.start_record(&h.name);
        let n = reader.read_sequence(&h, |chunk, line| {
            norm.clear();
            norm.extend_from_slice(chunk);
            seq::normalize_in_place(&mut norm, SeqPolicy::default()).map_err(|i| {
                Error::at(
                    &label,
                    line,
                    format!(
                        "record '{}': invalid base {}",
                        h.name,
                        seq::show_byte(chunk[i])
                    ),
                )
            })?;
            norm.make_ascii_uppercase();
            st.push(&norm)
        })?;
        st.finish_record()?;
        regions.push((h.name.clone(), n as usize));
    }
    if regions.is_empty() {
        return Err(Error::input(format!("{}: no FASTA records", args.genome)));
    }
    Ok(Summary {
        regions,
        genes: st.genes,
        decode_error: st.decode_error,
    })
}

/// Run `genolm annotate`.
pub fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let run = segment::load_run(&args.model)?;
    let bar = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} {human_pos} bases annotated, {per_sec} (bases/s) {msg}",
            )
            .map_err(|e| Error::Internal(e.to_string()))?,
        );
        b
    };
    let progress = |n: u64| bar.inc(n);
    let summary = match &args.bed {
        Some(path) => {
            let mut out = None;
            crate::io::write_atomic(path, |w| {
                out = Some(stream(&args, &run, Some(w), &progress)?);
                Ok(())
            })?;
            out.ok_or_else(|| Error::Internal("annotate: no summary".into()))?
        }
        None => stream(&args, &run, None, &progress)?,
    };
    bar.finish_and_clear();
    let bases: usize = summary.regions.iter().map(|r| r.1).sum();
    let secs = started.elapsed().as_secs_f64();
    if let Some(e) = summary.decode_error {
        let wrote = args
            .bed
            .as_ref()
            .map(|p| format!("; probabilities written to {}", p.display()))
            .unwrap_or_default();
        return Err(Error::input(format!(
            "decoding failed after predicting {bases} bases{wrote}: {}",
            crate::error::one_line(&e.to_string())
        )));
    }
    let mut genes = summary.genes;
    genes.sort_by(|a, b| {
        (&a.gene.seqid, a.gene.span.start, a.gene.span.end).cmp(&(
            &b.gene.seqid,
            b.gene.span.start,
            b.gene.span.end,
        ))
    });
    // Keep sequence order of the FASTA, not name order.
    let order: std::collections::HashMap<&str, usize> = summary
        .regions
        .iter()
        .enumerate()
        .map(|(i, r)| (r.0.as_str(), i))
        .collect();
    genes.sort_by_key(|g| (order.get(g.gene.seqid.as_str()).copied(), g.gene.span.start));
    let scores: Vec<f64> = genes.iter().map(|g| g.score).collect();
    let models: Vec<crate::io::gff::Gene> = genes.into_iter().map(|g| g.gene).collect();
    crate::io::write_atomic(&args.out, |mut w| {
        crate::io::gffwrite::write_gff3(&mut w, "genolm", &summary.regions, &models, Some(&scores))
    })?;
    println!(
        "annotate: {} genes on {} sequences ({bases} bases) in {secs:.1} s, {:.0} bases/s -> {}",
        models.len(),
        summary.regions.len(),
        bases as f64 / secs.max(1e-9),
        args.out.display()
    );
    Ok(())
}
