//! Choosing the decoder's weights and penalties on a validation region.
//!
//! A segmentation network's per-base probabilities are not calibrated for Viterbi decoding: on
//! a small genome they are confident and blurred at exon boundaries, while the sequence signals
//! ([`crate::infer::signals`]) are sharp but weak alone. [`tune`] decodes the validation region
//! with every setting of a grid and scores the genes against the reference restricted to that
//! region ([`crate::infer::evaluate`]); the best setting is written to the run's
//! `decoder.json`, which `genolm annotate` uses by default. The test region is never used.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::infer::decode::{decode, DecodeConfig};
use crate::infer::evaluate::{evaluate, Region, Report};
use crate::io::gff::{Annotation, Interval};

/// The tuned part of a [`DecodeConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DecoderSettings {
    /// Weight of the network's log-probabilities.
    pub nn_weight: f64,
    /// Weight of the network's genic-or-intergenic evidence (0 in files written before it).
    #[serde(default)]
    pub genic_weight: f64,
    /// Weight of the content models.
    pub content_weight: f64,
    /// Weight of the site matrices (donor, acceptor, start).
    pub site_weight: f64,
    /// Cost (nats) of opening a gene.
    pub gene_penalty: f64,
    /// Cost (nats) of opening an intron.
    pub intron_penalty: f64,
    /// Weight of the network's codon positions (0 in files written before it, and for
    /// networks without them).
    #[serde(default)]
    pub frame_weight: f64,
}

impl Default for DecoderSettings {
    /// The network alone, with [`DecodeConfig::default`]'s penalties.
    fn default() -> Self {
        let d = DecodeConfig::default();
        DecoderSettings {
            nn_weight: d.nn_weight,
            genic_weight: d.genic_weight,
            content_weight: d.content_weight,
            site_weight: d.site_weight,
            gene_penalty: d.gene_penalty,
            intron_penalty: d.intron_penalty,
            frame_weight: d.frame_weight,
        }
    }
}

impl DecoderSettings {
    /// Copy these settings into `cfg`.
    pub fn apply(&self, cfg: &mut DecodeConfig) {
        cfg.nn_weight = self.nn_weight;
        cfg.genic_weight = self.genic_weight;
        cfg.content_weight = self.content_weight;
        cfg.site_weight = self.site_weight;
        cfg.gene_penalty = self.gene_penalty;
        cfg.intron_penalty = self.intron_penalty;
        cfg.frame_weight = self.frame_weight;
    }
}

/// The settings tried by default: the network alone (weight 1, no signals), and network weight
/// × genic weight × site weight with content weight 1; each with every gene and intron penalty.
/// Without signals only the first part. Without `introns` (prokaryotes): one intron penalty.
pub fn default_grid(with_signals: bool, introns: bool) -> Vec<DecoderSettings> {
    let mut mixes = vec![(1.0, 0.0, 0.0, 0.0)];
    if with_signals {
        for nn in [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0] {
            for genic in [0.0, 0.25, 1.0] {
                for site in [0.0, 0.5, 1.0, 2.0, 3.0] {
                    mixes.push((nn, genic, 1.0, site));
                }
            }
        }
    }
    let mut out = Vec::new();
    for (nn_weight, genic_weight, content_weight, site_weight) in mixes {
        for gene_penalty in [2.0, 5.0, 10.0, 20.0, 40.0] {
            let intron_penalties: &[f64] = if introns {
                &[2.0, 4.0, 8.0, 12.0, 20.0]
            } else {
                &[4.0]
            };
            for &intron_penalty in intron_penalties {
                out.push(DecoderSettings {
                    nn_weight,
                    genic_weight,
                    content_weight,
                    site_weight,
                    gene_penalty,
                    intron_penalty,
                    frame_weight: 0.0,
                });
            }
        }
    }
    out
}

/// How many first-stage settings [`frame_grid`] extends in `train --task segment`.
pub const FRAME_TOP: usize = 25;

/// Frame weights tried by [`frame_grid`].
pub const FRAME_WEIGHTS: [f64; 5] = [0.1, 0.25, 0.5, 1.0, 2.0];

/// The second stage for a framed network: the `top` best distinct settings of `trials` (by
/// objective; the network alone excluded), each with every weight of [`FRAME_WEIGHTS`].
pub fn frame_grid(trials: &[Trial], top: usize) -> Vec<DecoderSettings> {
    let mut order: Vec<&Trial> = trials
        .iter()
        .filter(|t| t.settings != DecoderSettings::default())
        .collect();
    order.sort_by(|a, b| b.objective.total_cmp(&a.objective));
    let mut out = Vec::new();
    for t in order.into_iter().take(top) {
        for w in FRAME_WEIGHTS {
            out.push(DecoderSettings {
                frame_weight: w,
                ..t.settings
            });
        }
    }
    out
}

