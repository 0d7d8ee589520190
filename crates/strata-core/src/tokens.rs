//! Token counts with a Hugging Face tokenizer: the embedding model's (chunk sizes) or the
//! trained model's (passages, budgets, sample sizes).

use std::path::{Path, PathBuf};
use tokenizers::{NormalizerWrapper, PreTokenizerWrapper, Tokenizer};

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("failed to load the tokenizer `{path}`: {message}")]
    Load { path: PathBuf, message: String },
    #[error("failed to tokenize text: {0}")]
    Encode(String),
}

/// The model tokenizer with padding and truncation switched off, so counts are exact.
#[derive(Clone)]
pub struct TokenCounter {
    tokenizer: Tokenizer,
}

impl TokenCounter {
    pub fn from_file(path: &Path) -> Result<Self, TokenizerError> {
        let mut tokenizer =
            Tokenizer::from_file(path).map_err(|e| TokenizerError::Load { path: path.to_path_buf(), message: e.to_string() })?;
        tokenizer.with_padding(None);
        tokenizer.with_truncation(None).map_err(|e| TokenizerError::Load { path: path.to_path_buf(), message: e.to_string() })?;
        Ok(Self { tokenizer })
    }

    /// The tokenizer itself, configured without padding or truncation.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Tokens of `text`, without the model's special tokens ([CLS], [SEP]).
    pub fn count(&self, text: &str) -> Result<usize, TokenizerError> {
        self.tokenizer.encode_fast(text, false).map(|e| e.len()).map_err(|e| TokenizerError::Encode(e.to_string()))
    }

    /// The byte span in `text` of each of its tokens, in order (no special tokens).
    pub fn token_spans(&self, text: &str) -> Result<Vec<(usize, usize)>, TokenizerError> {
        self.tokenizer.encode(text, false).map(|e| e.get_offsets().to_vec()).map_err(|e| TokenizerError::Encode(e.to_string()))
    }

    /// Whether whitespace always separates tokens and a span of text cut at whitespace
    /// tokenizes alone exactly as it does in context: true of WordPiece/word-level tokenizers
    /// that pre-split on whitespace with a character-wise normaliser (BERT's), false of
    /// byte-level BPE (a space belongs to the next word's token) and SentencePiece.
    pub fn splits_at_whitespace(&self) -> bool {
        let pre = matches!(
            self.tokenizer.get_pre_tokenizer(),
            Some(PreTokenizerWrapper::BertPreTokenizer(_) | PreTokenizerWrapper::Whitespace(_) | PreTokenizerWrapper::WhitespaceSplit(_))
        );
        let normalizer =
            matches!(self.tokenizer.get_normalizer(), None | Some(NormalizerWrapper::BertNormalizer(_) | NormalizerWrapper::Lowercase(_)));
        pre && normalizer
    }
}
