//! Byte-pair encoding over DNA, stored as a Hugging Face `tokenizer.json`.
//!
//! [`Bpe::from_file`] loads any BPE `tokenizer.json`, including ones trained by other projects
//! (GENA-LM: BPE trained with HF tokenizers on the T2T human genome, 32 000 tokens, special
//! tokens `[UNK]`=0 `[CLS]`=1 `[SEP]`=2 `[PAD]`=3 `[MASK]`=4, `[CLS] $A [SEP]` template).
//! Special-token ids are whatever the file says. Padding and truncation settings in the file
//! are ignored: genolm pads batches itself. When the vocabulary has upper-case `A` but not
//! lower-case `a`, input is upper-cased before encoding.
//!
//! Sequences longer than [`MAX_PIECE`] (1 MiB) are encoded in independent 1 MiB pieces.
//!
//! [`train`] learns a vocabulary from sequence chunks (see [`sample_chunks`], which draws a
//! bounded, seeded sample of ~1 kb chunks from FASTA files: the HF trainer needs about 60 MB of
//! memory per MB of training text). Trained tokenizers use the shared special-token ids
//! `[PAD]`=0 `[UNK]`=1 `[CLS]`=2 `[SEP]`=3 `[MASK]`=4, an initial alphabet A C G T N, no
//! pre-tokenizer, a `[CLS] $A [SEP]` template and a `Fuse` decoder.

use std::borrow::Cow;
use std::collections::HashSet;
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde_json::Value;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Decoder, Encoding, Tokenizer as HfTokenizer};

use super::{SpecialTokens, Tokenizer, SPECIAL_TOKENS};
use crate::error::{Error, Result};
use crate::io::fasta::Reader;
use crate::seq::SeqPolicy;

/// Inputs longer than this many bytes are encoded as independent pieces of this size, in
/// parallel: memory stays bounded on chromosome-scale records, and merges never cross a piece
/// boundary (1 MiB, so the effect is negligible).
pub const MAX_PIECE: usize = 1 << 20;

/// A BPE tokenizer backed by the `tokenizers` crate (spec `bpe:PATH`).
#[derive(Debug, Clone)]
pub struct Bpe {
    inner: HfTokenizer,
    /// Where it came from (a path, or a label for in-memory tokenizers).
    source: String,
    specials: SpecialTokens,
    /// Every id the file marks as special (skipped by decode, except `[UNK]`).
    special_ids: HashSet<u32>,
    /// Upper-case input before encoding.
    upper: bool,
    vocab_size: usize,
}

impl Bpe {
    /// Load a Hugging Face `tokenizer.json` with a BPE model; errors name the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Bpe> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        if path.is_dir() {
            return Err(Error::input(format!(
                "{shown}: is a directory, expected a tokenizer.json file"
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| Error::io(&shown, e))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::input(format!("{shown}: not a tokenizer.json (not UTF-8 text)")))?;
        Self::from_json_str(&text, &shown)
    }

    /// Parse `tokenizer.json` text; `label` names it in errors.
    pub fn from_json_str(json: &str, label: &str) -> Result<Bpe> {
        if json.trim().is_empty() {
            return Err(Error::input(format!(
                "{label}: empty file, expected a Hugging Face tokenizer.json"
            )));
        }
        // Parse to a value first: syntax errors become clean messages, and the typed
        // deserialisation below then never sees malformed JSON.
        let mut value: Value = serde_json::from_str(json)
            .map_err(|e| Error::input(format!("{label}: not valid JSON ({e})")))?;
        check_structure(&mut value).map_err(|m| Error::input(format!("{label}: {m}")))?;
        let inner: HfTokenizer = serde_json::from_value(value)
            .map_err(|e| Error::input(format!("{label}: not a valid tokenizer.json ({e})")))?;
        Ok(Self::wrap(inner, label))
    }

