//! The small subset of the Kusto Query Language (KQL) the Resource Graph and Log Analytics
//! emulators evaluate. Anything outside it is an error, which the emulators answer as a 400
//! in Azure's error shape, so a client that sends more than the subset fails loudly instead
//! of being answered wrongly.
//!
//! The subset: a table name, then `|`-separated operators:
//!
//! * `where COLUMN OP VALUE [and COLUMN OP VALUE]…` with `==`, `!=`, `=~` (equal, ignoring
//!   case), `!~`, `in (…)`, `!in (…)`, `in~ (…)`, `!in~ (…)`; values are string literals
//!   (`'…'` or `"…"`, with `\\`, `\'`, `\"` escapes) compared with the cell as text;
//!   a `where` column may be a dotted path into a dynamic column
//!   (`properties.additionalData.assessedResourceType`), null where the path leads nowhere;
//! * `project COLUMN, NAME = COLUMN.MEMBER.MEMBER, …`: columns, and members of a dynamic
//!   column (JSON objects) under a new name, `null` where a member is missing (Kusto's
//!   dynamic member access: "The dynamic data type",
//!   learn.microsoft.com/kusto/query/scalar-data-types/dynamic, "Dynamic object accessors");
//!   the new column is `dynamic`. Resource Graph's own queries use this to keep only the
//!   members they need of `properties`;
//! * `order by COLUMN [asc|desc]` (`sort by` too; default `desc`, as Kusto);
//! * `summarize NAME = max(COLUMN), NAME = min(COLUMN), NAME = count() [by COLUMN, …]`
//!   (where the emulator allows it): `by` columns first, then the aggregates; without `by`,
//!   one row even for no input (nulls, or 0 for `count()`).
//!
//! Column names are case-sensitive, as in Kusto; the table name is matched by the caller.

use serde_json::Value;
use std::cmp::Ordering;

/// A comparison of a `where`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    EqCi,
    NeCi,
    In,
    NotIn,
    InCi,
    NotInCi,
}

/// One `COLUMN OP VALUE` test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Predicate {
    pub column: String,
    pub op: CmpOp,
    pub values: Vec<String>,
}

/// An aggregate function of `summarize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AggFn {
    Max,
    Min,
    Count,
}

/// `NAME = FN(COLUMN)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Aggregate {
    pub name: String,
    pub function: AggFn,
    pub column: Option<String>,
}

/// One item of a `project`: `column`, or `name = column.path…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Projection {
    /// The output column's name.
    pub name: String,
    /// The input column.
    pub column: String,
    /// The members followed from the column's value (empty: the column itself).
    pub path: Vec<String>,
}

/// One tabular operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stage {
    Where(Vec<Predicate>),
    Project(Vec<Projection>),
    Order {
        column: String,
        descending: bool,
    },
    Summarize {
        aggregates: Vec<Aggregate>,
        by: Vec<String>,
    },
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Query {
    pub table: String,
    pub stages: Vec<Stage>,
}

