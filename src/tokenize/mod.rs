//! DNA tokenizers behind one trait: one-hot, character, k-mer and BPE (HF `tokenizer.json`).
//!
//! Build one from a spec string with [`from_spec`]:
//!
//! | spec | tokenizer |
//! |---|---|
//! | `onehot`, `onehot:zero`, `onehot:quarter` | [`onehot::OneHot`]; N is an all-zero row (default) or 0.25 in each channel |
//! | `char` | [`char::CharTokenizer`]: A C G T N plus the special tokens |
//! | `kmer:K`, `kmer:K:STRIDE`, `kmer:K:STRIDE:TAIL` | [`kmer::Kmer`]; K in 1..=12, STRIDE ≥ 1 (default K, i.e. non-overlapping), TAIL one of `bases` (default), `drop`, `unk`, `error` |
//! | `bpe:PATH` | [`bpe::Bpe`] loaded from a Hugging Face `tokenizer.json` |
//!
//! Special tokens are shared by design. The character and k-mer tokenizers use fixed ids:
//! `[PAD]`=0, `[UNK]`=1, `[CLS]`=2, `[SEP]`=3, `[MASK]`=4 ([`PAD`], [`UNK`], [`CLS`], [`SEP`],
//! [`MASK`]). BPE uses whatever its file says (GENA-LM: `[UNK]`=0 `[CLS]`=1 `[SEP]`=2 `[PAD]`=3
//! `[MASK]`=4). One-hot has no special tokens; its ids are the base codes A=0 C=1 G=2 T=3 N=4.
//!
//! [`Tokenizer::encode`] never adds special tokens; [`Tokenizer::encode_with_special`] wraps the
//! ids in `[CLS] … [SEP]` (BPE: the file's post-processor).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use crate::error::{Error, Result};

pub mod bpe;
pub mod char;
pub mod kmer;
pub mod onehot;

pub use self::bpe::Bpe;
pub use self::char::CharTokenizer;
pub use self::kmer::{Kmer, Tail};
pub use self::onehot::{NValue, OneHot};

/// Fixed id of `[PAD]` in the character and k-mer vocabularies.
pub const PAD: u32 = 0;
/// Fixed id of `[UNK]` in the character and k-mer vocabularies.
pub const UNK: u32 = 1;
/// Fixed id of `[CLS]` in the character and k-mer vocabularies.
pub const CLS: u32 = 2;
/// Fixed id of `[SEP]` in the character and k-mer vocabularies.
pub const SEP: u32 = 3;
/// Fixed id of `[MASK]` in the character and k-mer vocabularies.
pub const MASK: u32 = 4;
/// Number of special tokens at the start of the character and k-mer vocabularies.
pub const N_SPECIAL: u32 = 5;
/// Special token strings, indexed by their fixed id.
pub const SPECIAL_TOKENS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// Largest k accepted by the k-mer tokenizer (4^12 = 16.7 M k-mers).
pub const MAX_K: usize = 12;

/// Ids of the special tokens a tokenizer has (`None` where it lacks one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpecialTokens {
    /// `[PAD]`: padding.
    pub pad: Option<u32>,
    /// `[UNK]`: unknown token (k-mers containing N, bytes outside the alphabet).
    pub unk: Option<u32>,
    /// `[CLS]`: start of sequence.
    pub cls: Option<u32>,
    /// `[SEP]`: end of sequence / separator.
    pub sep: Option<u32>,
    /// `[MASK]`: masked-language-model mask.
    pub mask: Option<u32>,
}

impl SpecialTokens {
    /// The fixed ids used by the character and k-mer tokenizers (0..=4).
    pub const FIXED: SpecialTokens = SpecialTokens {
        pad: Some(PAD),
        unk: Some(UNK),
        cls: Some(CLS),
        sep: Some(SEP),
        mask: Some(MASK),
    };

    /// `(name, id)` for each special token present, in the order PAD UNK CLS SEP MASK.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u32)> {
        [self.pad, self.unk, self.cls, self.sep, self.mask]
            .into_iter()
            .zip(SPECIAL_TOKENS)
            .filter_map(|(id, name)| id.map(|id| (name, id)))
    }

    /// True if `id` is one of these special tokens.
    pub fn contains(&self, id: u32) -> bool {
        self.iter().any(|(_, i)| i == id)
    }
}

