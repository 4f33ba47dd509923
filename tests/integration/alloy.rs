//! A small, honest parser for the Alloy configuration syntax (River): enough structure to
//! assert on a config, and a clear error for anything it does not understand.
//!
//! Grammar covered: a body is a list of attributes (`name = expr`) and blocks
//! (`name.dotted "label" { body }`, label optional); expressions are strings ("..." with escapes,
//! or `raw` in backticks), numbers, `true`/`false`/`null`, lists `[a, b,]`, objects
//! `{ key = expr, "k" = expr }`, references (`discovery.docker.x.targets`) and calls
//! (`sys.env("X")`). Comments: `//` and `/* */`. Operators are not supported (an error).
//! Used by `configs` to check the Alloy config `render` writes (Alloy itself cannot run here).

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Num(String),
    Bool(bool),
    Null,
    List(Vec<Value>),
    Object(Vec<(String, Value)>),
    Ref(String),
    Call(String, Vec<Value>),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Block {
    pub name: String,
    pub label: Option<String>,
    pub attrs: Vec<(String, Value)>,
    pub blocks: Vec<Block>,
}

impl Block {
    pub fn attr(&self, name: &str) -> Option<&Value> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
    pub fn blocks_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
        self.blocks.iter().filter(move |b| b.name == name)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(String),
    Punct(char),
}

fn lex(src: &str) -> Result<Vec<(Tok, usize)>, String> {
    let b: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut line = 1;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            '/' if b.get(i + 1) == Some(&'/') => {
                while i < b.len() && b[i] != '\n' {
                    i += 1;
                }
            }
            '/' if b.get(i + 1) == Some(&'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == '*' && b[i + 1] == '/') {
                    if b[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
                if i + 1 >= b.len() {
                    return Err(format!("line {line}: unterminated /* comment"));
                }
                i += 2;
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match b.get(i) {
                        None | Some('\n') => {
                            return Err(format!("line {line}: unterminated string"));
                        }
                        Some('"') => break,
                        Some('\\') => {
                            let e = b.get(i + 1).ok_or(format!("line {line}: bad escape"))?;
                            s.push(match e {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                '"' => '"',
                                '\\' => '\\',
                                other => {
                                    return Err(format!("line {line}: unknown escape \\{other}"));
                                }
                            });
                            i += 2;
                        }
                        Some(ch) => {
                            s.push(*ch);
                            i += 1;
                        }
                    }
                }
                i += 1;
                out.push((Tok::Str(s), line));
            }
            '`' => {
                let start = i + 1;
                i = start;
                while i < b.len() && b[i] != '`' {
                    if b[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
                if i >= b.len() {
                    return Err(format!("line {line}: unterminated raw string"));
                }
                out.push((Tok::Str(b[start..i].iter().collect()), line));
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '_' || b[i] == '.') {
                    i += 1;
                }
                out.push((Tok::Ident(b[start..i].iter().collect()), line));
            }
            c if c.is_ascii_digit()
                || (c == '-' && b.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                let start = i;
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '.') {
                    i += 1;
                }
                out.push((Tok::Num(b[start..i].iter().collect()), line));
            }
            '{' | '}' | '[' | ']' | '(' | ')' | '=' | ',' => {
                out.push((Tok::Punct(c), line));
                i += 1;
            }
            other => {
                return Err(format!(
                    "line {line}: unexpected character {other:?} (operators are not supported)"
                ));
            }
        }
    }
    Ok(out)
}

/// A body's attributes and blocks.
type Body = (Vec<(String, Value)>, Vec<Block>);

struct P {
    toks: Vec<(Tok, usize)>,
    i: usize,
}