    /// Wrap a loaded or trained HF tokenizer.
    fn wrap(mut inner: HfTokenizer, source: &str) -> Bpe {
        inner.with_padding(None);
        let _ = inner.with_truncation(None);
        let find = |names: &[&str]| names.iter().find_map(|n| inner.token_to_id(n));
        let model_unk = match inner.get_model() {
            tokenizers::models::ModelWrapper::BPE(b) => b.unk_token.clone(),
            _ => None,
        };
        let unk = model_unk
            .as_deref()
            .and_then(|u| inner.token_to_id(u))
            .or_else(|| find(&["[UNK]", "<unk>"]));
        let specials = SpecialTokens {
            pad: find(&["[PAD]", "<pad>"]),
            unk,
            cls: find(&["[CLS]", "<cls>", "<s>"]),
            sep: find(&["[SEP]", "<sep>", "</s>"]),
            mask: find(&["[MASK]", "<mask>"]),
        };
        let mut special_ids: HashSet<u32> = inner
            .get_added_tokens_decoder()
            .iter()
            .filter(|(_, t)| t.special)
            .map(|(id, _)| *id)
            .collect();
        special_ids.extend(specials.iter().map(|(_, id)| id));
        let vocab = inner.get_vocab(true);
        let vocab_size = vocab.values().map(|&id| id as usize + 1).max().unwrap_or(0);
        let upper = vocab.contains_key("A") && !vocab.contains_key("a");
        Bpe {
            inner,
            source: source.to_string(),
            specials,
            special_ids,
            upper,
            vocab_size,
        }
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &HfTokenizer {
        &self.inner
    }

    /// Where this tokenizer was loaded from (or a label).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Serialise to `tokenizer.json` text.
    pub fn to_json(&self, pretty: bool) -> Result<String> {
        self.inner
            .to_string(pretty)
            .map_err(|e| Error::Internal(format!("cannot serialise tokenizer: {e}")))
    }

    /// Write `tokenizer.json` atomically (pretty-printed).
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = self.to_json(true)?;
        let shown = path.display().to_string();
        crate::io::write_atomic(path, |w| {
            w.write_all(json.as_bytes())
                .and_then(|_| w.write_all(b"\n"))
                .map_err(|e| Error::io(&shown, e))
        })
    }

    /// The input as text, upper-cased when the vocabulary is upper-case only.
    fn text<'a>(&self, seq: &'a [u8]) -> Result<Cow<'a, str>> {
        let s = std::str::from_utf8(seq).map_err(|e| {
            Error::input(format!(
                "sequence is not UTF-8 text (byte offset {})",
                e.valid_up_to()
            ))
        })?;
        if self.upper && s.bytes().any(|b| b.is_ascii_lowercase()) {
            Ok(Cow::Owned(s.to_ascii_uppercase()))
        } else {
            Ok(Cow::Borrowed(s))
        }
    }

    fn encode_impl(&self, seq: &[u8], add_special: bool, out: &mut Vec<u32>) -> Result<()> {
        let text = self.text(seq)?;
        let fail = |e: tokenizers::Error| {
            Error::input(format!("{}: BPE encoding failed: {e}", self.source))
        };
        if text.len() <= MAX_PIECE {
            let enc = self
                .inner
                .encode_fast(text.as_ref(), add_special)
                .map_err(fail)?;
            out.extend_from_slice(enc.get_ids());
            return Ok(());
        }
        // Long input: independent pieces, in parallel, then the post-processor once.
        let encs = split_pieces(&text, MAX_PIECE)
            .par_iter()
            .map(|p| self.inner.encode_fast(*p, false))
            .collect::<tokenizers::Result<Vec<Encoding>>>()
            .map_err(fail)?;
        if add_special {
            let merged = Encoding::merge(encs, false);
            let enc = self.inner.post_process(merged, None, true).map_err(fail)?;
            out.extend_from_slice(enc.get_ids());
        } else {
            for e in &encs {
                out.extend_from_slice(e.get_ids());
            }
        }
        Ok(())
    }
}

/// Cut `text` into consecutive pieces of at most `max` bytes, on character boundaries.
fn split_pieces(text: &str, max: usize) -> Vec<&str> {
    let mut pieces = Vec::with_capacity(text.len() / max + 1);
    let mut rest = text;
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if cut == 0 {
            // A character longer than `max`: keep it whole.
            cut = max + 1;
            while !rest.is_char_boundary(cut) {
                cut += 1;
            }
        }
        let (head, tail) = rest.split_at(cut);
        pieces.push(head);
        rest = tail;
    }
    if !rest.is_empty() || pieces.is_empty() {
        pieces.push(rest);
    }
    pieces
}

