//! Structure-aware mutations of JSON text (Keras's `model_config` / `config.json`,
//! `checkpoint.json`, safetensors headers). Two kinds of edit, stacked:
//!
//! - on the text's tokens, which can produce what no JSON tree holds: duplicate keys, `NaN`,
//!   numbers beyond f64, deleted members, truncation, deep nesting;
//! - on the parsed tree: a node replaced by an edge value or by another node of the same
//!   document (a layer config where a shape was, a layer name swapped for another), array
//!   elements dropped or duplicated, keys removed or renamed, numbers off by one.

use std::ops::Range;

use serde_json::{json, Value};

use super::dice::Dice;

/// 1 to 4 stacked edits of `text`.
pub fn mutate(dice: &mut Dice, text: &str) -> String {
    let mut text = text.to_string();
    for _ in 0..dice.small_len(4) {
        let tree = if dice.chance(50) { serde_json::from_str::<Value>(&text).ok() } else { None };
        text = match tree {
            Some(mut root) => {
                edit_tree(dice, &mut root);
                root.to_string()
            }
            None => edit_text(dice, &text),
        };
    }
    text
}

/// Number tokens at the edges of what Keras (Python ints, f64) and Rust (u64, i64, usize) hold.
const NUMBER_TOKENS: &[&str] = &[
    "0",
    "-1",
    "1",
    "-0",
    "2",
    "0.5",
    "1e12",
    "-1e12",
    "1e400",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551616",
    "-9223372036854775809",
    "NaN",
    "Infinity",
    "-Infinity",
];
/// What a string value may become instead.
const NON_STRING_TOKENS: &[&str] = &["0", "-1", "1e12", "null", "true", "[]", "{}", "\"\"", "[\"x\"]", "{\"class_name\": 0}"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Number,
    Word,
    Open,
    Close,
    Colon,
    Comma,
}

struct Token {
    kind: Kind,
    span: Range<usize>,
}

fn edit_text(dice: &mut Dice, text: &str) -> String {
    let tokens = tokenize(text);
    if tokens.is_empty() {
        return dice.pick(NUMBER_TOKENS).to_string();
    }
    let of_kind = |wanted: &dyn Fn(usize) -> bool| -> Vec<usize> { (0..tokens.len()).filter(|&i| wanted(i)).collect() };
    let is_key = |i: usize| tokens[i].kind == Kind::Str && tokens.get(i + 1).is_some_and(|t| t.kind == Kind::Colon);
    let numbers = of_kind(&|i| tokens[i].kind == Kind::Number);
    let values = of_kind(&|i| tokens[i].kind == Kind::Str && !is_key(i));
    let strings = of_kind(&|i| tokens[i].kind == Kind::Str);
    let keys = of_kind(&|i| is_key(i));
    let span = |i: usize| tokens[i].span.clone();
    match dice.below(7) {
        0 if !numbers.is_empty() => replace(text, span(*dice.pick(&numbers)), dice.pick::<&str>(NUMBER_TOKENS)),
        1 if !values.is_empty() => replace(text, span(*dice.pick(&values)), dice.pick::<&str>(NON_STRING_TOKENS)),
        2 if !strings.is_empty() => {
            let other = &text[span(*dice.pick(&strings))];
            replace(text, span(*dice.pick(&strings)), other)
        }
        3 if !keys.is_empty() => {
            let key = *dice.pick(&keys);
            let member = tokens[key].span.start..tokens[value_end(&tokens, key + 2)].span.end;
            let copy = format!(", {}", &text[member.clone()]);
            replace(text, member.end..member.end, &copy)
        }
        4 if !keys.is_empty() => {
            let key = *dice.pick(&keys);
            let last = value_end(&tokens, key + 2);
            let member = match tokens.get(last + 1) {
                Some(t) if t.kind == Kind::Comma => tokens[key].span.start..t.span.end,
                _ if key > 0 && tokens[key - 1].kind == Kind::Comma => tokens[key - 1].span.start..tokens[last].span.end,
                _ => tokens[key].span.start..tokens[last].span.end,
            };
            replace(text, member, "")
        }
        5 => text[..tokens[dice.below(tokens.len())].span.start].to_string(),
        _ => {
            let at = span(dice.below(tokens.len()));
            let depth = dice.small_len(4096);
            replace(text, at, &format!("{}0{}", "[".repeat(depth), "]".repeat(depth)))
        }
    }
}

