//! One-hot encoding: four channels A, C, G, T; N (and any other byte) is all-zero or 0.25 each.
//!
//! Tensors are channels-last: one sequence is `f32 (L, 4)`, a batch is `f32 (B, Lmax, 4)`
//! right-padded with all-zero rows ([`OneHot::encode_batch_channels_first`] gives the
//! `(B, 4, Lmax)` layout that 1-D convolutions expect). Ids are the base codes A=0 C=1 G=2 T=3
//! N=4 (vocabulary size 5, no special tokens), so one-hot round-trips A C G T N exactly.

use std::fmt;
use std::str::FromStr;

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::{SpecialTokens, TensorBatch, Tokenizer};
use crate::error::{Error, Result};
use crate::seq::BASE_CODE;

/// How N (any byte other than A C G T, either case) is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NValue {
    /// All four channels 0 (the default).
    #[default]
    Zero,
    /// All four channels 0.25 (a uniform distribution over bases).
    Quarter,
}

impl fmt::Display for NValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NValue::Zero => "zero",
            NValue::Quarter => "quarter",
        })
    }
}

impl FromStr for NValue {
    type Err = Error;

    fn from_str(s: &str) -> Result<NValue> {
        match s.to_ascii_lowercase().as_str() {
            "zero" => Ok(NValue::Zero),
            "quarter" => Ok(NValue::Quarter),
            o => Err(Error::input(format!(
                "one-hot N value '{o}' is not 'zero' or 'quarter'"
            ))),
        }
    }
}

/// Per-byte one-hot rows with N as all-zero.
static ROWS_ZERO: [[f32; 4]; 256] = build_rows(0.0);
/// Per-byte one-hot rows with N as 0.25 in each channel.
static ROWS_QUARTER: [[f32; 4]; 256] = build_rows(0.25);

const fn build_rows(n: f32) -> [[f32; 4]; 256] {
    let mut t = [[n; 4]; 256];
    let mut b = 0;
    while b < 256 {
        let c = BASE_CODE[b] as usize;
        if c < 4 {
            let mut row = [0.0f32; 4];
            row[c] = 1.0;
            t[b] = row;
        }
        b += 1;
    }
    t
}

fn rows(n: NValue) -> &'static [[f32; 4]; 256] {
    match n {
        NValue::Zero => &ROWS_ZERO,
        NValue::Quarter => &ROWS_QUARTER,
    }
}

/// One-hot encode `seq` into `out` (row-major `(L, 4)`), with N as all-zero.
///
/// # Panics
/// If `out.len() != 4 * seq.len()` (a caller bug, not bad input).
#[inline]
pub fn encode_into(seq: &[u8], out: &mut [f32]) {
    encode_into_with(seq, out, NValue::Zero)
}

/// One-hot encode `seq` into `out` (row-major `(L, 4)`), with N encoded as `n`.
///
/// # Panics
/// If `out.len() != 4 * seq.len()` (a caller bug, not bad input).
pub fn encode_into_with(seq: &[u8], out: &mut [f32], n: NValue) {
    assert_eq!(
        out.len(),
        4 * seq.len(),
        "one-hot output buffer must hold 4 floats per base"
    );
    let table = rows(n);
    for (dst, &b) in out.chunks_exact_mut(4).zip(seq) {
        dst.copy_from_slice(&table[b as usize]);
    }
}

/// Base codes of `seq` appended to `out`: A=0 C=1 G=2 T=3, anything else 4.
#[inline]
pub fn codes_into(seq: &[u8], out: &mut Vec<u32>) {
    out.extend(seq.iter().map(|&b| BASE_CODE[b as usize] as u32));
}

/// The one-hot tokenizer (spec `onehot`, `onehot:zero` or `onehot:quarter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OneHot {
    n: NValue,
}

impl OneHot {
    /// A one-hot encoder with N encoded as `n`.
    pub fn new(n: NValue) -> Self {
        OneHot { n }
    }

    /// How N is encoded.
    pub fn n_value(&self) -> NValue {
        self.n
    }

    /// One-hot matrix of `seq`, row-major `(L, 4)`.
    pub fn encode_f32(&self, seq: &[u8]) -> Vec<f32> {
        let mut out = vec![0.0; 4 * seq.len()];
        encode_into_with(seq, &mut out, self.n);
        out
    }

    /// A batch as `f32 (B, 4, Lmax)` (channels first), zero-padded on the right.
    pub fn encode_batch_channels_first(
        &self,
        seqs: &[&[u8]],
        device: &Device,
    ) -> Result<TensorBatch> {
        let b = self.encode_batch_tensor(seqs, device)?;
        Ok(TensorBatch {
            tensor: b.tensor.transpose(1, 2)?.contiguous()?,
            lengths: b.lengths,
        })
    }
}

impl Tokenizer for OneHot {
    fn spec(&self) -> String {
        match self.n {
            NValue::Zero => "onehot".into(),
            NValue::Quarter => "onehot:quarter".into(),
        }
    }

    fn vocab_size(&self) -> usize {
        5
    }

    fn special_tokens(&self) -> SpecialTokens {
        SpecialTokens::default()
    }

    fn encode_into(&self, seq: &[u8], out: &mut Vec<u32>) -> Result<()> {
        codes_into(seq, out);
        Ok(())
    }

