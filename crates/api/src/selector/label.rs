//! Label selectors: the grammar of apimachinery's `labels.Parse` and the semantics of
//! `metav1.LabelSelector` (matchLabels + matchExpressions).
//!
//! ```text
//! selector    := requirement ( ',' requirement )*
//! requirement := '!' KEY | KEY [ ( '=' | '==' | '!=' ) VALUE | ( 'in' | 'notin' ) '(' VALUES ')'
//!                               | ( '<' | '>' ) INTEGER ]
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as ApiLabelSelector;

use super::SelectorError;
use crate::validation::names;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operator {
    Equals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub op: Operator,
    pub values: BTreeSet<String>,
}

impl Requirement {
    pub fn new(key: &str, op: Operator, values: &[&str]) -> Result<Requirement, SelectorError> {
        let errs = names::qualified_name(key);
        if let Some(reason) = errs.into_iter().next() {
            return Err(SelectorError::InvalidKey {
                key: key.into(),
                reason,
            });
        }
        match op {
            Operator::Equals | Operator::NotEquals if values.len() != 1 => {
                return Err(SelectorError::Parse(format!(
                    "exact-match compatibility requires one single value for key {key:?}"
                )));
            }
            Operator::In | Operator::NotIn if values.is_empty() => {
                return Err(SelectorError::Parse(format!(
                    "for 'in', 'notin' operators, values set can't be empty (key {key:?})"
                )));
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                return Err(SelectorError::Parse(format!(
                    "values set must be empty for exists and does not exist (key {key:?})"
                )));
            }
            Operator::GreaterThan | Operator::LessThan
                if values.len() != 1 || values[0].parse::<i64>().is_err() =>
            {
                return Err(SelectorError::Parse(format!(
                    "for 'Gt', 'Lt' operators, exactly one integer value is required (key {key:?})"
                )));
            }
            _ => {}
        }
        if !matches!(op, Operator::GreaterThan | Operator::LessThan) {
            for v in values {
                if let Some(reason) = names::label_value(v).into_iter().next() {
                    return Err(SelectorError::InvalidValue {
                        key: key.into(),
                        value: (*v).into(),
                        reason,
                    });
                }
            }
        }
        Ok(Requirement {
            key: key.into(),
            op,
            values: values.iter().map(|v| v.to_string()).collect(),
        })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.op {
            Operator::Equals | Operator::In => value.is_some_and(|v| self.values.contains(v)),
            Operator::NotEquals | Operator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(have), Some(want)) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values
                        .iter()
                        .next()
                        .and_then(|v| v.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.op == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let joined = || self.values.iter().cloned().collect::<Vec<_>>().join(",");
        match self.op {
            Operator::Equals => write!(f, "{}={}", self.key, joined()),
            Operator::NotEquals => write!(f, "{}!={}", self.key, joined()),
            Operator::In => write!(f, "{} in ({})", self.key, joined()),
            Operator::NotIn => write!(f, "{} notin ({})", self.key, joined()),
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
            Operator::GreaterThan => write!(f, "{}>{}", self.key, joined()),
            Operator::LessThan => write!(f, "{}<{}", self.key, joined()),
        }
    }
}

/// A parsed label selector: all requirements must hold. `Everything` is the empty selector;
/// `Nothing` is what a missing (`null`) selector means to controllers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelSelector {
    Requirements(Vec<Requirement>),
    Nothing,
}

impl Default for LabelSelector {
    fn default() -> Self {
        LabelSelector::Requirements(Vec::new())
    }
}

impl LabelSelector {
    pub fn everything() -> LabelSelector {
        LabelSelector::default()
    }