/// The index of the last token of the value starting at token `first` (its closing bracket for
/// an array or object); clamped to the last token when the text is cut short.
fn value_end(tokens: &[Token], first: usize) -> usize {
    let Some(token) = tokens.get(first) else { return tokens.len() - 1 };
    if token.kind != Kind::Open {
        return first;
    }
    let mut depth = 0usize;
    for (i, token) in tokens.iter().enumerate().skip(first) {
        match token.kind {
            Kind::Open => depth += 1,
            Kind::Close => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    tokens.len() - 1
}

fn replace(text: &str, span: Range<usize>, with: &str) -> String {
    format!("{}{with}{}", &text[..span.start], &text[span.end..])
}

/// A lenient JSON tokenizer: it never fails, so already-broken text can be mutated further.
/// Tokens start and end on ASCII bytes, so their spans are valid `str` boundaries.
fn tokenize(text: &str) -> Vec<Token> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let kind = match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(bytes.len());
                Kind::Str
            }
            b'-' | b'0'..=b'9' => {
                while i < bytes.len() && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
                    i += 1;
                }
                Kind::Number
            }
            b'a'..=b'z' | b'A'..=b'Z' => {
                while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                    i += 1;
                }
                Kind::Word
            }
            b'{' | b'[' => {
                i += 1;
                Kind::Open
            }
            b'}' | b']' => {
                i += 1;
                Kind::Close
            }
            b':' => {
                i += 1;
                Kind::Colon
            }
            b',' => {
                i += 1;
                Kind::Comma
            }
            _ => {
                i += 1;
                continue;
            }
        };
        tokens.push(Token { kind, span: start..i });
    }
    tokens
}

fn edit_tree(dice: &mut Dice, root: &mut Value) {
    let mut paths = Vec::new();
    collect_pointers(root, String::new(), &mut paths);
    let path = dice.pick(&paths).clone();
    let replacement = match dice.below(4) {
        0 => Some(edge_value(dice)),
        1 => root.pointer(dice.pick(&paths).as_str()).filter(|graft| graft.to_string().len() < 1 << 16).cloned(),
        _ => None,
    };
    let Some(node) = root.pointer_mut(&path) else { return };
    match replacement {
        Some(value) => *node = value,
        None => edit_node(dice, node),
    }
}

/// Edit a node in place, according to its type.
fn edit_node(dice: &mut Dice, node: &mut Value) {
    match node {
        Value::Array(items) if !items.is_empty() => {
            let i = dice.below(items.len());
            match dice.below(4) {
                0 => drop(items.remove(i)),
                1 => items.insert(i, items[i].clone()),
                2 => items.reverse(),
                _ => items.clear(),
            }
        }
        Value::Object(members) if !members.is_empty() => {
            let keys: Vec<String> = members.keys().cloned().collect();
            let key = dice.pick(&keys);
            let value = members.remove(key).expect("a key just listed");
            if dice.chance(50) {
                let other = format!("{}{}", dice.pick(&keys), dice.pick(&["", "_", "s", "0"]));
                members.insert(other, value);
            }
        }
        Value::Number(number) => *node = off_by_some(dice, number),
        Value::String(text) => {
            let len = dice.small_len(1 << 16);
            *text = if dice.chance(50) { String::new() } else { "x".repeat(len) };
        }
        _ => *node = edge_value(dice),
    }
}

/// A number nudged the ways shape and count arithmetic breaks: ±1, negated, ×1000, zero.
fn off_by_some(dice: &mut Dice, number: &serde_json::Number) -> Value {
    match number.as_i64() {
        Some(n) => match dice.below(5) {
            0 => json!(n.wrapping_add(1)),
            1 => json!(n.wrapping_sub(1)),
            2 => json!(n.wrapping_neg()),
            3 => json!(n.saturating_mul(1000)),
            _ => json!(0),
        },
        None => {
            let x = number.as_f64().unwrap_or(0.0);
            json!(*dice.pick(&[-x, x * 1e6, x + 1.0, 0.0, f64::MIN_POSITIVE]))
        }
    }
}

fn edge_value(dice: &mut Dice) -> Value {
    match dice.below(14) {
        0 => json!(0),
        1 => json!(-1),
        2 => json!(1),
        3 => json!(1e12),
        4 => json!(u64::MAX),
        5 => json!(i64::MIN),
        6 => json!(0.5),
        7 => json!(""),
        8 => json!("x"),
        9 => json!(true),
        10 => Value::Null,
        11 => json!([]),
        12 => json!({}),
        _ => json!([null, 0, 0, 0]),
    }
}

/// Every node's JSON pointer (RFC 6901; the root's is "").
fn collect_pointers(value: &Value, pointer: String, out: &mut Vec<String>) {
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_pointers(item, format!("{pointer}/{i}"), out);
            }
        }
        Value::Object(members) => {
            for (key, item) in members {
                collect_pointers(item, format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        _ => {}
    }
    out.push(pointer);
}