/// A table: named, typed columns and rows of JSON cells.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Table {
    pub columns: Vec<(String, &'static str)>,
    pub rows: Vec<Vec<Value>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Str(String),
    Number(String),
    Op(&'static str),
    Pipe,
    LParen,
    RParen,
    Comma,
    Assign,
    Dot,
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            c if c.is_whitespace() => i += 1,
            '|' => {
                tokens.push(Token::Pipe);
                i += 1;
            }
            '(' => {
                tokens.push(Token::LParen);
                i += 1;
            }
            ')' => {
                tokens.push(Token::RParen);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            '.' => {
                tokens.push(Token::Dot);
                i += 1;
            }
            '=' if next == Some('=') => {
                tokens.push(Token::Op("=="));
                i += 2;
            }
            '=' if next == Some('~') => {
                tokens.push(Token::Op("=~"));
                i += 2;
            }
            '=' => {
                tokens.push(Token::Assign);
                i += 1;
            }
            '!' if next == Some('=') => {
                tokens.push(Token::Op("!="));
                i += 2;
            }
            '!' if next == Some('~') => {
                tokens.push(Token::Op("!~"));
                i += 2;
            }
            '!' if chars.get(i + 1..i + 3) == Some(&['i', 'n'][..]) => {
                if chars.get(i + 3) == Some(&'~') {
                    tokens.push(Token::Op("!in~"));
                    i += 4;
                } else {
                    tokens.push(Token::Op("!in"));
                    i += 3;
                }
            }
            '\'' | '"' => {
                let quote = c;
                let mut value = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated string literal".to_string()),
                        Some('\\') => {
                            match chars.get(i + 1) {
                                Some(e @ ('\\' | '\'' | '"')) => value.push(*e),
                                Some(other) => {
                                    return Err(format!(
                                        "unsupported escape \\{other} in a string"
                                    ));
                                }
                                None => return Err("unterminated string literal".to_string()),
                            }
                            i += 2;
                        }
                        Some(ch) if *ch == quote => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            value.push(*ch);
                            i += 1;
                        }
                    }
                }
                tokens.push(Token::Str(value));
            }
            c if c.is_ascii_digit() => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                tokens.push(Token::Number(chars[start..i].iter().collect()));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                // A dotted path into a dynamic column (`properties.a.b`) is one word.
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || chars[i] == '_'
                        || (chars[i] == '.'
                            && chars.get(i + 1).is_some_and(|c| c.is_ascii_alphabetic())))
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if word == "in" {
                    if chars.get(i) == Some(&'~') {
                        tokens.push(Token::Op("in~"));
                        i += 1;
                    } else {
                        tokens.push(Token::Op("in"));
                    }
                } else {
                    tokens.push(Token::Ident(word));
                }
            }
            other => return Err(format!("unexpected character {other:?}")),
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn ident(&mut self, what: &str) -> Result<String, String> {
        match self.next() {
            Some(Token::Ident(name)) => Ok(name),
            other => Err(format!(
                "expected {what}, found {}",
                describe(other.as_ref())
            )),
        }
    }

    fn expect(&mut self, token: Token) -> Result<(), String> {
        match self.next() {
            Some(t) if t == token => Ok(()),
            other => Err(format!(
                "expected {}, found {}",
                describe(Some(&token)),
                describe(other.as_ref())
            )),
        }
    }

    fn keyword(&mut self, word: &str) -> Result<(), String> {
        match self.next() {
            Some(Token::Ident(w)) if w == word => Ok(()),
            other => Err(format!(
                "expected `{word}`, found {}",
                describe(other.as_ref())
            )),
        }
    }

    fn at_stage_end(&self) -> bool {
        matches!(self.peek(), None | Some(Token::Pipe))
    }

    fn columns(&mut self) -> Result<Vec<String>, String> {
        let mut columns = vec![self.ident("a column name")?];
        while self.peek() == Some(&Token::Comma) {
            self.next();
            columns.push(self.ident("a column name")?);
        }
        Ok(columns)
    }

    /// `column`, or `name = column.member…`.
    fn projection(&mut self) -> Result<Projection, String> {
        let first = self.ident("a column name")?;
        if first.contains('.') || self.peek() == Some(&Token::Dot) {
            let column = first.split('.').next().unwrap_or_default();
            return Err(format!(
                "a member of `{column}` needs a column name (`NAME = {column}.member`)"
            ));
        }
        if self.peek() != Some(&Token::Assign) {
            return Ok(Projection {
                name: first.clone(),
                column: first,
                path: Vec::new(),
            });
        }
        self.next();
        // The tokenizer reads `column.a.b` as one word (a dotted path).
        let word = self.ident("a column name")?;
        let mut parts = word.split('.').map(str::to_string);
        let column = parts.next().unwrap_or_default();
        let mut path: Vec<String> = parts.collect();
        while self.peek() == Some(&Token::Dot) {
            self.next();
            path.push(self.ident("a member name")?);
        }
        Ok(Projection {
            name: first,
            column,
            path,
        })
    }

    fn projections(&mut self) -> Result<Vec<Projection>, String> {
        let mut items = vec![self.projection()?];
        while self.peek() == Some(&Token::Comma) {
            self.next();
            items.push(self.projection()?);
        }
        let mut names = std::collections::BTreeSet::new();
        if let Some(twice) = items.iter().find(|p| !names.insert(p.name.as_str())) {
            return Err(format!("the column `{}` is projected twice", twice.name));
        }
        Ok(items)
    }

    fn string(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Str(s)) => Ok(s),
            other => Err(format!(
                "expected a string literal, found {}",
                describe(other.as_ref())
            )),
        }
    }

    fn predicate(&mut self) -> Result<Predicate, String> {
        let column = self.ident("a column name")?;
        let op = match self.next() {
            Some(Token::Op("==")) => CmpOp::Eq,
            Some(Token::Op("!=")) => CmpOp::Ne,
            Some(Token::Op("=~")) => CmpOp::EqCi,
            Some(Token::Op("!~")) => CmpOp::NeCi,
            Some(Token::Op("in")) => CmpOp::In,
            Some(Token::Op("!in")) => CmpOp::NotIn,
            Some(Token::Op("in~")) => CmpOp::InCi,
            Some(Token::Op("!in~")) => CmpOp::NotInCi,
            other => {
                return Err(format!(
                    "unsupported comparison {} (the emulator knows ==, !=, =~, !~, in, !in, in~, !in~)",
                    describe(other.as_ref())
                ));
            }
        };
        let values = match op {
            CmpOp::In | CmpOp::NotIn | CmpOp::InCi | CmpOp::NotInCi => {
                self.expect(Token::LParen)?;
                let mut values = vec![self.string()?];
                while self.peek() == Some(&Token::Comma) {
                    self.next();
                    values.push(self.string()?);
                }
                self.expect(Token::RParen)?;
                values
            }
            _ => vec![self.string()?],
        };
        Ok(Predicate { column, op, values })
    }

    fn aggregate(&mut self) -> Result<Aggregate, String> {
        let name = self.ident("an aggregate's name")?;
        self.expect(Token::Assign)?;
        let function = match self.ident("an aggregate function")?.as_str() {
            "max" => AggFn::Max,
            "min" => AggFn::Min,
            "count" => AggFn::Count,
            other => {
                return Err(format!(
                    "unsupported aggregate function {other}() (the emulator knows max, min, count)"
                ));
            }
        };
        self.expect(Token::LParen)?;
        let column = if function == AggFn::Count {
            None
        } else {
            Some(self.ident("a column name")?)
        };
        self.expect(Token::RParen)?;
        Ok(Aggregate {
            name,
            function,
            column,
        })
    }

    fn stage(&mut self) -> Result<Stage, String> {
        let operator = self.ident("a tabular operator")?;
        self.stage_body(&operator)
            .map_err(|e| format!("in `{operator}`: {e}"))
    }

    fn stage_body(&mut self, operator: &str) -> Result<Stage, String> {
        let stage = match operator {
            "where" => {
                let mut predicates = vec![self.predicate()?];
                while matches!(self.peek(), Some(Token::Ident(w)) if w == "and") {
                    self.next();
                    predicates.push(self.predicate()?);
                }
                Stage::Where(predicates)
            }
            "project" => Stage::Project(self.projections()?),
            "order" | "sort" => {
                self.keyword("by")?;
                let column = self.ident("a column name")?;
                let descending = match self.peek() {
                    Some(Token::Ident(w)) if w == "asc" => {
                        self.next();
                        false
                    }
                    Some(Token::Ident(w)) if w == "desc" => {
                        self.next();
                        true
                    }
                    _ => true,
                };
                Stage::Order { column, descending }
            }
            "summarize" => {
                let mut aggregates = vec![self.aggregate()?];
                while self.peek() == Some(&Token::Comma) {
                    self.next();
                    aggregates.push(self.aggregate()?);
                }
                let by = if matches!(self.peek(), Some(Token::Ident(w)) if w == "by") {
                    self.next();
                    self.columns()?
                } else {
                    Vec::new()
                };
                Stage::Summarize { aggregates, by }
            }
            other => {
                return Err(format!(
                    "the operator `{other}` is outside the emulator's KQL subset (where, project, order by, summarize)"
                ));
            }
        };
        if !self.at_stage_end() {
            return Err(format!(
                "unexpected {} after `{operator}`",
                describe(self.peek())
            ));
        }
        Ok(stage)
    }
}

