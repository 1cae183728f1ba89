//! A small byte-level BPE tokenizer trained on the corpus, saved as the `tokenizer.json` the
//! engine loads.
//!
//! Every digit is its own token, so a number's value is spelled out one digit per position
//! instead of hiding in arbitrary multi-digit merges. The byte-level alphabet makes any text
//! encodable and `decode(encode(s)) == s` exact; spaces stay attached to the word after them, so
//! an answer such as `" 861"` tokenizes the same alone as after its prompt.

use std::path::Path;

use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{AddedToken, Tokenizer, TokenizerBuilder};

use crate::data::Corpus;

/// End of sequence; the engine stops generating at it. Never appears inside a sentence.
pub const EOS: &str = "<eos>";

#[derive(Debug, thiserror::Error)]
pub enum VocabError {
    #[error("tokenizer: {0}")]
    Tokenizer(tokenizers::Error),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Trains a BPE of at most `vocab_size` tokens (the 256 byte symbols and `<eos>` included) on
/// `text`, one sentence per line.
pub fn train_tokenizer(text: &str, vocab_size: usize) -> Result<Tokenizer, VocabError> {
    let byte_level = ByteLevel::new(false, true, true);
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .show_progress(false)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .special_tokens(vec![AddedToken::from(EOS, true)])
        .build();
    let pre_tokenizer = Sequence::new(vec![Digits::new(true).into(), byte_level.into()]);
    let mut tokenizer = TokenizerBuilder::<
        BPE,
        NormalizerWrapper,
        PreTokenizerWrapper,
        PostProcessorWrapper,
        DecoderWrapper,
    >::new()
    .with_model(BPE::default())
    .with_pre_tokenizer(Some(pre_tokenizer.into()))
    .with_decoder(Some(byte_level.into()))
    .build()
    .map_err(VocabError::Tokenizer)?;
    tokenizer
        .train(&mut trainer, text.lines())
        .map_err(VocabError::Tokenizer)?;
    Ok(tokenizer.into())
}

/// A tokenized corpus: the token stream, where each sentence starts in it, and which tokens
/// belong to an answer.
pub struct TokenStream {
    pub tokens: Vec<u32>,
    pub starts: Vec<usize>,
    pub in_answer: Vec<bool>,
}

/// Tokenizes the corpus line by line (each line keeps its `\n`), remembering sentence starts so
/// that training windows begin where a prompt would, and marking the tokens whose text lies in
/// an answer.
pub fn encode(tokenizer: &Tokenizer, corpus: &Corpus) -> Result<TokenStream, VocabError> {
    let mut stream = TokenStream {
        tokens: Vec::new(),
        starts: Vec::new(),
        in_answer: Vec::new(),
    };
    let mut answers = corpus.answers.iter().peekable();
    let mut line_start = 0;
    for line in corpus.text.split_inclusive('\n') {
        let encoding = tokenizer
            .encode(line, false)
            .map_err(VocabError::Tokenizer)?;
        stream.starts.push(stream.tokens.len());
        stream.tokens.extend_from_slice(encoding.get_ids());
        for &(start, end) in encoding.get_offsets() {
            let (start, end) = (line_start + start, line_start + end);
            while answers.next_if(|answer| answer.end <= start).is_some() {}
            let inside = answers
                .peek()
                .is_some_and(|answer| start < answer.end && answer.start < end);
            stream.in_answer.push(inside);
        }
        line_start += line.len();
    }
    Ok(stream)
}

/// Writes `tokenizer.json` compactly (it ships in the model folder).
pub fn save(tokenizer: &Tokenizer, path: &Path) -> Result<(), VocabError> {
    let json = tokenizer.to_string(false).map_err(VocabError::Tokenizer)?;
    std::fs::write(path, json).map_err(|source| VocabError::Io {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use super::*;
    use crate::data::{test_set, training_text, Mix};

    const VOCAB: usize = 512;

    fn tokenizer() -> &'static Tokenizer {
        static TOKENIZER: OnceLock<Tokenizer> = OnceLock::new();
        TOKENIZER.get_or_init(|| {
            train_tokenizer(
                &training_text(1, 20_000, &Mix::word_lists(0.25)).text,
                VOCAB,
            )
            .unwrap()
        })
    }

    fn ids(text: &str) -> Vec<u32> {
        tokenizer().encode(text, false).unwrap().get_ids().to_vec()
    }

    fn decode(ids: &[u32]) -> String {
        tokenizer().decode(ids, false).unwrap()
    }

    #[test]
    fn vocabulary_is_small_and_has_eos() {
        let size = tokenizer().get_vocab_size(true);
        assert!((300..=VOCAB).contains(&size), "{size} tokens");
        assert!(tokenizer().token_to_id(EOS).is_some());
        assert!(!training_text(1, 1000, &Mix::word_lists(0.25))
            .text
            .contains(EOS));
    }

    #[test]
    fn every_digit_is_one_token() {
        for digit in '0'..='9' {
            let id = ids(&digit.to_string());
            assert_eq!(id.len(), 1, "{digit}");
            assert_eq!(decode(&id), digit.to_string());
        }
        for number in ["861", "4720", "so now he has 861 marbles"] {
            let digits: Vec<u32> = number
                .chars()
                .filter(char::is_ascii_digit)
                .map(|d| ids(&d.to_string())[0])
                .collect();
            let encoded = ids(number);
            assert!(
                encoded.windows(digits.len()).any(|w| w == digits),
                "{number}: {encoded:?}"
            );
        }
    }

    #[test]
    fn decode_inverts_encode() {
        let text = training_text(2, 300, &Mix::word_lists(0.25)).text;
        let samples = text
            .lines()
            .chain(["  Zoë's café, 12°C!\tand\nmore  ", "", " 861"]);
        for sample in samples {
            assert_eq!(decode(&ids(sample)), sample);
        }
        assert_eq!(decode(&ids(&text)), text);
    }

    #[test]
    fn prompt_then_answer_tokenizes_like_the_whole() {
        for example in test_set(3, 300, &Mix::word_lists(0.25)) {
            let whole = ids(&format!("{}{}", example.prompt, example.answer));
            let parts: Vec<u32> = ids(&example.prompt)
                .into_iter()
                .chain(ids(&example.answer))
                .collect();
            assert_eq!(whole, parts, "{example:?}");
            let sentence = ids(&example.sentence());
            assert!(sentence.starts_with(&whole), "{example:?}");
        }
    }

    #[test]
    fn answer_tokens_spell_the_answers() {
        let corpus = training_text(4, 400, &Mix::word_lists(0.25));
        let stream = encode(tokenizer(), &corpus).unwrap();
        assert_eq!(stream.in_answer.len(), stream.tokens.len());
        // Consecutive answer tokens, grouped: each group is one answer's digits.
        let mut groups: Vec<Vec<u32>> = Vec::new();
        let mut previous = false;
        for (&token, &inside) in stream.tokens.iter().zip(&stream.in_answer) {
            if inside && !previous {
                groups.push(Vec::new());
            }
            if inside {
                groups.last_mut().unwrap().push(token);
            }
            previous = inside;
        }
        assert_eq!(groups.len(), corpus.answers.len());
        for (group, answer) in groups.iter().zip(&corpus.answers) {
            assert_eq!(decode(group).trim(), corpus.text[answer.clone()].trim());
        }
    }

    #[test]
    fn saved_json_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        save(tokenizer(), &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(!bytes.contains(&b'\n'), "not compact");
        let loaded = Tokenizer::from_bytes(&bytes).unwrap();
        let text = "Tom had 472 marbles and won 389 more, so now he has 861 marbles.";
        let ids = loaded.encode(text, false).unwrap().get_ids().to_vec();
        assert_eq!(ids, super::tests::ids(text));
        assert_eq!(loaded.decode(&ids, false).unwrap(), text);
        assert_eq!(loaded.token_to_id(EOS), tokenizer().token_to_id(EOS));
    }
}