/// Check that a JSON value looks like a BPE tokenizer.json, before typed deserialisation, and
/// normalise legacy spellings (`"type": "BPE"` for the BPE decoder).
fn check_structure(value: &mut Value) -> std::result::Result<(), String> {
    let obj = value
        .as_object_mut()
        .ok_or("not a tokenizer.json (the top level is not a JSON object)")?;
    let model = obj
        .get("model")
        .ok_or("not a tokenizer.json (no \"model\" field)")?;
    if !model.is_object() {
        return Err("not a tokenizer.json (\"model\" is not an object)".into());
    }
    match model.get("type").and_then(Value::as_str) {
        Some("BPE") => {}
        None if model.get("merges").is_some() && model.get("vocab").is_some() => {}
        Some(other) => return Err(format!("model type is {other}, expected BPE")),
        None => return Err("not a BPE tokenizer (model has no type, vocab or merges)".into()),
    }
    if let Some(dec) = obj.get_mut("decoder").and_then(Value::as_object_mut) {
        if dec.get("type").and_then(Value::as_str) == Some("BPE") {
            dec.insert("type".into(), Value::String("BPEDecoder".into()));
        }
    }
    // A template naming a special token it does not define would panic inside `tokenizers`
    // at encode time; reject it here instead.
    if let Some(pp) = obj.get("post_processor").filter(|p| !p.is_null()) {
        check_template(pp)?;
    }
    Ok(())
}

fn check_template(pp: &Value) -> std::result::Result<(), String> {
    let processors: Vec<&Value> = match pp.get("type").and_then(Value::as_str) {
        Some("TemplateProcessing") => vec![pp],
        Some("Sequence") => pp
            .get("processors")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default(),
        _ => return Ok(()),
    };
    for p in processors {
        if p.get("type").and_then(Value::as_str) != Some("TemplateProcessing") {
            continue;
        }
        let defined = p.get("special_tokens").and_then(Value::as_object);
        for key in ["single", "pair"] {
            let Some(pieces) = p.get(key).and_then(Value::as_array) else {
                continue;
            };
            for piece in pieces {
                let Some(id) = piece
                    .get("SpecialToken")
                    .and_then(|s| s.get("id"))
                    .and_then(Value::as_str)
                else {
                    continue;
                };
                let tok = defined.and_then(|d| d.get(id)).ok_or_else(|| {
                    format!(
                        "post_processor template uses special token {id} but does not define it"
                    )
                })?;
                let n_ids = tok.get("ids").and_then(Value::as_array).map(Vec::len);
                let n_tokens = tok.get("tokens").and_then(Value::as_array).map(Vec::len);
                if n_ids != n_tokens {
                    return Err(format!(
                        "post_processor special token {id} has different numbers of ids and tokens"
                    ));
                }
            }
        }
    }
    Ok(())
}

impl Tokenizer for Bpe {
    fn spec(&self) -> String {
        format!("bpe:{}", self.source)
    }

    fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    fn special_tokens(&self) -> SpecialTokens {
        self.specials
    }

    fn encode_into(&self, seq: &[u8], out: &mut Vec<u32>) -> Result<()> {
        self.encode_impl(seq, false, out)
    }

    /// Uses the file's post-processor (e.g. GENA-LM's `[CLS] $A [SEP]` template).
    fn encode_with_special(&self, seq: &[u8]) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        self.encode_impl(seq, true, &mut out)?;
        Ok(out)
    }

    /// Concatenates token strings (through the file's decoder when it has one); `[UNK]` → N.
    fn decode(&self, ids: &[u32]) -> Result<Vec<u8>> {
        let mut tokens = Vec::with_capacity(ids.len());
        for (i, &id) in ids.iter().enumerate() {
            let tok = self.inner.id_to_token(id).ok_or_else(|| {
                Error::input(format!(
                    "BPE id {id} at position {i} is not in the vocabulary of {} ({} ids)",
                    self.source, self.vocab_size
                ))
            })?;
            if Some(id) == self.specials.unk {
                tokens.push("N".to_string());
            } else if !self.special_ids.contains(&id) {
                tokens.push(tok);
            }
        }
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        let text = match self.inner.get_decoder() {
            Some(d) => d
                .decode(tokens)
                .map_err(|e| Error::input(format!("{}: BPE decoding failed: {e}", self.source)))?,
            None => tokens.concat(),
        };
        Ok(text.into_bytes())
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }
}

/// Settings for [`train`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainConfig {
    /// Target vocabulary size, special tokens and the A C G T N alphabet included.
    pub vocab_size: usize,
    /// A pair must occur at least this often to be merged.
    pub min_frequency: u64,
    /// Longest token allowed, in bases (`None`: no limit).
    pub max_token_length: Option<usize>,
    /// Show the `tokenizers` progress bars on stderr.
    pub show_progress: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            vocab_size: 4096,
            min_frequency: 2,
            max_token_length: None,
            show_progress: false,
        }
    }
}

