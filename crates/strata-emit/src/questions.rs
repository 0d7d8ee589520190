//! StructTuning's SSFT without an LLM: the recipe's questions (JSONL: `question`, `doc_id`,
//! optional `answer`) answered from the selected passages of their documents, in the
//! original's layout: the knowledge structure first, then the explanation, then "Overall, the
//! answer is:" and the answer (alibaba/struxgpt, `format_answer`). The answer is the given one,
//! else the located passage; the explanation is the passage when an answer is given, else
//! where the passage sits (its topic path and section), so the passage is not said twice.

use std::collections::BTreeSet;

/// The passage among `candidates` (texts) sharing the most content words with the question;
/// the first on a tie.
pub fn locate(question: &str, candidates: &[&str]) -> Option<usize> {
    let words: BTreeSet<String> = strata_core::labels::words(question).filter(|w| strata_core::labels::is_content_word(w)).collect();
    let shared = |text: &str| {
        let text: BTreeSet<String> = strata_core::labels::words(text).collect();
        words.iter().filter(|w| text.contains(*w)).count()
    };
    (0..candidates.len()).max_by_key(|&i| (shared(candidates[i]), std::cmp::Reverse(i)))
}

/// The instruction of every QA sample.
pub fn instruction(domain: &str) -> String {
    format!("Answer the following question about {domain}.")
}

/// The prompt as StructTuning lays it out: the task, then `# Question` and `# Answer`.
pub fn prompt(instruction: &str, question: &str) -> String {
    format!("{instruction}\n\n# Question\n{question}\n\n# Answer\n")
}

/// Where the answer comes from: the passage, its place, and the given answer if any.
pub struct Located<'a> {
    /// The mind map of the passage's branch (bold leaf, the document's sections below).
    pub map: &'a str,
    /// The branch (depth-1 node) the structure is stated for.
    pub scope: &'a str,
    pub leaf: &'a str,
    /// Labels from the first level down to the leaf.
    pub path: &'a [String],
    /// The section of the document the passage starts in (its heading path), if any.
    pub section: &'a [String],
    pub passage: &'a str,
    pub answer: Option<&'a str>,
}

/// The structure-first answer: the knowledge structure, the explanation, then the answer.
pub fn structured_answer(l: &Located) -> String {
    let (explanation, answer) = match l.answer {
        Some(answer) => (format!("Within {}, the part **{}** reads:\n\n{}", l.scope, l.leaf, l.passage), answer),
        None => {
            let section = match l.section.last() {
                Some(h) => format!(", in the section \"{h}\" of its source"),
                None => String::new(),
            };
            (format!("The question concerns **{}**, found under {}{section}.", l.leaf, l.path.join(" > ")), l.passage)
        }
    };
    layout(l.scope, l.map, &explanation, answer)
}

/// StructTuning's structure-first layout: the knowledge structure of `scope` (its mind map),
/// the explanation, then the answer.
pub fn layout(scope: &str, map: &str, explanation: &str, answer: &str) -> String {
    format!("Here is the knowledge structure regarding {scope}:\n\n```\n{map}\n```\n\n{explanation}\nOverall, the answer is:\n\n{answer}")
}

/// The plain answer: the given one, else the passage.
pub fn plain_answer(l: &Located) -> String {
    l.answer.unwrap_or(l.passage).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_passage_sharing_most_words_answers() {
        let passages = ["Heart failure is treated with diuretics.", "Symptoms of heart failure include breathlessness and swelling."];
        assert_eq!(locate("What are the symptoms of heart failure?", &passages), Some(1));
        assert_eq!(locate("Who is it?", &passages), Some(0));
        assert_eq!(locate("anything", &[]), None);
    }

    #[test]
    fn structured_answer_matches_the_layout() {
        let path = ["Cardiology".to_string(), "Heart failure".to_string()];
        let section = ["Heart Failure".to_string(), "Symptoms".to_string()];
        let l = Located {
            map: "Cardiology\n└─ **Heart failure**",
            scope: "Cardiology",
            leaf: "Heart failure",
            path: &path,
            section: &section,
            passage: "Breathlessness and swelling.",
            answer: None,
        };
        let expected = "Here is the knowledge structure regarding Cardiology:\n\n```\nCardiology\n└─ **Heart failure**\n```\n\n\
            The question concerns **Heart failure**, found under Cardiology > Heart failure, in the section \"Symptoms\" of its source.\n\
            Overall, the answer is:\n\nBreathlessness and swelling.";
        assert_eq!(structured_answer(&l), expected);
        assert_eq!(plain_answer(&l), "Breathlessness and swelling.");
        let given = Located { answer: Some("Breathlessness."), ..l };
        let expected = "Here is the knowledge structure regarding Cardiology:\n\n```\nCardiology\n└─ **Heart failure**\n```\n\n\
            Within Cardiology, the part **Heart failure** reads:\n\nBreathlessness and swelling.\nOverall, the answer is:\n\nBreathlessness.";
        assert_eq!(structured_answer(&given), expected);
        assert_eq!(prompt("Answer.", "Why?"), "Answer.\n\n# Question\nWhy?\n\n# Answer\n");
    }
}
