//! A small fluent helper for running `stackctl` in a temporary stack directory, in the style of
//! just's `tests/test.rs`: `Stackctl::new().args(["init"]).run().success()`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A loopback port free right now (for a stack's published ports).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The loopback port Docker published for `container`'s `port` (such as `5432/tcp`).
pub fn published_port(container: &str, port: &str) -> u16 {
    let out = Command::new("docker")
        .args(["port", container, port])
        .output()
        .expect("docker port");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.rsplit_once(':').and_then(|(_, p)| p.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no published port {port} for {container}: {text:?}"))
}

/// `docker ARGS` that must succeed; its trimmed stdout.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The stackctl binary cargo built for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_stackctl"))
}

/// A temporary stack directory and a way to run stackctl in it.
pub struct Stackctl {
    pub dir: tempfile::TempDir,
}

impl Default for Stackctl {
    fn default() -> Self {
        Self::new()
    }
}

impl Stackctl {
    pub fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("stackctl-test-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.file(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.file(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// Starts a command: `stackctl --dir <tmp> ARGS...`.
    pub fn cmd<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut c = Command::new(bin());
        c.arg("--dir").arg(self.path()).args(args);
        Run { cmd: c }
    }

    /// Starts a command the way a user in the stack directory types it: `cd <tmp> && stackctl
    /// ARGS...`, with no `--dir` (so the default `.` applies).
    pub fn cmd_inside<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut c = Command::new(bin());
        c.current_dir(self.path()).args(args);
        Run { cmd: c }
    }
}

/// A command about to run.
pub struct Run {
    pub cmd: Command,
}

impl Run {
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.cmd.env(k, v);
        self
    }

    pub fn run(mut self) -> Done {
        let out = self.cmd.output().expect("running stackctl");
        Done { out }
    }
}

/// A finished command, with assertions that print its output when they fail.
pub struct Done {
    pub out: Output,
}

impl Done {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    fn show(&self) -> String {
        format!(
            "exit: {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.out.status.code(),
            self.stdout(),
            self.stderr()
        )
    }

    pub fn success(self) -> Self {
        assert!(
            self.out.status.success(),
            "expected success\n{}",
            self.show()
        );
        self
    }

    pub fn failure(self) -> Self {
        assert!(
            !self.out.status.success(),
            "expected failure\n{}",
            self.show()
        );
        self
    }

    pub fn stdout_contains(self, s: &str) -> Self {
        assert!(
            self.stdout().contains(s),
            "stdout lacks {s:?}\n{}",
            self.show()
        );
        self
    }

    pub fn stderr_contains(self, s: &str) -> Self {
        assert!(
            self.stderr().contains(s),
            "stderr lacks {s:?}\n{}",
            self.show()
        );
        self
    }
}

/// Fails the test loudly when the Docker Engine cannot be reached: tests that need Docker never
/// pass by skipping.
pub fn require_docker() {
    let ok = Command::new("docker")
        .arg("info")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "this test needs a running Docker Engine (`docker info` failed); see README, section Tests"
    );
}

/// `docker compose` v2 (installed by scripts/compose-v2.sh), or panics with how to get it.
pub fn compose_v2() -> Command {
    let ok = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains(" 2."))
        .unwrap_or(false);
    assert!(
        ok,
        "this test needs Docker Compose v2 as `docker compose`: run scripts/compose-v2.sh"
    );
    let mut c = Command::new("docker");
    c.arg("compose");
    c
}

/// Mode bits of a file.
pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

impl Stackctl {
    /// Every value of the stack's `.env` (`KEY=value` lines; comments and blanks skipped).
    pub fn env_values(&self) -> std::collections::BTreeMap<String, String> {
        parse_env(&self.read(".env"))
    }

    /// Parses a YAML file of the stack directory.
    pub fn yaml(&self, rel: &str) -> serde_yaml::Value {
        serde_yaml::from_str(&self.read(rel)).unwrap_or_else(|e| panic!("{rel} is not YAML: {e}"))
    }