/// A DNA tokenizer: sequence bytes to token ids (or a tensor) and back.
///
/// Input bytes are case-insensitive; anything outside A C G T is treated as N (one-hot, k-mer)
/// or `[UNK]` (character). All methods are thread-safe; [`Tokenizer::encode_batch`] runs on the
/// rayon pool.
pub trait Tokenizer: Send + Sync + fmt::Debug {
    /// The spec string that rebuilds this tokenizer with [`from_spec`].
    fn spec(&self) -> String;

    /// Number of ids (the largest id is `vocab_size() - 1`).
    fn vocab_size(&self) -> usize;

    /// Ids of the special tokens this tokenizer has.
    fn special_tokens(&self) -> SpecialTokens;

    /// Append the ids of `seq` to `out` (no special tokens added).
    fn encode_into(&self, seq: &[u8], out: &mut Vec<u32>) -> Result<()>;

    /// Decode ids back to bases. Special tokens other than `[UNK]` are skipped.
    fn decode(&self, ids: &[u32]) -> Result<Vec<u8>>;

    /// The string form of one id, or `None` when out of range.
    fn id_to_token(&self, id: u32) -> Option<String>;

    /// The id of a token string, or `None` when not in the vocabulary.
    fn token_to_id(&self, token: &str) -> Option<u32>;

    /// Ids of `seq` (no special tokens added).
    fn encode(&self, seq: &[u8]) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        self.encode_into(seq, &mut out)?;
        Ok(out)
    }

    /// Ids of `seq` wrapped in `[CLS] … [SEP]` where the tokenizer has those tokens.
    fn encode_with_special(&self, seq: &[u8]) -> Result<Vec<u32>> {
        let sp = self.special_tokens();
        let mut out = Vec::with_capacity(seq.len() + 2);
        out.extend(sp.cls);
        self.encode_into(seq, &mut out)?;
        out.extend(sp.sep);
        Ok(out)
    }

    /// Encode many sequences in parallel (rayon); the first error is returned.
    fn encode_batch(&self, seqs: &[&[u8]]) -> Result<Vec<Vec<u32>>> {
        seqs.par_iter().map(|s| self.encode(s)).collect()
    }

    /// Encode one sequence to a tensor: ids as `u32` of shape `(L,)` (one-hot: `f32 (L, 4)`).
    fn encode_tensor(&self, seq: &[u8], device: &Device) -> Result<Tensor> {
        let ids = self.encode(seq)?;
        let n = ids.len();
        Ok(Tensor::from_vec(ids, (n,), device)?)
    }

    /// Encode a batch to one tensor, right-padded to the longest sequence.
    ///
    /// Ids: `u32 (B, Lmax)` padded with `[PAD]` (0 when the tokenizer has none).
    /// One-hot overrides this with `f32 (B, Lmax, 4)` padded with all-zero rows.
    fn encode_batch_tensor(&self, seqs: &[&[u8]], device: &Device) -> Result<TensorBatch> {
        let ids = self.encode_batch(seqs)?;
        let pad = self.special_tokens().pad.unwrap_or(0);
        let lengths: Vec<usize> = ids.iter().map(Vec::len).collect();
        let lmax = lengths.iter().copied().max().unwrap_or(0);
        let mut flat = Vec::with_capacity(ids.len() * lmax);
        for row in &ids {
            flat.extend_from_slice(row);
            flat.resize(flat.len() + lmax - row.len(), pad);
        }
        let tensor = Tensor::from_vec(flat, (ids.len(), lmax), device)?;
        Ok(TensorBatch { tensor, lengths })
    }
}

/// A padded batch tensor and the unpadded length of each row.
#[derive(Debug, Clone)]
pub struct TensorBatch {
    /// The batch tensor (see [`Tokenizer::encode_batch_tensor`] for its shape).
    pub tensor: Tensor,
    /// Number of real (unpadded) positions in each row.
    pub lengths: Vec<usize>,
}

/// A parsed tokenizer spec (see the module documentation for the syntax).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// `onehot[:zero|:quarter]`.
    OneHot(NValue),
    /// `char`.
    Char,
    /// `kmer:K[:STRIDE[:TAIL]]`.
    Kmer {
        /// k-mer length, 1..=12.
        k: usize,
        /// Step between window starts, ≥ 1.
        stride: usize,
        /// What happens to bases after the last full window.
        tail: Tail,
    },
    /// `bpe:PATH` to a Hugging Face `tokenizer.json`.
    Bpe(PathBuf),
}