    pub fn is_everything(&self) -> bool {
        matches!(self, LabelSelector::Requirements(r) if r.is_empty())
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            LabelSelector::Requirements(reqs) => reqs.iter().all(|r| r.matches(labels)),
            LabelSelector::Nothing => false,
        }
    }

    /// Parses the string form (`app=web,tier in (fe,be),!canary`).
    pub fn parse(input: &str) -> Result<LabelSelector, SelectorError> {
        let tokens = lex(input)?;
        let mut parser = Parser { tokens, pos: 0 };
        let mut reqs = Vec::new();
        if parser.peek().is_none() {
            return Ok(LabelSelector::everything());
        }
        loop {
            reqs.push(parser.requirement()?);
            match parser.next() {
                None => break,
                Some(Token::Comma) => continue,
                Some(t) => {
                    return Err(SelectorError::Parse(format!(
                        "found '{t}', expected: ',' or 'end of string'"
                    )));
                }
            }
        }
        reqs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector::Requirements(reqs))
    }

    /// Converts a `metav1.LabelSelector` (matchLabels and matchExpressions). `None` selects nothing.
    pub fn from_api(selector: Option<&ApiLabelSelector>) -> Result<LabelSelector, SelectorError> {
        let Some(selector) = selector else {
            return Ok(LabelSelector::Nothing);
        };
        let mut reqs = Vec::new();
        for (k, v) in selector.match_labels.iter().flatten() {
            reqs.push(Requirement::new(k, Operator::Equals, &[v])?);
        }
        for expr in selector.match_expressions.iter().flatten() {
            let op = match expr.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(SelectorError::Parse(format!(
                        "{other:?} is not a valid label selector operator"
                    )));
                }
            };
            let values: Vec<&str> = expr.values.iter().flatten().map(String::as_str).collect();
            reqs.push(Requirement::new(&expr.key, op, &values)?);
        }
        reqs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector::Requirements(reqs))
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelSelector::Requirements(reqs) => {
                let parts: Vec<String> = reqs.iter().map(|r| r.to_string()).collect();
                write!(f, "{}", parts.join(","))
            }
            LabelSelector::Nothing => write!(f, "<none>"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Not,
    Eq,
    DoubleEq,
    NotEq,
    In,
    NotIn,
    Gt,
    Lt,
    Open,
    Close,
    Comma,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Token::Ident(s) => s.as_str(),
            Token::Not => "!",
            Token::Eq => "=",
            Token::DoubleEq => "==",
            Token::NotEq => "!=",
            Token::In => "in",
            Token::NotIn => "notin",
            Token::Gt => ">",
            Token::Lt => "<",
            Token::Open => "(",
            Token::Close => ")",
            Token::Comma => ",",
        };
        f.write_str(s)
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '!' | '=' | '(' | ')' | ',' | '<' | '>') || c.is_whitespace()
}