    /// Replaces `from` by `to` in a file of the stack directory; panics when `from` is absent, so a
    /// test never edits nothing by accident.
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = self.read(rel);
        assert!(text.contains(from), "{rel} lacks {from:?}");
        std::fs::write(self.file(rel), text.replacen(from, to, 1)).unwrap();
    }

    /// Every entry under the stack directory, with its mode and bytes.
    pub fn snapshot(&self) -> Snapshot {
        snapshot(self.path())
    }
}

/// `KEY=value` lines of a `.env` text.
pub fn parse_env(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// A directory tree: relative path -> (mode, contents; `None` for a directory).
pub type Snapshot = std::collections::BTreeMap<PathBuf, (u32, Option<Vec<u8>>)>;

/// Records every file and directory under `root` (an absent root is an empty snapshot), to
/// prove that a failing command wrote nothing.
pub fn snapshot(root: &Path) -> Snapshot {
    fn walk(root: &Path, dir: &Path, out: &mut Snapshot) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                out.insert(rel, (mode(&p), None));
                walk(root, &p, out);
            } else {
                out.insert(rel, (mode(&p), Some(std::fs::read(&p).unwrap())));
            }
        }
    }
    let mut out = Snapshot::new();
    walk(root, root, &mut out);
    out
}

/// Asserts two snapshots are equal, naming the first entry that differs.
pub fn assert_unchanged(before: &Snapshot, after: &Snapshot) {
    for (p, v) in after {
        match before.get(p) {
            None => panic!("{} was created", p.display()),
            Some(b) if b != v => panic!("{} was changed", p.display()),
            _ => {}
        }
    }
    for p in before.keys() {
        assert!(after.contains_key(p), "{} was removed", p.display());
    }
}

/// Looks up `a.b.c` in a YAML value (each segment a mapping key).
pub fn yget<'a>(v: &'a serde_yaml::Value, path: &str) -> Option<&'a serde_yaml::Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