const SPEC_HELP: &str = "expected onehot[:zero|quarter], char, kmer:K[:STRIDE[:TAIL]] or bpe:PATH";

impl FromStr for Spec {
    type Err = Error;

    fn from_str(spec: &str) -> Result<Spec> {
        let bad = |msg: String| Error::input(format!("tokenizer spec '{spec}': {msg}"));
        let s = spec.trim();
        if s.is_empty() {
            return Err(Error::input(format!("empty tokenizer spec; {SPEC_HELP}")));
        }
        let (name, rest) = match s.split_once(':') {
            Some((n, r)) => (n, Some(r)),
            None => (s, None),
        };
        match name.to_ascii_lowercase().as_str() {
            "onehot" | "one-hot" => match rest.map(|r| r.to_ascii_lowercase()).as_deref() {
                None | Some("zero") => Ok(Spec::OneHot(NValue::Zero)),
                Some("quarter") => Ok(Spec::OneHot(NValue::Quarter)),
                Some(o) => Err(bad(format!(
                    "one-hot option '{o}' is not 'zero' or 'quarter' (how N is encoded)"
                ))),
            },
            "char" => match rest {
                None => Ok(Spec::Char),
                Some(_) => Err(bad("the char tokenizer takes no options".into())),
            },
            "kmer" => {
                let rest = rest.unwrap_or("");
                if rest.is_empty() {
                    return Err(bad(format!(
                        "missing k; use kmer:K[:STRIDE[:TAIL]] with K in 1..={MAX_K}"
                    )));
                }
                let parts: Vec<&str> = rest.split(':').collect();
                if parts.len() > 3 {
                    return Err(bad("too many fields; use kmer:K[:STRIDE[:TAIL]]".into()));
                }
                let k = parse_count(parts[0], "k").map_err(&bad)?;
                if !(1..=MAX_K).contains(&k) {
                    return Err(bad(format!("k must be in 1..={MAX_K} (got {k})")));
                }
                let stride = match parts.get(1) {
                    None => k,
                    Some(p) => parse_count(p, "stride").map_err(&bad)?,
                };
                if stride == 0 {
                    return Err(bad("stride must be at least 1".into()));
                }
                let tail = match parts.get(2) {
                    None => Tail::default(),
                    Some(t) => t.parse::<Tail>().map_err(|e| bad(e.to_string()))?,
                };
                Ok(Spec::Kmer { k, stride, tail })
            }
            "bpe" => match rest.map(str::trim) {
                None | Some("") => Err(bad(
                    "missing path; use bpe:PATH to a Hugging Face tokenizer.json".into(),
                )),
                Some(p) => Ok(Spec::Bpe(PathBuf::from(p))),
            },
            other => Err(Error::input(format!(
                "unknown tokenizer '{other}' in spec '{spec}'; {SPEC_HELP}"
            ))),
        }
    }
}

/// Parse a non-negative whole number field of a spec.
fn parse_count(text: &str, what: &str) -> std::result::Result<usize, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} '{t}' is not a whole number"));
    }
    t.parse::<usize>()
        .map_err(|_| format!("{what} '{t}' is too large"))
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Spec::OneHot(NValue::Zero) => write!(f, "onehot"),
            Spec::OneHot(NValue::Quarter) => write!(f, "onehot:quarter"),
            Spec::Char => write!(f, "char"),
            Spec::Kmer { k, stride, tail } => write!(f, "kmer:{k}:{stride}:{tail}"),
            Spec::Bpe(p) => write!(f, "bpe:{}", p.display()),
        }
    }
}

impl Spec {
    /// Build the tokenizer this spec describes (loads the file for `bpe:`).
    pub fn build(&self) -> Result<Box<dyn Tokenizer>> {
        Ok(match self {
            Spec::OneHot(n) => Box::new(OneHot::new(*n)),
            Spec::Char => Box::new(CharTokenizer::new()),
            Spec::Kmer { k, stride, tail } => Box::new(Kmer::new(*k, *stride, *tail)?),
            Spec::Bpe(path) => Box::new(Bpe::from_file(path)?),
        })
    }
}

