//! Character-level tokenizer: one token per base.
//!
//! Vocabulary (10 ids): `[PAD]`=0 `[UNK]`=1 `[CLS]`=2 `[SEP]`=3 `[MASK]`=4, then A=5 C=6 G=7
//! T=8 N=9. Input is case-insensitive; any other byte becomes `[UNK]`. Decoding skips `[PAD]`,
//! `[CLS]`, `[SEP]` and `[MASK]` and turns `[UNK]` into N, so it is lossless on A C G T N.

use super::{SpecialTokens, Tokenizer, N_SPECIAL, SPECIAL_TOKENS, UNK};
use crate::error::{Error, Result};

/// The bases in id order, starting at id [`N_SPECIAL`].
const BASES: &[u8; 5] = b"ACGTN";

/// `ID[b]`: token id of byte `b`.
static ID: [u32; 256] = build_ids();

const fn build_ids() -> [u32; 256] {
    let mut t = [UNK; 256];
    let mut i = 0;
    while i < BASES.len() {
        t[BASES[i] as usize] = N_SPECIAL + i as u32;
        t[BASES[i].to_ascii_lowercase() as usize] = N_SPECIAL + i as u32;
        i += 1;
    }
    t
}

/// The character tokenizer (spec `char`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CharTokenizer;

impl CharTokenizer {
    /// The character tokenizer.
    pub fn new() -> Self {
        CharTokenizer
    }
}

/// Character ids of `seq` appended to `out` (A=5 C=6 G=7 T=8 N=9, other bytes `[UNK]`=1).
#[inline]
pub fn encode_ids_into(seq: &[u8], out: &mut Vec<u32>) {
    out.extend(seq.iter().map(|&b| ID[b as usize]));
}

impl Tokenizer for CharTokenizer {
    fn spec(&self) -> String {
        "char".into()
    }

    fn vocab_size(&self) -> usize {
        N_SPECIAL as usize + BASES.len()
    }

    fn special_tokens(&self) -> SpecialTokens {
        SpecialTokens::FIXED
    }

    fn encode_into(&self, seq: &[u8], out: &mut Vec<u32>) -> Result<()> {
        encode_ids_into(seq, out);
        Ok(())
    }

    fn decode(&self, ids: &[u32]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(ids.len());
        for (i, &id) in ids.iter().enumerate() {
            match id {
                UNK => out.push(b'N'),
                _ if id < N_SPECIAL => {}
                _ if id < N_SPECIAL + BASES.len() as u32 => {
                    out.push(BASES[(id - N_SPECIAL) as usize])
                }
                _ => {
                    return Err(Error::input(format!(
                        "char id {id} at position {i} is out of range (vocabulary size {})",
                        self.vocab_size()
                    )))
                }
            }
        }
        Ok(out)
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        if id < N_SPECIAL {
            Some(SPECIAL_TOKENS[id as usize].to_string())
        } else {
            BASES
                .get((id - N_SPECIAL) as usize)
                .map(|&b| (b as char).to_string())
        }
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        if let Some(p) = SPECIAL_TOKENS.iter().position(|t| *t == token) {
            return Some(p as u32);
        }
        match token.as_bytes() {
            [b] => BASES
                .iter()
                .position(|x| x == b)
                .map(|p| N_SPECIAL + p as u32),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::{CLS, MASK, PAD, SEP};
    use proptest::prelude::*;

    #[test]
    fn ids_by_hand() {
        let t = CharTokenizer::new();
        assert_eq!(t.encode(b"ACGTN").unwrap(), vec![5, 6, 7, 8, 9]);
        assert_eq!(t.encode(b"acgtn").unwrap(), vec![5, 6, 7, 8, 9]);
        assert_eq!(t.encode(b"AX-").unwrap(), vec![5, UNK, UNK]);
        assert_eq!(t.encode(b"").unwrap(), Vec::<u32>::new());
        assert_eq!(t.vocab_size(), 10);
        assert_eq!(
            t.decode(&[CLS, 5, UNK, 8, MASK, SEP, PAD]).unwrap(),
            b"ANT".to_vec()
        );
        assert!(t
            .decode(&[10])
            .unwrap_err()
            .to_string()
            .contains("out of range"));
        for id in 0..10 {
            let tok = t.id_to_token(id).unwrap();
            assert_eq!(t.token_to_id(&tok), Some(id));
        }
        assert_eq!(t.id_to_token(10), None);
        assert_eq!(t.token_to_id("AC"), None);
    }

    proptest! {
        #[test]
        fn roundtrip_acgtn(s in "[ACGTNacgtn]{0,400}") {
            let t = CharTokenizer::new();
            let ids = t.encode(s.as_bytes()).unwrap();
            prop_assert_eq!(ids.len(), s.len());
            prop_assert_eq!(t.decode(&ids).unwrap(), s.to_ascii_uppercase().into_bytes());
            let wrapped = t.encode_with_special(s.as_bytes()).unwrap();
            prop_assert_eq!(t.decode(&wrapped).unwrap(), s.to_ascii_uppercase().into_bytes());
        }
    }
}