fn describe(token: Option<&Token>) -> String {
    match token {
        None => "the end of the query".to_string(),
        Some(Token::Ident(w)) => format!("`{w}`"),
        Some(Token::Str(s)) => format!("the string {s:?}"),
        Some(Token::Number(n)) => format!("the number {n}"),
        Some(Token::Op(op)) => format!("`{op}`"),
        Some(Token::Pipe) => "`|`".to_string(),
        Some(Token::LParen) => "`(`".to_string(),
        Some(Token::RParen) => "`)`".to_string(),
        Some(Token::Comma) => "`,`".to_string(),
        Some(Token::Assign) => "`=`".to_string(),
        Some(Token::Dot) => "`.`".to_string(),
    }
}

/// Parses a query of the subset.
pub(crate) fn parse(text: &str) -> Result<Query, String> {
    let mut parser = Parser {
        tokens: tokenize(text)?,
        at: 0,
    };
    let table = parser.ident("a table name")?;
    let mut stages = Vec::new();
    loop {
        match parser.next() {
            None => break,
            Some(Token::Pipe) => stages.push(parser.stage()?),
            other => {
                return Err(format!(
                    "expected `|` after the table name, found {}",
                    describe(other.as_ref())
                ));
            }
        }
    }
    Ok(Query { table, stages })
}