/// Parse a spec string such as `kmer:6:1` or `bpe:tokenizers/dna_bpe_4096.json`.
pub fn parse_spec(spec: &str) -> Result<Spec> {
    spec.parse()
}

/// Parse a spec string and build its tokenizer; errors are one line and name the spec or file.
pub fn from_spec(spec: &str) -> Result<Box<dyn Tokenizer>> {
    parse_spec(spec)?.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        assert_eq!(parse_spec("onehot").unwrap(), Spec::OneHot(NValue::Zero));
        assert_eq!(
            parse_spec("onehot:quarter").unwrap(),
            Spec::OneHot(NValue::Quarter)
        );
        assert_eq!(parse_spec("char").unwrap(), Spec::Char);
        assert_eq!(
            parse_spec("kmer:6").unwrap(),
            Spec::Kmer {
                k: 6,
                stride: 6,
                tail: Tail::Bases
            }
        );
        assert_eq!(
            parse_spec("KMER:3:1:drop").unwrap(),
            Spec::Kmer {
                k: 3,
                stride: 1,
                tail: Tail::Drop
            }
        );
        assert_eq!(
            parse_spec("bpe:a/b.json").unwrap(),
            Spec::Bpe(PathBuf::from("a/b.json"))
        );
        for s in ["onehot", "onehot:quarter", "char", "kmer:5:2:unk"] {
            let spec = parse_spec(s).unwrap();
            assert_eq!(parse_spec(&spec.to_string()).unwrap(), spec);
        }
    }

    #[test]
    fn rejects_bad_specs_with_one_line() {
        for (s, want) in [
            ("", "empty tokenizer spec"),
            ("   ", "empty tokenizer spec"),
            ("word2vec", "unknown tokenizer 'word2vec'"),
            ("kmer", "missing k"),
            ("kmer:", "missing k"),
            ("kmer:0", "k must be in 1..=12 (got 0)"),
            ("kmer:13", "k must be in 1..=12 (got 13)"),
            ("kmer:abc", "k 'abc' is not a whole number"),
            ("kmer:-1", "k '-1' is not a whole number"),
            ("kmer:3:0", "stride must be at least 1"),
            ("kmer:3:x", "stride 'x' is not a whole number"),
            ("kmer:3:1:chop", "tail 'chop'"),
            ("kmer:3:1:drop:x", "too many fields"),
            ("kmer:99999999999999999999999", "too large"),
            ("bpe", "missing path"),
            ("bpe:", "missing path"),
            ("char:x", "takes no options"),
            ("onehot:half", "not 'zero' or 'quarter'"),
        ] {
            let e = parse_spec(s).unwrap_err().to_string();
            assert!(e.contains(want), "{s:?}: {e}");
            assert!(!e.contains('\n'), "{s:?}: {e}");
            assert_eq!(Error::input("").exit_code(), 2);
        }
        let e = from_spec("bpe:/nonexistent/tok.json").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("/nonexistent/tok.json"), "{e}");
    }

    #[test]
    fn special_token_table() {
        let sp = SpecialTokens::FIXED;
        let v: Vec<_> = sp.iter().collect();
        assert_eq!(
            v,
            vec![
                ("[PAD]", 0),
                ("[UNK]", 1),
                ("[CLS]", 2),
                ("[SEP]", 3),
                ("[MASK]", 4)
            ]
        );
        assert!(sp.contains(4) && !sp.contains(5));
        assert_eq!(SpecialTokens::default().iter().count(), 0);
    }

    #[test]
    fn batch_tensor_pads_with_pad_id() {
        let t = from_spec("char").unwrap();
        let b = t
            .encode_batch_tensor(&[b"ACG", b"T", b""], &Device::Cpu)
            .unwrap();
        assert_eq!(b.lengths, vec![3, 1, 0]);
        assert_eq!(b.tensor.dims(), &[3, 3]);
        let v: Vec<Vec<u32>> = b.tensor.to_vec2().unwrap();
        assert_eq!(v, vec![vec![5, 6, 7], vec![8, 0, 0], vec![0, 0, 0]]);
        let one = t.encode_tensor(b"ACGTN", &Device::Cpu).unwrap();
        assert_eq!(one.to_vec1::<u32>().unwrap(), vec![5, 6, 7, 8, 9]);
        assert_eq!(t.encode_with_special(b"AC").unwrap(), vec![CLS, 5, 6, SEP]);
    }
}
