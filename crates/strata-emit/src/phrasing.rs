//! Paraphrased sentences for the prompts, drawn by a generator seeded from the run's seed and
//! the sample's identity, so a rerun (or a reordering) gives identical text.

use rand::seq::SliceRandom;
use rand_xoshiro::rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// Lead-ins of a passage sample; `{domain}` and `{branch}` are filled in.
const LEAD_INS: &[&str] = &[
    "Here is the part of the {domain} knowledge structure that covers {branch}",
    "The following mind map shows how {branch} is organised within {domain}",
    "In {domain}, the branch {branch} is structured as follows",
    "Consider this outline of {branch}, one of the main areas of {domain}",
    "Below is the map of {branch} in the field of {domain}",
    "This is where {branch} sits in the structure of {domain} knowledge",
    "The topic {branch} of {domain} breaks down like this",
    "A structured view of {branch}, as part of {domain}",
    "Within {domain}, the knowledge about {branch} is arranged as shown",
    "Take the {branch} branch of {domain}, outlined here",
    "The {domain} taxonomy organises {branch} in the following way",
    "Study this outline of {branch} from {domain}",
    "Here is a mind map of the {branch} area of {domain}",
    "The structure of {branch}, a branch of {domain}, is shown below",
    "To place the next passage, recall how {domain} arranges {branch}",
    "This mind map lays out {branch} within {domain}",
    "Among the areas of {domain} is {branch}, organised as follows",
    "Look at how the {branch} branch of {domain} is divided",
    "The knowledge of {domain} on {branch} follows this outline",
    "Here is {branch} in context, as one branch of {domain}",
];

/// Introductions of the passage itself; `{branch}` and `{leaf}` are filled in.
const PASSAGE_INTROS: &[&str] = &[
    "Within {branch}, the part {leaf} reads as follows",
    "The section on {leaf}, under {branch}, says",
    "Here is a passage from {leaf} in {branch}",
    "Under {branch}, the topic {leaf} contains the following text",
    "The following passage belongs to {leaf}, within {branch}",
    "From the {leaf} part of {branch}",
    "This is what {branch} covers under {leaf}",
    "A passage on {leaf} (in {branch}) follows",
    "Read the part of {branch} about {leaf}",
    "In {branch}, {leaf} is described as follows",
    "The text below is filed under {leaf} in {branch}",
    "Here is what the {leaf} node of {branch} holds",
    "Turning to {leaf} within {branch}",
    "The knowledge point {leaf}, part of {branch}, reads",
    "Next, a passage from {branch}, on {leaf}",
    "This passage explains {leaf}, a topic of {branch}",
    "Within the {branch} branch, {leaf} states",
    "Consider this passage on {leaf}, from {branch}",
    "The part of {branch} that deals with {leaf} reads",
    "Here {branch} turns to {leaf}",
];

/// Requests for a branch's whole structure; `{domain}` and `{branch}` are filled in.
const STRUCTURE_REQUESTS: &[&str] = &[
    "What is the knowledge structure of {branch} in {domain}?",
    "Outline how {branch} is organised within {domain}.",
    "Draw the mind map of {branch}, a branch of {domain}.",
    "How does {domain} divide the topic of {branch}?",
    "List the parts of {branch} in {domain} as a tree.",
    "Give the structure of the {branch} area of {domain}.",
    "Show the subtopics of {branch} within {domain} as a mind map.",
    "What are the areas and sub-areas of {branch} in {domain}?",
];

/// Picks one of `options` for the sample identified by `key`.
pub fn pick<'a>(options: &[&'a str], seed: u64, key: &str) -> &'a str {
    let digest = strata_core::hash::sha256_hex(key.as_bytes());
    let key_bits = u64::from_str_radix(&digest[..16], 16).unwrap_or(0);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ key_bits);
    options.choose(&mut rng).copied().unwrap_or("")
}

pub fn lead_in(seed: u64, key: &str, domain: &str, branch: &str) -> String {
    pick(LEAD_INS, seed, key).replace("{domain}", domain).replace("{branch}", branch)
}

pub fn passage_intro(seed: u64, key: &str, branch: &str, leaf: &str) -> String {
    pick(PASSAGE_INTROS, seed, &format!("{key}/intro")).replace("{branch}", branch).replace("{leaf}", leaf)
}

pub fn structure_request(seed: u64, key: &str, domain: &str, branch: &str) -> String {
    pick(STRUCTURE_REQUESTS, seed, key).replace("{domain}", domain).replace("{branch}", branch)
}