/// One region to decode: bases and per-base probabilities of both tracks (row-major,
/// `len × k`, 6 classes or 8 framed), at `offset` on sequence `seqid`.
pub struct Evidence {
    /// Sequence name (as in the reference).
    pub seqid: String,
    /// Start of the region on the sequence.
    pub offset: usize,
    /// Bases.
    pub seq: Vec<u8>,
    /// Plus-track probabilities.
    pub plus: Vec<f32>,
    /// Minus-track probabilities.
    pub minus: Vec<f32>,
}

/// The score of one setting on the validation region.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trial {
    /// The setting.
    pub settings: DecoderSettings,
    /// `base.cds.f1`.
    pub base_cds_f1: f64,
    /// `exon.all.f1`.
    pub exon_all_f1: f64,
    /// `gene.all.f1`.
    pub gene_all_f1: f64,
    /// Genes decoded.
    pub genes: usize,
    /// What is maximised: the mean of `base.cds.f1` and `exon.all.f1`.
    pub objective: f64,
}

/// Decode `regions` with `cfg` and evaluate against `reference` inside them.
pub fn decode_and_evaluate(
    regions: &[Evidence],
    reference: &Annotation,
    cfg: &DecodeConfig,
) -> Result<(Report, Annotation)> {
    let mut pred = Annotation {
        source: "decoded".into(),
        ..Annotation::default()
    };
    for r in regions {
        let genes = decode(&r.seqid, r.offset, &r.seq, &r.plus, &r.minus, cfg)?;
        pred.genes.extend(genes.into_iter().map(|g| g.gene));
    }
    let report = evaluate(&pred, reference, Some(&spans(regions)))?;
    Ok((report, pred))
}

/// The sequence spans of `regions`, as evaluation regions.
pub fn spans(regions: &[Evidence]) -> Vec<Region> {
    regions
        .iter()
        .map(|r| Region {
            seqid: r.seqid.clone(),
            iv: Interval {
                start: r.offset,
                end: r.offset + r.seq.len(),
            },
        })
        .collect()
}

/// Score every setting of `grid` on `regions` (rayon over settings); trials in grid order.
pub fn tune(
    regions: &[Evidence],
    reference: &Annotation,
    base: &DecodeConfig,
    grid: &[DecoderSettings],
) -> Result<Vec<Trial>> {
    if grid.is_empty() || regions.is_empty() {
        return Err(Error::input(
            "decoder tuning needs at least one setting and one region",
        ));
    }
    grid.par_iter()
        .map(|s| {
            let mut cfg = base.clone();
            s.apply(&mut cfg);
            let (rep, pred) = decode_and_evaluate(regions, reference, &cfg)?;
            let (c, e) = (rep.f1("base", "cds"), rep.f1("exon", "all"));
            Ok(Trial {
                settings: *s,
                base_cds_f1: c,
                exon_all_f1: e,
                gene_all_f1: rep.f1("gene", "all"),
                genes: pred.genes.len(),
                objective: 0.5 * (c + e),
            })
        })
        .collect()
}

/// The best trial (highest objective; the first of equals).
pub fn best(trials: &[Trial]) -> Option<&Trial> {
    trials
        .iter()
        .reduce(|a, b| if b.objective > a.objective { b } else { a })
}

/// `decoder.json` of a run: the chosen settings and how they scored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DecoderFile {
    /// The chosen settings.
    pub settings: DecoderSettings,
    /// Its validation scores.
    pub chosen: Trial,
    /// The network alone with default penalties, on the same region.
    pub network_only: Trial,
    /// Every trial, in grid order.
    pub trials: Vec<Trial>,
}

/// Read a run's `decoder.json`, if it has one.
pub fn read_run_decoder(dir: &std::path::Path) -> Result<Option<DecoderSettings>> {
    let p = dir.join("decoder.json");
    if !p.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&p).map_err(|e| Error::io(p.display(), e))?;
    let f: DecoderFile = serde_json::from_str(&text).map_err(|e| {
        Error::input(format!(
            "{}: {}",
            p.display(),
            crate::error::one_line(&e.to_string())
        ))
    })?;
    let mut cfg = DecodeConfig::default();
    f.settings.apply(&mut cfg);
    cfg.check()
        .map_err(|e| Error::input(format!("{}: {e}", p.display())))?;
    Ok(Some(f.settings))
}
