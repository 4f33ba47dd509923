//! Splits a migration file into statements, the way `psql -f` does, keeping each statement's line.
//!
//! Each statement is run on its own so that a failure names the statement's line even when
//! PostgreSQL gives no position (a constraint violation, a lock timeout). The lexer knows what can
//! hide a `;`: quoted strings ('..', E'..' with backslash escapes), quoted identifiers, dollar
//! quotes, line and nested block comments, parentheses, and psql's heuristic for `BEGIN ... END`
//! bodies of SQL-standard functions (`CREATE [OR REPLACE] FUNCTION|PROCEDURE ... BEGIN ATOMIC`).

/// One statement of a migration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The statement's text, from its first token to its `;` (inclusive), comments kept.
    pub text: String,
    /// 1-based line of the statement's first token in the file.
    pub line: usize,
}

/// Why a file cannot be split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitError {
    pub line: usize,
    pub message: String,
}

/// Splits `src` into statements. Comments and blank text between statements are dropped.
pub fn split(src: &str) -> Result<Vec<Statement>, SplitError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    // The current statement: start byte and line of its first token, if any.
    let mut start: Option<(usize, usize)> = None;
    let mut paren = 0i32;
    let mut begin_depth = 0i32;
    // First identifiers of the statement, lowercased initial letters, as psql tracks them.
    let mut idents: Vec<String> = Vec::new();

    let begin_token = |start: &mut Option<(usize, usize)>, at: usize, line: usize| {
        if start.is_none() {
            *start = Some((at, line));
        }
    };

    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => {
                line += 1;
                i += 1;
            }
            c if c.is_ascii_whitespace() => i += 1,
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let open_line = line;
                let mut depth = 1;
                i += 2;
                while depth > 0 {
                    match (b.get(i), b.get(i + 1)) {
                        (None, _) => {
                            return Err(SplitError {
                                line: open_line,
                                message: "unterminated /* comment".into(),
                            });
                        }
                        (Some(b'/'), Some(b'*')) => {
                            depth += 1;
                            i += 2;
                        }
                        (Some(b'*'), Some(b'/')) => {
                            depth -= 1;
                            i += 2;
                        }
                        (Some(b'\n'), _) => {
                            line += 1;
                            i += 1;
                        }
                        _ => i += 1,
                    }
                }
            }
            b'\\' if start.is_none() => {
                return Err(SplitError {
                    line,
                    message:
                        "psql meta-commands (lines starting with `\\`) are not SQL; remove them"
                            .into(),
                });
            }
            b'\'' => {
                begin_token(&mut start, i, line);
                let escapes = i > 0
                    && matches!(b[i - 1], b'e' | b'E')
                    && !is_ident_byte(b.get(i.wrapping_sub(2)).copied());
                i = skip_quoted(b, i, b'\'', escapes, &mut line)?;
            }
            b'"' => {
                begin_token(&mut start, i, line);
                i = skip_quoted(b, i, b'"', false, &mut line)?;
                idents.push(String::new());
            }
            b'$' if dollar_tag(b, i).is_some() => {
                begin_token(&mut start, i, line);
                let tag = dollar_tag(b, i).unwrap_or_default();
                let open_line = line;
                let body = i + tag.len();
                match find(b, body, tag) {
                    Some(end) => {
                        line += b[i..end].iter().filter(|&&x| x == b'\n').count();
                        i = end + tag.len();
                    }
                    None => {
                        return Err(SplitError {
                            line: open_line,
                            message: format!(
                                "unterminated dollar-quoted string {}",
                                String::from_utf8_lossy(tag)
                            ),
                        });
                    }
                }
            }
            b'(' => {
                begin_token(&mut start, i, line);
                paren += 1;
                i += 1;
            }
            b')' => {
                begin_token(&mut start, i, line);
                paren -= 1;
                i += 1;
            }
            b';' => {
                i += 1;
                if paren <= 0 && begin_depth == 0 {
                    if let Some((s, l)) = start.take() {
                        out.push(Statement {
                            text: src[s..i].to_string(),
                            line: l,
                        });
                    }
                    paren = 0;
                    idents.clear();
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                begin_token(&mut start, i, line);
                let s = i;
                while i < b.len() && is_ident_byte(Some(b[i])) {
                    i += 1;
                }
                let word = src[s..i].to_ascii_lowercase();
                // E'...' strings: let the quote branch see the `E` before it.
                if (word == "e") && b.get(i) == Some(&b'\'') {
                    continue;
                }
                track_begin_end(&word, &mut idents, paren, &mut begin_depth);
            }
            _ => {
                begin_token(&mut start, i, line);
                i += 1;
            }
        }
    }
    if let Some((s, l)) = start {
        let text = src[s..].trim_end().to_string();
        if !text.is_empty() {
            out.push(Statement { text, line: l });
        }
    }
    Ok(out)
}