/// Smallest trainable vocabulary: 5 special tokens + A C G T N.
pub const MIN_VOCAB: usize = 10;
/// Largest vocabulary `train` accepts.
pub const MAX_VOCAB: usize = 1_000_000;

/// Train a DNA BPE tokenizer on text chunks (one chunk = one BPE word).
pub fn train<I, S>(chunks: I, cfg: &TrainConfig) -> Result<Bpe>
where
    I: Iterator<Item = S> + Send,
    S: AsRef<str> + Send,
{
    if !(MIN_VOCAB..=MAX_VOCAB).contains(&cfg.vocab_size) {
        return Err(Error::input(format!(
            "vocabulary size must be in {MIN_VOCAB}..={MAX_VOCAB} (got {})",
            cfg.vocab_size
        )));
    }
    if cfg.max_token_length == Some(0) {
        return Err(Error::input("max token length must be at least 1"));
    }
    let internal = |what: &str, e: &dyn std::fmt::Display| {
        Error::Internal(format!("BPE training: {what}: {e}"))
    };
    let model = BPE::builder()
        .unk_token(SPECIAL_TOKENS[1].to_string())
        .build()
        .map_err(|e| internal("model", &e))?;
    let mut tok = HfTokenizer::new(model);
    tok.with_decoder(Some(Fuse::new()));
    let trainer = BpeTrainerBuilder::new()
        .vocab_size(cfg.vocab_size)
        .min_frequency(cfg.min_frequency)
        .show_progress(cfg.show_progress)
        .special_tokens(
            SPECIAL_TOKENS
                .iter()
                .map(|t| AddedToken::from(t.to_string(), true))
                .collect(),
        )
        .initial_alphabet(['A', 'C', 'G', 'T', 'N'].into_iter().collect())
        .max_token_length(cfg.max_token_length)
        .build();
    let mut trainer = TrainerWrapper::BpeTrainer(trainer);
    tok.train(&mut trainer, chunks)
        .map_err(|e| internal("train", &e))?;
    let id = |t: &str| {
        tok.token_to_id(t)
            .ok_or_else(|| Error::Internal(format!("BPE training lost special token {t}")))
    };
    let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
    let template = TemplateProcessing::builder()
        .try_single("[CLS] $A [SEP]")
        .map_err(|e| internal("template", &e))?
        .try_pair("[CLS] $A [SEP] $B:1 [SEP]:1")
        .map_err(|e| internal("template", &e))?
        .special_tokens(vec![("[CLS]", cls), ("[SEP]", sep)])
        .build()
        .map_err(|e| internal("template", &e))?;
    tok.with_post_processor(Some(template));
    Ok(Bpe::wrap(tok, "<trained>"))
}

/// Settings for [`sample_chunks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleConfig {
    /// Chunk length in bases (each record is cut into consecutive chunks of this length).
    pub chunk_len: usize,
    /// At most this many bases are kept (`max_bases / chunk_len` chunks).
    pub max_bases: u64,
    /// Seed of the reservoir sample.
    pub seed: u64,
}

impl Default for SampleConfig {
    fn default() -> Self {
        SampleConfig {
            chunk_len: 1000,
            max_bases: 4_000_000,
            seed: 42,
        }
    }
}

/// A seeded sample of sequence chunks, and what it was drawn from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sample {
    /// The chunks kept (upper-case, IUPAC codes as N).
    pub chunks: Vec<String>,
    /// FASTA records read.
    pub records: u64,
    /// Bases read.
    pub bases_seen: u64,
    /// Chunks seen (all-N chunks excluded).
    pub chunks_seen: u64,
}

impl Sample {
    /// Total bases in the kept chunks.
    pub fn bases(&self) -> u64 {
        self.chunks.iter().map(|c| c.len() as u64).sum()
    }
}