impl P {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|(t, _)| t)
    }
    fn line(&self) -> usize {
        self.toks
            .get(self.i)
            .or(self.toks.last())
            .map(|(_, l)| *l)
            .unwrap_or(0)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.i).map(|(t, _)| t.clone());
        self.i += 1;
        t
    }
    fn expect(&mut self, c: char) -> Result<(), String> {
        match self.next() {
            Some(Tok::Punct(p)) if p == c => Ok(()),
            other => Err(format!(
                "line {}: expected `{c}`, found {other:?}",
                self.line()
            )),
        }
    }

    /// A body up to `}` (nested) or the end (top level).
    fn body(&mut self, nested: bool) -> Result<Body, String> {
        let mut attrs = Vec::new();
        let mut blocks = Vec::new();
        loop {
            match self.next() {
                None if !nested => return Ok((attrs, blocks)),
                None => return Err("unexpected end of input: missing `}`".into()),
                Some(Tok::Punct('}')) if nested => return Ok((attrs, blocks)),
                Some(Tok::Ident(name)) => match self.peek() {
                    Some(Tok::Punct('=')) => {
                        self.i += 1;
                        if name.contains('.') {
                            return Err(format!(
                                "line {}: attribute name `{name}` has a dot",
                                self.line()
                            ));
                        }
                        let v = self.expr()?;
                        attrs.push((name, v));
                    }
                    Some(Tok::Str(_)) | Some(Tok::Punct('{')) => {
                        let label = match self.peek() {
                            Some(Tok::Str(s)) => {
                                let s = s.clone();
                                self.i += 1;
                                Some(s)
                            }
                            _ => None,
                        };
                        self.expect('{')?;
                        let (a, b) = self.body(true)?;
                        blocks.push(Block {
                            name,
                            label,
                            attrs: a,
                            blocks: b,
                        });
                    }
                    other => {
                        return Err(format!(
                            "line {}: after `{name}` expected `=`, a label or `{{`, found {other:?}",
                            self.line()
                        ));
                    }
                },
                Some(other) => {
                    return Err(format!(
                        "line {}: expected an attribute or a block, found {other:?}",
                        self.line()
                    ));
                }
            }
        }
    }

    fn expr(&mut self) -> Result<Value, String> {
        let line = self.line();
        match self.next() {
            Some(Tok::Str(s)) => Ok(Value::Str(s)),
            Some(Tok::Num(n)) => Ok(Value::Num(n)),
            Some(Tok::Ident(id)) => match id.as_str() {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                "null" => Ok(Value::Null),
                _ if self.peek() == Some(&Tok::Punct('(')) => {
                    self.i += 1;
                    let args = self.list_until(')')?;
                    Ok(Value::Call(id, args))
                }
                _ => Ok(Value::Ref(id)),
            },
            Some(Tok::Punct('[')) => Ok(Value::List(self.list_until(']')?)),
            Some(Tok::Punct('{')) => {
                let mut fields = Vec::new();
                loop {
                    match self.next() {
                        Some(Tok::Punct('}')) => return Ok(Value::Object(fields)),
                        Some(Tok::Ident(k)) | Some(Tok::Str(k)) => {
                            self.expect('=')?;
                            fields.push((k, self.expr()?));
                            match self.peek() {
                                Some(Tok::Punct(',')) => self.i += 1,
                                Some(Tok::Punct('}')) => {}
                                other => {
                                    return Err(format!(
                                        "line {}: expected `,` or `}}` in object, found {other:?}",
                                        self.line()
                                    ));
                                }
                            }
                        }
                        other => {
                            return Err(format!(
                                "line {}: expected an object key, found {other:?}",
                                self.line()
                            ));
                        }
                    }
                }
            }
            other => Err(format!("line {line}: expected a value, found {other:?}")),
        }
    }

    fn list_until(&mut self, close: char) -> Result<Vec<Value>, String> {
        let mut items = Vec::new();
        loop {
            if self.peek() == Some(&Tok::Punct(close)) {
                self.i += 1;
                return Ok(items);
            }
            items.push(self.expr()?);
            match self.next() {
                Some(Tok::Punct(',')) => {}
                Some(Tok::Punct(c)) if c == close => return Ok(items),
                other => {
                    return Err(format!(
                        "line {}: expected `,` or `{close}`, found {other:?}",
                        self.line()
                    ));
                }
            }
        }
    }
}

/// Parses a whole config into its top-level blocks (top-level attributes are an error: Alloy
/// has none).
pub fn parse(src: &str) -> Result<Vec<Block>, String> {
    let mut p = P {
        toks: lex(src)?,
        i: 0,
    };
    let (attrs, blocks) = p.body(false)?;
    if let Some((k, _)) = attrs.first() {
        return Err(format!(
            "top-level attribute `{k}`: Alloy configs hold only blocks"
        ));
    }
    Ok(blocks)
}

#[test]
fn parser_handles_the_syntax_and_refuses_what_it_does_not_know() {
    let src = r#"
            // comment
            a.b "x" { /* c */ k = "v\"q", n = 5
              l = [1, "two", c.d.e, f("g"),]
              o = { "k" = true, j = null }
              inner { u = `raw\n` }
            }
        "#;
    let blocks = parse(&src.replace(", n = 5", "\n n = 5")).unwrap();
    assert_eq!(blocks.len(), 1);
    let b = &blocks[0];
    assert_eq!((b.name.as_str(), b.label.as_deref()), ("a.b", Some("x")));
    assert_eq!(b.attr("k"), Some(&Value::Str("v\"q".into())));
    assert_eq!(b.attr("n"), Some(&Value::Num("5".into())));
    let Some(Value::List(l)) = b.attr("l") else {
        panic!()
    };
    assert_eq!(l[2], Value::Ref("c.d.e".into()));
    assert_eq!(l[3], Value::Call("f".into(), vec![Value::Str("g".into())]));
    assert_eq!(b.blocks[0].attr("u"), Some(&Value::Str("raw\\n".into())));
    assert!(parse("a { x = 1 + 2 }").is_err());
    assert!(parse("a { x = ").is_err());
    assert!(parse("a \"l\" { ").is_err());
    assert!(parse("x = 1").is_err());
}