/// A cell as the text comparisons see it.
fn text(cell: &Value) -> String {
    match cell {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn holds(predicate: &Predicate, cell: &Value) -> bool {
    let value = text(cell);
    let eq = |v: &String| *v == value;
    let eq_ci = |v: &String| v.to_lowercase() == value.to_lowercase();
    match predicate.op {
        CmpOp::Eq | CmpOp::In => predicate.values.iter().any(eq),
        CmpOp::Ne | CmpOp::NotIn => !predicate.values.iter().any(eq),
        CmpOp::EqCi | CmpOp::InCi => predicate.values.iter().any(eq_ci),
        CmpOp::NeCi | CmpOp::NotInCi => !predicate.values.iter().any(eq_ci),
    }
}

fn compare(a: &Value, b: &Value, kind: &str) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        _ if kind == "datetime" => {
            let parse = |v: &Value| chrono::DateTime::parse_from_rfc3339(&text(v)).ok();
            match (parse(a), parse(b)) {
                (Some(x), Some(y)) => x.cmp(&y),
                _ => text(a).cmp(&text(b)),
            }
        }
        _ => text(a).cmp(&text(b)),
    }
}

/// The member at `path` of a dynamic value (`properties.a.b`: `a`, then `b`); null where
/// one is missing or not an object, as Kusto answers.
fn member<S: AsRef<str>>(cell: &Value, path: &[S]) -> Value {
    path.iter()
        .try_fold(cell, |value, key| value.get(key.as_ref()))
        .cloned()
        .unwrap_or(Value::Null)
}