/// Cut every record of `paths` into chunks and keep a uniform, seeded reservoir sample of
/// at most `max_bases / chunk_len` of them (memory stays bounded however large the input).
/// Chunks made only of N are skipped; the last, shorter chunk of a record is kept.
pub fn sample_chunks(paths: &[String], cfg: &SampleConfig) -> Result<Sample> {
    if cfg.chunk_len == 0 {
        return Err(Error::input("chunk length must be at least 1"));
    }
    let slots = (cfg.max_bases / cfg.chunk_len as u64) as usize;
    if slots == 0 {
        return Err(Error::input(format!(
            "max bases {} is smaller than one chunk of {} bases",
            cfg.max_bases, cfg.chunk_len
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut sample = Sample::default();
    for path in paths {
        for rec in Reader::open(path, SeqPolicy::default())? {
            let rec = rec?;
            sample.records += 1;
            sample.bases_seen += rec.seq.len() as u64;
            for piece in rec.seq.chunks(cfg.chunk_len) {
                if piece.iter().all(|&b| b == b'N' || b == b'n') {
                    continue;
                }
                let t = sample.chunks_seen;
                sample.chunks_seen += 1;
                if (t as usize) < slots {
                    sample.chunks.push(chunk_text(piece));
                } else {
                    let j = rng.random_range(0..=t);
                    if (j as usize) < slots {
                        sample.chunks[j as usize] = chunk_text(piece);
                    }
                }
            }
        }
    }
    Ok(sample)
}

fn chunk_text(piece: &[u8]) -> String {
    String::from_utf8_lossy(piece).to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::{from_spec, CLS, PAD, SEP, UNK};
    use proptest::prelude::*;
    use rand::Rng;

    fn corpus() -> Vec<String> {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let motifs = ["ACGTACGT", "TTTTAAAA", "GGGCCC", "ATATAT", "CAG"];
        (0..200)
            .map(|_| {
                let mut s = String::new();
                while s.len() < 500 {
                    if rng.random_bool(0.5) {
                        s.push_str(motifs[rng.random_range(0..motifs.len())]);
                    } else {
                        s.push(b"ACGT"[rng.random_range(0..4)] as char);
                    }
                }
                s
            })
            .collect()
    }

    fn small() -> Bpe {
        let cfg = TrainConfig {
            vocab_size: 120,
            ..TrainConfig::default()
        };
        train(corpus().iter(), &cfg).unwrap()
    }

    #[test]
    fn trains_with_fixed_special_ids() {
        let t = small();
        assert_eq!(t.vocab_size(), 120);
        assert_eq!(t.special_tokens(), SpecialTokens::FIXED);
        for (i, name) in SPECIAL_TOKENS.iter().enumerate() {
            assert_eq!(t.token_to_id(name), Some(i as u32));
        }
        for b in ["A", "C", "G", "T", "N"] {
            assert!(t.token_to_id(b).is_some(), "{b}");
        }
        let ids = t.encode(b"ACGTACGTTTTTAAAA").unwrap();
        assert!(ids.len() < 16, "{ids:?}");
        assert_eq!(t.decode(&ids).unwrap(), b"ACGTACGTTTTTAAAA");
        // Lower case is upper-cased; N stays N; the template wraps in CLS/SEP.
        assert_eq!(t.encode(b"acgt").unwrap(), t.encode(b"ACGT").unwrap());
        let w = t.encode_with_special(b"ACGN").unwrap();
        assert_eq!((w[0], *w.last().unwrap()), (CLS, SEP));
        assert_eq!(t.decode(&w).unwrap(), b"ACGN");
        // Unknown characters map to [UNK], which decodes to N.
        let x = t.encode(b"AXA").unwrap();
        assert!(x.contains(&UNK));
        assert_eq!(t.decode(&x).unwrap(), b"ANA");
        assert_eq!(t.decode(&[PAD, PAD]).unwrap(), b"");
        assert!(t.decode(&[120]).is_err());
        assert!(t.encode(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn json_round_trip() {
        let t = small();
        let json = t.to_json(true).unwrap();
        let back = Bpe::from_json_str(&json, "mem").unwrap();
        assert_eq!(back.to_json(true).unwrap(), json);
        let seq = b"GGGCCCATATATCAGCAGNNACGT";
        assert_eq!(back.encode(seq).unwrap(), t.encode(seq).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tok.json");
        t.save(&path).unwrap();
        let spec = format!("bpe:{}", path.display());
        let loaded = from_spec(&spec).unwrap();
        assert_eq!(loaded.spec(), spec);
        assert_eq!(loaded.encode(seq).unwrap(), t.encode(seq).unwrap());
    }

    #[test]
    fn training_is_deterministic() {
        let a = small().to_json(false).unwrap();
        let b = small().to_json(false).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn rejects_bad_training_settings() {
        for v in [0, 9, MAX_VOCAB + 1] {
            let cfg = TrainConfig {
                vocab_size: v,
                ..TrainConfig::default()
            };
            assert!(train(corpus().iter(), &cfg).is_err(), "{v}");
        }
    }

    #[test]
    fn rejects_malformed_json() {
        for (json, want) in [
            ("", "empty file"),
            ("  \n", "empty file"),
            ("{\"model\": ", "not valid JSON"),
            ("[1, 2]", "top level is not a JSON object"),
            ("{\"version\": \"1.0\"}", "no \"model\" field"),
            ("{\"model\": 3}", "\"model\" is not an object"),
            (
                "{\"model\": {\"type\": \"WordPiece\"}}",
                "model type is WordPiece",
            ),
            (
                "{\"model\": {\"type\": \"BPE\", \"vocab\": [1]}}",
                "not a valid tokenizer.json",
            ),
            (
                "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"A\": 0}, \"merges\": [\"A C\"]}}",
                "not a valid tokenizer.json",
            ),
            (
                "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"A\": 0}, \"merges\": []}, \
                 \"decoder\": {\"type\": \"BPE\", \"suffix\": 3}}",
                "not a valid tokenizer.json",
            ),
            (
                "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"A\": 0}, \"merges\": []}, \
                 \"post_processor\": {\"type\": \"TemplateProcessing\", \
                 \"single\": [{\"SpecialToken\": {\"id\": \"[CLS]\", \"type_id\": 0}}], \
                 \"pair\": [], \"special_tokens\": {}}}",
                "does not define it",
            ),
        ] {
            let e = Bpe::from_json_str(json, "x.json").unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.starts_with("x.json: ") && msg.contains(want),
                "{json}: {msg}"
            );
            assert_eq!(e.exit_code(), 2);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn roundtrip_acgtn(s in "[ACGTN]{0,400}") {
            let t = small_cached();
            let ids = t.encode(s.as_bytes()).unwrap();
            prop_assert_eq!(t.decode(&ids).unwrap(), s.as_bytes());
        }
    }

    fn small_cached() -> &'static Bpe {
        static T: std::sync::OnceLock<Bpe> = std::sync::OnceLock::new();
        T.get_or_init(small)
    }

    #[test]
    fn long_inputs_are_encoded_in_pieces() {
        let t = small_cached();
        let unit = b"ACGTACGTTTTTAAAAGGGCCCATATATCAG";
        let seq: Vec<u8> = unit
            .iter()
            .copied()
            .cycle()
            .take(MAX_PIECE * 2 + 777)
            .collect();
        let ids = t.encode(&seq).unwrap();
        let mut want = Vec::new();
        for piece in seq.chunks(MAX_PIECE) {
            want.extend(t.encode(piece).unwrap());
        }
        assert_eq!(ids, want);
        assert_eq!(t.decode(&ids).unwrap(), seq);
        let w = t.encode_with_special(&seq).unwrap();
        assert_eq!(w.len(), ids.len() + 2);
        assert_eq!((w[0], w[w.len() - 1]), (CLS, SEP));
        assert_eq!(split_pieces("aéb", 2), vec!["a", "é", "b"]);
        assert_eq!(split_pieces("éé", 1), vec!["é", "é"]);
        assert_eq!(split_pieces("", 4), vec![""]);
    }

    #[test]
    fn samples_are_bounded_and_seeded() {
        let dir = tempfile::tempdir().unwrap();
        let fa = dir.path().join("x.fa");
        let mut text = String::new();
        for r in 0..5 {
            text.push_str(&format!(">r{r}\n"));
            let s: String = (0..2500)
                .map(|i| b"ACGT"[(i * 7 + r) % 4] as char)
                .collect();
            text.push_str(&s);
            text.push_str("\nNNNNNNNNNN\n");
        }
        std::fs::write(&fa, text).unwrap();
        let paths = vec![fa.display().to_string()];
        let cfg = SampleConfig {
            chunk_len: 1000,
            max_bases: 4000,
            seed: 1,
        };
        let a = sample_chunks(&paths, &cfg).unwrap();
        assert_eq!(a.records, 5);
        assert_eq!(a.bases_seen, 5 * 2510);
        assert_eq!(a.chunks_seen, 15);
        assert_eq!(a.chunks.len(), 4);
        assert!(a.bases() <= 4000);
        assert_eq!(sample_chunks(&paths, &cfg).unwrap(), a);
        let other = sample_chunks(&paths, &SampleConfig { seed: 2, ..cfg }).unwrap();
        assert_eq!(other.chunks_seen, 15);
        let bad = SampleConfig {
            max_bases: 10,
            ..cfg
        };
        assert!(sample_chunks(&paths, &bad).is_err());
        assert!(sample_chunks(&["/nonexistent.fa".into()], &cfg).is_err());
    }
}
