//! Questions files (JSONL: `question`, `doc_id`, optional `answer`; other fields such as
//! `qid` are ignored), read by emit (StructTuning's question answering) and eval (retrieval).

use serde::Deserialize;
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// One line of a questions file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Question {
    pub question: String,
    /// The document that holds the answer.
    pub doc_id: String,
    #[serde(default)]
    pub answer: Option<String>,
}

/// A questions file that cannot be read, or a line that is not a question (line 0: the file).
#[derive(Debug, thiserror::Error)]
#[error("questions file `{path}`, line {line}: {message}")]
pub struct QuestionsError {
    pub path: PathBuf,
    pub line: usize,
    pub message: String,
}

/// Reads a questions file; blank lines are skipped, a bad line names the file and the line.
pub fn read_questions(path: &Path) -> Result<Vec<Question>, QuestionsError> {
    let error = |line: usize, message: String| QuestionsError { path: path.to_path_buf(), line, message };
    let file = std::fs::File::open(path).map_err(|e| error(0, e.to_string()))?;
    let mut questions = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| error(i + 1, e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let q: Question = serde_json::from_str(&line)
            .map_err(|e| error(i + 1, format!("expected {{\"question\": ..., \"doc_id\": ...}} (optional \"answer\"): {e}")))?;
        if q.question.trim().is_empty() {
            return Err(error(i + 1, "the question is empty".into()));
        }
        questions.push(q);
    }
    Ok(questions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_line_names_the_file_and_line() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("q.jsonl");
        std::fs::write(&path, "{\"question\": \"Why?\", \"doc_id\": \"a\", \"qid\": 7}\n\n{\"doc_id\": \"b\"}\n").expect("write");
        let err = read_questions(&path).expect_err("bad line").to_string();
        assert!(err.contains("q.jsonl") && err.contains("line 3"), "{err}");
        std::fs::write(&path, "{\"question\": \"Why?\", \"doc_id\": \"a\", \"answer\": \"Because.\"}\n").expect("write");
        let q = read_questions(&path).expect("read");
        assert_eq!(q, vec![Question { question: "Why?".into(), doc_id: "a".into(), answer: Some("Because.".into()) }]);
        let err = read_questions(&dir.path().join("none.jsonl")).expect_err("missing").to_string();
        assert!(err.contains("none.jsonl"), "{err}");
    }
}