fn index_of(table: &Table, column: &str) -> Result<usize, String> {
    table
        .columns
        .iter()
        .position(|(name, _)| name == column)
        .ok_or_else(|| {
            format!(
                "failed to resolve column `{column}` (columns here: {})",
                table
                    .columns
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// Evaluates the stages of `query` over `input`; `summarize` only when `allow_summarize`.
pub(crate) fn evaluate(
    query: &Query,
    input: Table,
    allow_summarize: bool,
) -> Result<Table, String> {
    let mut table = input;
    for stage in &query.stages {
        table = match stage {
            Stage::Where(predicates) => {
                let tests = predicates
                    .iter()
                    .map(|p| {
                        let mut path = p.column.split('.');
                        let column = path.next().unwrap_or_default();
                        let rest: Vec<&str> = path.collect();
                        index_of(&table, column).map(|i| (i, rest, p))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let rows = table
                    .rows
                    .into_iter()
                    .filter(|row| {
                        tests
                            .iter()
                            .all(|(i, path, p)| holds(p, &member(&row[*i], path)))
                    })
                    .collect();
                Table {
                    columns: table.columns,
                    rows,
                }
            }
            Stage::Project(items) => {
                let indexes = items
                    .iter()
                    .map(|p| index_of(&table, &p.column))
                    .collect::<Result<Vec<_>, _>>()?;
                Table {
                    columns: items
                        .iter()
                        .zip(&indexes)
                        .map(|(p, i)| match p.path.is_empty() {
                            true => (p.name.clone(), table.columns[*i].1),
                            false => (p.name.clone(), "dynamic"),
                        })
                        .collect(),
                    rows: table
                        .rows
                        .iter()
                        .map(|row| {
                            items
                                .iter()
                                .zip(&indexes)
                                .map(|(p, i)| member(&row[*i], &p.path))
                                .collect()
                        })
                        .collect(),
                }
            }
            Stage::Order { column, descending } => {
                let i = index_of(&table, column)?;
                let kind = table.columns[i].1;
                let mut rows = table.rows;
                rows.sort_by(|a, b| {
                    let order = compare(&a[i], &b[i], kind);
                    if *descending { order.reverse() } else { order }
                });
                Table {
                    columns: table.columns,
                    rows,
                }
            }
            Stage::Summarize { aggregates, by } => {
                if !allow_summarize {
                    return Err("`summarize` is outside this emulator's KQL subset".to_string());
                }
                summarize(table, aggregates, by)?
            }
        };
    }
    Ok(table)
}

fn summarize(table: Table, aggregates: &[Aggregate], by: &[String]) -> Result<Table, String> {
    let keys = by
        .iter()
        .map(|c| index_of(&table, c))
        .collect::<Result<Vec<_>, _>>()?;
    let sources = aggregates
        .iter()
        .map(|a| match &a.column {
            Some(c) => index_of(&table, c).map(Some),
            None => Ok(None),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut columns: Vec<(String, &'static str)> =
        keys.iter().map(|i| table.columns[*i].clone()).collect();
    for (aggregate, source) in aggregates.iter().zip(&sources) {
        let kind = match (aggregate.function, source) {
            (AggFn::Count, _) => "long",
            (_, Some(i)) => table.columns[*i].1,
            (_, None) => "string",
        };
        columns.push((aggregate.name.clone(), kind));
    }
    // Groups in order of first appearance.
    let mut groups: Vec<(Vec<Value>, Vec<&Vec<Value>>)> = Vec::new();
    for row in &table.rows {
        let key: Vec<Value> = keys.iter().map(|i| row[*i].clone()).collect();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(row),
            None => groups.push((key, vec![row])),
        }
    }
    if groups.is_empty() && keys.is_empty() {
        groups.push((Vec::new(), Vec::new()));
    }
    let rows = groups
        .into_iter()
        .map(|(key, members)| {
            let mut row = key;
            for (aggregate, source) in aggregates.iter().zip(&sources) {
                let value = match (aggregate.function, source) {
                    (AggFn::Count, _) => Value::from(members.len()),
                    (function, Some(i)) => {
                        let kind = table.columns[*i].1;
                        let values = members.iter().map(|r| &r[*i]).filter(|v| !v.is_null());
                        let best = if function == AggFn::Max {
                            values.max_by(|a, b| compare(a, b, kind))
                        } else {
                            values.min_by(|a, b| compare(a, b, kind))
                        };
                        best.cloned().unwrap_or(Value::Null)
                    }
                    (_, None) => Value::Null,
                };
                row.push(value);
            }
            row
        })
        .collect();
    Ok(Table { columns, rows })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table() -> Table {
        Table {
            columns: vec![("name", "string"), ("time", "datetime")]
                .into_iter()
                .map(|(n, t)| (n.to_string(), t))
                .collect(),
            rows: vec![
                vec![json!("a"), json!("2024-01-02T00:00:00Z")],
                vec![json!("B"), json!("2024-01-01T00:00:00Z")],
                vec![json!("a"), json!("2024-01-03T00:00:00Z")],
            ],
        }
    }

    #[test]
    fn where_in_ignoring_case_and_project() {
        let q = parse("T | where name in~ ('b', \"x\") | project time").unwrap();
        let out = evaluate(&q, table(), false).unwrap();
        assert_eq!(out.columns, vec![("time".to_string(), "datetime")]);
        assert_eq!(out.rows, vec![vec![json!("2024-01-01T00:00:00Z")]]);
    }

    #[test]
    fn where_follows_a_dotted_path_into_a_dynamic_column() {
        let input = Table {
            columns: vec![
                ("id".to_string(), "string"),
                ("properties".to_string(), "object"),
            ],
            rows: vec![
                vec![json!("a"), json!({"data": {"kind": "X"}})],
                vec![json!("b"), json!({"data": {"kind": "Y"}})],
                vec![json!("c"), json!({})],
            ],
        };
        let q = parse("T | where properties.data.kind == 'X' | project id").unwrap();
        let out = evaluate(&q, input.clone(), false).unwrap();
        assert_eq!(out.rows, vec![vec![json!("a")]]);
        let q = parse("T | where properties.data.kind != 'X' | project id").unwrap();
        let out = evaluate(&q, input.clone(), false).unwrap();
        assert_eq!(out.rows, vec![vec![json!("b")], vec![json!("c")]]);
        let q = parse("T | where nothing.data == 'X'").unwrap();
        assert!(evaluate(&q, input, false).is_err());
    }

    #[test]
    fn project_takes_members_of_a_dynamic_column_under_a_new_name() {
        let input = Table {
            columns: vec![
                ("id".to_string(), "string"),
                ("properties".to_string(), "dynamic"),
            ],
            rows: vec![
                vec![
                    json!("a"),
                    json!({"fqdn": "a.io", "template": {"containers": [{"image": "x"}]}}),
                ],
                vec![json!("b"), json!({"template": null})],
                vec![json!("c"), Value::Null],
            ],
        };
        let q = parse(
            "T | project id, fqdn = properties.fqdn, containers = properties.template.containers",
        )
        .unwrap();
        let out = evaluate(&q, input, false).unwrap();
        assert_eq!(
            out.columns,
            vec![
                ("id".to_string(), "string"),
                ("fqdn".to_string(), "dynamic"),
                ("containers".to_string(), "dynamic")
            ]
        );
        assert_eq!(
            out.rows,
            vec![
                vec![json!("a"), json!("a.io"), json!([{"image": "x"}])],
                vec![json!("b"), Value::Null, Value::Null],
                vec![json!("c"), Value::Null, Value::Null],
            ]
        );
        assert!(
            parse("T | project properties.fqdn")
                .unwrap_err()
                .contains("needs a column name")
        );
        assert!(
            parse("T | project a = id, a = id")
                .unwrap_err()
                .contains("twice")
        );
        assert!(parse("T | project a = properties.").is_err());
    }

    #[test]
    fn summarize_by_and_without_by() {
        let q = parse("T | where name != 'B' | summarize Last = max(time), N = count() by name")
            .unwrap();
        let out = evaluate(&q, table(), true).unwrap();
        assert_eq!(
            out.rows,
            vec![vec![json!("a"), json!("2024-01-03T00:00:00Z"), json!(2)]]
        );
        let q = parse("T | where name == 'none' | summarize First = min(time)").unwrap();
        let out = evaluate(&q, table(), true).unwrap();
        assert_eq!(out.rows, vec![vec![Value::Null]]);
        assert!(evaluate(&q, table(), false).is_err());
    }

    #[test]
    fn strings_escape_and_errors_are_clear() {
        let q = parse(r#"T | where name !in~ ("a\"b", 'c\'d')"#).unwrap();
        assert_eq!(
            q.stages,
            vec![Stage::Where(vec![Predicate {
                column: "name".into(),
                op: CmpOp::NotInCi,
                values: vec!["a\"b".into(), "c'd".into()],
            }])]
        );
        assert!(parse("T | take 5").unwrap_err().contains("take"));
        assert!(
            parse("T | where name contains 'x'")
                .unwrap_err()
                .contains("contains")
        );
        assert!(
            evaluate(&parse("T | project nope").unwrap(), table(), false)
                .unwrap_err()
                .contains("nope")
        );
        let q = parse("T | order by time asc").unwrap();
        let out = evaluate(&q, table(), false).unwrap();
        assert_eq!(out.rows[0][0], json!("B"));
    }
}