fn lex(input: &str) -> Result<Vec<Token>, SelectorError> {
    let mut tokens = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '!' => {
                chars.next();
                if chars.peek() == Some(&'=') {
                    chars.next();
                    tokens.push(Token::NotEq);
                } else {
                    tokens.push(Token::Not);
                }
            }
            '=' => {
                chars.next();
                if chars.peek() == Some(&'=') {
                    chars.next();
                    tokens.push(Token::DoubleEq);
                } else {
                    tokens.push(Token::Eq);
                }
            }
            '(' | ')' | ',' | '<' | '>' => {
                chars.next();
                tokens.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    ',' => Token::Comma,
                    '<' => Token::Lt,
                    _ => Token::Gt,
                });
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if is_special(c) {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(match word.as_str() {
                    "in" => Token::In,
                    "notin" => Token::NotIn,
                    _ => Token::Ident(word),
                });
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn ident(&mut self, what: &str) -> Result<String, SelectorError> {
        match self.next() {
            Some(Token::Ident(s)) => Ok(s),
            // `in`/`notin` are valid label keys and values too.
            Some(Token::In) => Ok("in".into()),
            Some(Token::NotIn) => Ok("notin".into()),
            Some(t) => Err(SelectorError::Parse(format!(
                "found '{t}', expected: {what}"
            ))),
            None => Err(SelectorError::Parse(format!("found '', expected: {what}"))),
        }
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        if self.peek() == Some(&Token::Not) {
            self.next();
            let key = self.ident("identifier after '!'")?;
            return Requirement::new(&key, Operator::DoesNotExist, &[]);
        }
        let key = self.ident("identifier")?;
        let op = match self.peek() {
            None | Some(Token::Comma) => return Requirement::new(&key, Operator::Exists, &[]),
            Some(Token::Eq) | Some(Token::DoubleEq) => Operator::Equals,
            Some(Token::NotEq) => Operator::NotEquals,
            Some(Token::In) => Operator::In,
            Some(Token::NotIn) => Operator::NotIn,
            Some(Token::Gt) => Operator::GreaterThan,
            Some(Token::Lt) => Operator::LessThan,
            Some(t) => {
                return Err(SelectorError::Parse(format!(
                    "found '{t}', expected: in, notin, =, ==, !=, gt, lt"
                )));
            }
        };
        self.next();
        let values: Vec<String> = match op {
            Operator::In | Operator::NotIn => self.value_set()?,
            _ => match self.peek() {
                // `a=` selects the empty value.
                None | Some(Token::Comma) => vec![String::new()],
                _ => vec![self.ident("identifier")?],
            },
        };
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        Requirement::new(&key, op, &refs)
    }

    fn value_set(&mut self) -> Result<Vec<String>, SelectorError> {
        match self.next() {
            Some(Token::Open) => {}
            Some(t) => return Err(SelectorError::Parse(format!("found '{t}', expected: '('"))),
            None => return Err(SelectorError::Parse("found '', expected: '('".into())),
        }
        let mut values = Vec::new();
        loop {
            match self.peek() {
                Some(Token::Close) => {
                    self.next();
                    // `in ()` and `in (a,)` carry an empty value, as in Kubernetes.
                    if values.is_empty() {
                        values.push(String::new());
                    }
                    return Ok(values);
                }
                Some(Token::Comma) => {
                    self.next();
                    if values.is_empty() {
                        values.push(String::new());
                    }
                    if self.peek() == Some(&Token::Close) {
                        values.push(String::new());
                    }
                }
                Some(_) => values.push(self.ident("identifier")?),
                None => return Err(SelectorError::Parse("found '', expected: ')'".into())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn golden_parse_and_match() {
        let l = labels(&[("app", "web"), ("tier", "fe"), ("replicas", "3")]);
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app=db", false),
            ("missing!=x", true),
            ("tier in (fe,be)", true),
            ("tier notin (fe)", false),
            ("missing notin (fe)", true),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("app=web,tier=be", false),
            ("app=web, tier in (fe)", true),
            ("replicas>2", true),
            ("replicas<2", false),
            ("app.kubernetes.io/name", false),
        ];
        for (sel, want) in cases {
            let parsed = LabelSelector::parse(sel);
            assert_eq!(parsed.as_ref().map(|s| s.matches(&l)), Ok(want), "{sel}");
        }
    }

    #[test]
    fn rejects_bad_syntax_with_a_reason() {
        for bad in [
            "app=",
            "tier in fe",
            "=x",
            "a b",
            "app=w e b",
            "-bad=x",
            "x in (a",
            "a>b",
        ] {
            let parsed = LabelSelector::parse(bad);
            if bad == "app=" {
                assert!(parsed.is_ok(), "app= selects the empty value");
                continue;
            }
            assert!(parsed.is_err(), "{bad} should fail, got {parsed:?}");
        }
    }

    #[test]
    fn canonical_string_is_sorted() {
        let s = LabelSelector::parse("tier in (be,fe),app=web,!x").map(|s| s.to_string());
        assert_eq!(s.as_deref(), Ok("app=web,tier in (be,fe),!x"));
    }

    #[test]
    fn api_selector_conversion() {
        let api: ApiLabelSelector = serde_json::from_value(serde_json::json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe"]}]
        }))
        .unwrap_or_default();
        let sel = LabelSelector::from_api(Some(&api));
        let l = labels(&[("app", "web"), ("tier", "fe")]);
        assert_eq!(sel.map(|s| s.matches(&l)), Ok(true));
        assert_eq!(
            LabelSelector::from_api(None).map(|s| s.matches(&l)),
            Ok(false)
        );
        assert_eq!(
            LabelSelector::from_api(Some(&ApiLabelSelector::default())).map(|s| s.matches(&l)),
            Ok(true)
        );
    }
}