/// A YAML scalar as a string (numbers and booleans too), or panics.
pub fn ystr(v: &serde_yaml::Value) -> String {
    match v {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// A small, honest parser for the Alloy configuration syntax (River): enough structure to
/// assert on a config, and a clear error for anything it does not understand.
///
/// Grammar covered: a body is a list of attributes (`name = expr`) and blocks
/// (`name.dotted "label" { body }`, label optional); expressions are strings ("..." with escapes,
/// or `raw` in backticks), numbers, `true`/`false`/`null`, lists `[a, b,]`, objects
/// `{ key = expr, "k" = expr }`, references (`discovery.docker.x.targets`) and calls
/// (`sys.env("X")`). Comments: `//` and `/* */`. Operators are not supported (an error).
pub mod alloy {
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
                                        return Err(format!(
                                            "line {line}: unknown escape \\{other}"
                                        ));
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
                    while i < b.len()
                        && (b[i].is_ascii_alphanumeric() || b[i] == '_' || b[i] == '.')
                    {
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
}

/// `stackctl --dir DIR ARGS...` for a directory other than a `Stackctl`'s own.
pub fn stackctl_in<I, S>(dir: &Path, args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut c = Command::new(bin());
    c.arg("--dir").arg(dir).args(args);
    Run { cmd: c }
}

/// The tag of our PostgreSQL image, as stack.toml's default names it.
pub const POSTGRES_IMAGE: &str = "stackctl/postgres:17";

/// Makes sure our PostgreSQL 17 image exists and returns its tag. When it is missing it is built
/// from `stack/postgres` on the imported base `debian:trixie-slim` (see README, section Tests:
/// `debootstrap` + `docker import` make the base; host networking lets apt reach Debian's mirror).
/// Built once per test run, whichever test asks first.
pub fn postgres_image() -> &'static str {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        require_docker();
        let exists = |tag: &str| {
            Command::new("docker")
                .args(["image", "inspect", tag])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        };
        if exists(POSTGRES_IMAGE) {
            return;
        }
        assert!(
            exists("debian:trixie-slim"),
            "the base image debian:trixie-slim is missing; see README, section Tests"
        );
        let ctx = Path::new(env!("CARGO_MANIFEST_DIR")).join("stack/postgres");
        let out = Command::new("docker")
            .args([
                "build",
                "--network",
                "host",
                "--build-arg",
                "BASE=debian:trixie-slim",
                "-t",
                POSTGRES_IMAGE,
            ])
            .arg(&ctx)
            .output()
            .expect("running docker build");
        assert!(
            out.status.success(),
            "building {POSTGRES_IMAGE} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    POSTGRES_IMAGE
}

/// A throw-away PostgreSQL 17 server in a container of our image, removed when dropped.
pub struct Postgres {
    pub name: String,
    pub port: u16,
    pub password: String,
    pub database: String,
}

impl Postgres {
    /// Starts a server (database `app`, superuser `postgres`) on a loopback port and waits, with a
    /// deadline, until it accepts connections.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// [`Postgres::start`] with extra `docker run` arguments (e.g. a volume).
    pub fn start_with(docker_args: &[&str]) -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let image = postgres_image();
        let name = format!(
            "stackctl-test-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let password = format!("pw{}", std::process::id());
        let out = Command::new("docker")
            .args(["run", "-d", "--rm", "--name", &name, "-e"])
            .arg(format!("POSTGRES_PASSWORD={password}"))
            .args(["-e", "POSTGRES_DB=app", "-p", "127.0.0.1::5432"])
            .args(docker_args)
            .arg(image)
            .output()
            .expect("docker run");
        assert!(
            out.status.success(),
            "docker run {image}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // From here on the guard removes the container, even if waiting fails.
        let mut pg = Self {
            name,
            port: 0,
            password,
            database: "app".into(),
        };
        pg.port = published_port(&pg.name, "5432/tcp");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        loop {
            match Db::connect(&pg.url()) {
                Ok(db) if db.query("SELECT 1").is_ok() => break,
                Ok(_) | Err(_) if std::time::Instant::now() < deadline => {
                    // Poll fast; the deadline bounds the wait.
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Ok(_) | Err(_) => {
                    let logs = Command::new("docker")
                        .args(["logs", "--tail", "30", &pg.name])
                        .output()
                        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned());
                    panic!(
                        "PostgreSQL in {} did not accept connections within 90s; logs:\n{}",
                        pg.name,
                        logs.unwrap_or_default()
                    );
                }
            }
        }
        pg
    }

    /// The superuser's URL.
    pub fn url(&self) -> String {
        self.url_as("postgres", &self.password)
    }

    pub fn url_as(&self, user: &str, password: &str) -> String {
        format!(
            "postgres://{user}:{password}@127.0.0.1:{}/{}",
            self.port, self.database
        )
    }

    /// A superuser connection.
    pub fn db(&self) -> Db {
        Db::connect(&self.url()).unwrap_or_else(|e| panic!("connecting to {}: {e}", self.name))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &self.name])
            .output();
    }
}

/// A blocking PostgreSQL client for assertions (tokio-postgres on its own small runtime).
pub struct Db {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Db {
    pub fn connect(url: &str) -> Result<Self, tokio_postgres::Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let client = rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok::<_, tokio_postgres::Error>(client)
        })?;
        Ok(Self { rt, client })
    }

    /// Runs one or more statements (simple protocol).
    pub fn batch(&self, sql: &str) -> Result<(), tokio_postgres::Error> {
        self.rt.block_on(self.client.batch_execute(sql))
    }

    pub fn query(&self, sql: &str) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
        self.rt.block_on(self.client.query(sql, &[]))
    }

    /// The first column of every row, as text (the query must select text).
    pub fn strings(&self, sql: &str) -> Vec<String> {
        self.query(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect()
    }

    pub fn int(&self, sql: &str) -> i64 {
        self.query(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))[0].get::<_, i64>(0)
    }
}