/// psql's heuristic (psqlscan.l): inside `CREATE [OR REPLACE] FUNCTION|PROCEDURE`, at parenthesis
/// depth 0, `BEGIN` opens a block, `CASE` opens one when already inside a block, `END` closes one.
fn track_begin_end(word: &str, idents: &mut Vec<String>, paren: i32, begin_depth: &mut i32) {
    if idents.len() < 4 {
        idents.push(word.to_string());
    }
    let is = |n: usize, w: &str| idents.get(n).is_some_and(|x| x == w);
    let routine = |n: usize| is(n, "function") || is(n, "procedure");
    let in_routine =
        is(0, "create") && (routine(1) || (is(1, "or") && is(2, "replace") && routine(3)));
    if !in_routine || paren != 0 {
        return;
    }
    match word {
        "begin" => *begin_depth += 1,
        "case" if *begin_depth >= 1 => *begin_depth += 1,
        "end" if *begin_depth > 0 => *begin_depth -= 1,
        _ => {}
    }
}

fn is_ident_byte(c: Option<u8>) -> bool {
    c.is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80)
}

/// Skips a quoted string or identifier starting at `i` (the opening quote); returns the index after
/// the closing quote. A doubled quote is an escaped quote; with `escapes`, so is a backslash.
fn skip_quoted(
    b: &[u8],
    mut i: usize,
    q: u8,
    escapes: bool,
    line: &mut usize,
) -> Result<usize, SplitError> {
    let open_line = *line;
    i += 1;
    loop {
        match b.get(i) {
            None => {
                let what = if q == b'"' {
                    "quoted identifier"
                } else {
                    "string"
                };
                return Err(SplitError {
                    line: open_line,
                    message: format!("unterminated {what}"),
                });
            }
            Some(b'\\') if escapes => i += 2,
            Some(&c) if c == q => {
                if b.get(i + 1) == Some(&q) {
                    i += 2;
                } else {
                    return Ok(i + 1);
                }
            }
            Some(b'\n') => {
                *line += 1;
                i += 1;
            }
            Some(_) => i += 1,
        }
    }
}

/// A dollar-quote tag (`$$` or `$name$`) starting at `i`, if there is one. A `$` that continues an
/// identifier (`a$b`) or starts a parameter (`$1`) is not a tag.
fn dollar_tag(b: &[u8], i: usize) -> Option<&[u8]> {
    if i > 0 && is_ident_byte(Some(b[i - 1])) {
        return None;
    }
    let mut j = i + 1;
    if b.get(j).is_some_and(|c| c.is_ascii_digit()) {
        return None;
    }
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] >= 0x80) {
        j += 1;
    }
    (b.get(j) == Some(&b'$')).then(|| &b[i..=j])
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// The first keyword of a statement, lowercased (comments skipped).
pub fn first_keyword(stmt: &str) -> String {
    stmt.trim_start()
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// The 1-based line in the file of a 1-based character `position` inside a statement that starts
/// at `stmt_line`.
pub fn line_of_position(stmt: &Statement, position: usize) -> usize {
    stmt.line
        + stmt
            .text
            .chars()
            .take(position.saturating_sub(1))
            .filter(|&c| c == '\n')
            .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(src: &str) -> Vec<(usize, String)> {
        split(src)
            .unwrap()
            .into_iter()
            .map(|s| (s.line, s.text))
            .collect()
    }

    #[test]
    fn splits_on_semicolons_with_lines() {
        let src =
            "-- header\ncreate table a (x int);\n\n/* c; */ insert into a values (1);\nselect 1";
        assert_eq!(
            texts(src),
            vec![
                (2, "create table a (x int);".into()),
                (4, "insert into a values (1);".into()),
                (5, "select 1".into())
            ]
        );
    }

    #[test]
    fn semicolons_hidden_in_strings_identifiers_dollars_and_comments() {
        let src = "insert into t values ('a;b', E'c\\';d', \"x;y\");\n\
                   create function f() returns int language plpgsql as $body$ begin return 1; end $body$;\n\
                   do $$ begin perform 1; end $$;\n\
                   select /* a /* nested; */ ; */ 1;\n\
                   select $1, a$b from t;";
        let s = split(src).unwrap();
        assert_eq!(s.len(), 5, "{s:#?}");
        assert_eq!(s[1].line, 2);
        assert_eq!(s[4].line, 5);
    }

    #[test]
    fn sql_standard_function_bodies_stay_whole() {
        let src = "CREATE OR REPLACE FUNCTION f(x int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\n  SELECT CASE WHEN x > 0 THEN 1 ELSE 2 END;\nEND;\nselect 2;";
        let s = split(src).unwrap();
        assert_eq!(s.len(), 2, "{s:#?}");
        assert!(s[0].text.ends_with("END;"));
        assert_eq!(s[1].line, 6);
    }

    #[test]
    fn case_end_outside_functions_does_not_nest() {
        let s = split("select case when true then 1 end; select 2;").unwrap();
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn unterminated_things_name_their_line() {
        assert_eq!(split("select 1;\nselect 'abc;").unwrap_err().line, 2);
        assert_eq!(split("\n\ndo $x$ begin").unwrap_err().line, 3);
        assert_eq!(split("/* open").unwrap_err().line, 1);
        assert!(
            split("\\set x 1\n")
                .unwrap_err()
                .message
                .contains("meta-command")
        );
    }

    #[test]
    fn position_maps_to_file_line() {
        let s = split("\n\nselect 1,\n  nope\nfrom t;").unwrap();
        assert_eq!(line_of_position(&s[0], 1), 3);
        assert_eq!(
            line_of_position(&s[0], s[0].text.find("nope").unwrap() + 1),
            4
        );
        assert_eq!(first_keyword("  BEGIN;"), "begin");
    }
}