    fn decode(&self, ids: &[u32]) -> Result<Vec<u8>> {
        ids.iter()
            .enumerate()
            .map(|(i, &id)| match id {
                0..=4 => Ok(b"ACGTN"[id as usize]),
                _ => Err(Error::input(format!(
                    "one-hot id {id} at position {i} is out of range (vocabulary size 5)"
                ))),
            })
            .collect()
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        b"ACGTN".get(id as usize).map(|&b| (b as char).to_string())
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        match token.as_bytes() {
            [b] => b"ACGTN".iter().position(|x| x == b).map(|p| p as u32),
            _ => None,
        }
    }

    /// `f32 (L, 4)` one-hot matrix.
    fn encode_tensor(&self, seq: &[u8], device: &Device) -> Result<Tensor> {
        let l = seq.len();
        Ok(Tensor::from_vec(self.encode_f32(seq), (l, 4), device)?)
    }

    /// `f32 (B, Lmax, 4)`, right-padded with all-zero rows.
    fn encode_batch_tensor(&self, seqs: &[&[u8]], device: &Device) -> Result<TensorBatch> {
        let lengths: Vec<usize> = seqs.iter().map(|s| s.len()).collect();
        let lmax = lengths.iter().copied().max().unwrap_or(0);
        let mut flat = vec![0.0f32; seqs.len() * lmax * 4];
        if lmax > 0 {
            flat.par_chunks_mut(lmax * 4)
                .zip(seqs.par_iter())
                .for_each(|(row, s)| encode_into_with(s, &mut row[..4 * s.len()], self.n));
        }
        let tensor = Tensor::from_vec(flat, (seqs.len(), lmax, 4), device)?;
        Ok(TensorBatch { tensor, lengths })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodes_acgtn_by_hand() {
        let mut out = vec![9.0; 20];
        encode_into(b"ACGTN", &mut out);
        #[rustfmt::skip]
        let want = [
            1.0, 0.0, 0.0, 0.0,
            0.0, 1.0, 0.0, 0.0,
            0.0, 0.0, 1.0, 0.0,
            0.0, 0.0, 0.0, 1.0,
            0.0, 0.0, 0.0, 0.0,
        ];
        assert_eq!(out, want);
        encode_into_with(b"acgtR", &mut out, NValue::Quarter);
        assert_eq!(&out[..16], &want[..16]);
        assert_eq!(&out[16..], &[0.25; 4]);
        let t = OneHot::default();
        assert_eq!(
            t.encode(b"ACGTNacgtx").unwrap(),
            vec![0, 1, 2, 3, 4, 0, 1, 2, 3, 4]
        );
        assert_eq!(t.decode(&[0, 1, 2, 3, 4]).unwrap(), b"ACGTN");
        assert!(t
            .decode(&[5])
            .unwrap_err()
            .to_string()
            .contains("out of range"));
        assert_eq!(t.id_to_token(2).as_deref(), Some("G"));
        assert_eq!(t.token_to_id("T"), Some(3));
        assert_eq!(t.vocab_size(), 5);
        assert_eq!(t.encode_with_special(b"AC").unwrap(), vec![0, 1]);
    }

    #[test]
    fn tensors_have_documented_shapes() {
        let t = OneHot::new(NValue::Zero);
        let x = t.encode_tensor(b"ACGTN", &Device::Cpu).unwrap();
        assert_eq!(x.dims(), &[5, 4]);
        let v: Vec<Vec<f32>> = x.to_vec2().unwrap();
        assert_eq!(v[2], vec![0.0, 0.0, 1.0, 0.0]);
        assert_eq!(v[4], vec![0.0; 4]);
        let b = t
            .encode_batch_tensor(&[b"AC", b"GTA", b""], &Device::Cpu)
            .unwrap();
        assert_eq!(b.tensor.dims(), &[3, 3, 4]);
        assert_eq!(b.lengths, vec![2, 3, 0]);
        let v: Vec<Vec<Vec<f32>>> = b.tensor.to_vec3().unwrap();
        assert_eq!(v[0][1], vec![0.0, 1.0, 0.0, 0.0]);
        assert_eq!(v[0][2], vec![0.0; 4]);
        assert_eq!(v[1][2], vec![1.0, 0.0, 0.0, 0.0]);
        assert_eq!(v[2][0], vec![0.0; 4]);
        let cf = t
            .encode_batch_channels_first(&[b"AC", b"GTA"], &Device::Cpu)
            .unwrap();
        assert_eq!(cf.tensor.dims(), &[2, 4, 3]);
        let v: Vec<Vec<Vec<f32>>> = cf.tensor.to_vec3().unwrap();
        assert_eq!(v[1][3], vec![0.0, 1.0, 0.0]);
        let e = t.encode_batch_tensor(&[], &Device::Cpu).unwrap();
        assert_eq!(e.tensor.dims(), &[0, 0, 4]);
    }

    proptest! {
        #[test]
        fn roundtrip_acgtn(s in "[ACGTN]{0,300}") {
            let t = OneHot::default();
            let ids = t.encode(s.as_bytes()).unwrap();
            prop_assert_eq!(t.decode(&ids).unwrap(), s.as_bytes());
            let m = t.encode_f32(s.as_bytes());
            for (row, id) in m.chunks_exact(4).zip(&ids) {
                let hot: Vec<usize> = (0..4).filter(|&c| row[c] == 1.0).collect();
                if *id < 4 { prop_assert_eq!(hot, vec![*id as usize]); } else { prop_assert!(hot.is_empty()); }
            }
        }
    }
}
