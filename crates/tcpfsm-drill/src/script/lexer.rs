//! Tokens of the packetdrill script language, with their line and column.
//!
//! The token classes follow packetdrill's flex scanner (`gtests/net/packetdrill/lexer.l`):
//! `--option[=value]`, floats (`.1`, `0.100`), integers (`-1`, `8080`), hex integers (`0x02`),
//! words, `"strings"`, `` `commands` ``, `%{ code }%`, `...`, IPv4 addresses, and single
//! punctuation characters. `//` and `/* */` comments and white space separate tokens.
//!
//! Two extensions of the NPLab fork (which the FreeBSD tcp-testsuite needs) are handled here,
//! before the parser sees anything: `#ifdef NAME` … `#endif` (one level, no `#else`) keeps or
//! drops the lines between depending on whether NAME is defined, and a word that names a
//! definition (`-D NAME=VALUE`) is replaced by its value.

use super::ParseError;
use std::collections::BTreeMap;

/// A position in the script: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// `--name` or `--name=value` (the value is taken raw, up to white space; quotes kept out).
    Option {
        name: String,
        value: Option<String>,
    },
    Float(f64),
    Int(i64),
    Hex(i64),
    Word(String),
    Str(String),
    Backquoted(String),
    Code(String),
    Ellipsis,
    Ipv4(String),
    Punct(char),
    Eof,
}

impl Tok {
    /// How the token is named in error messages.
    pub fn describe(&self) -> String {
        match self {
            Tok::Option { name, .. } => format!("option --{name}"),
            Tok::Float(f) => format!("number {f}"),
            Tok::Int(i) => format!("number {i}"),
            Tok::Hex(i) => format!("number {i:#x}"),
            Tok::Word(w) => format!("\"{w}\""),
            Tok::Str(s) => format!("string \"{s}\""),
            Tok::Backquoted(_) => "a `command`".into(),
            Tok::Code(_) => "a %{ code }% block".into(),
            Tok::Ellipsis => "\"...\"".into(),
            Tok::Ipv4(a) => format!("address {a}"),
            Tok::Punct(c) => format!("\"{c}\""),
            Tok::Eof => "end of file".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub pos: Pos,
}

/// A pull lexer: the parser asks for tokens one at a time, so a `--define` option in the
/// script header takes effect for everything after it.
pub struct Lexer<'a> {
    src: Vec<char>,
    at: usize,
    line: u32,
    col: u32,
    file: &'a str,
    pub defines: BTreeMap<String, Option<String>>,
    /// Line of the open `#ifdef`, if any.
    open_ifdef: Option<u32>,
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl<'a> Lexer<'a> {
    pub fn new(file: &'a str, src: &str, defines: BTreeMap<String, Option<String>>) -> Lexer<'a> {
        Lexer {
            src: src.chars().collect(),
            at: 0,
            line: 1,
            col: 1,
            file,
            defines,
            open_ifdef: None,
        }
    }

    fn peek_char(&self, ahead: usize) -> Option<char> {
        self.src.get(self.at + ahead).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.src.get(self.at).copied()?;
        self.at += 1;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }

    fn err(&self, pos: Pos, msg: impl Into<String>) -> ParseError {
        ParseError::new(self.file, pos, msg)
    }

    fn starts_with(&self, s: &str) -> bool {
        s.chars()
            .enumerate()
            .all(|(i, c)| self.peek_char(i) == Some(c))
    }

    /// Skips white space and comments.
    fn skip_blank(&mut self) -> Result<(), ParseError> {
        loop {
            match self.peek_char(0) {
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                Some('/') if self.peek_char(1) == Some('/') => {
                    while let Some(c) = self.peek_char(0) {
                        if c == '\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                Some('/') if self.peek_char(1) == Some('*') => {
                    let start = self.pos();
                    self.bump();
                    self.bump();
                    loop {
                        match self.bump() {
                            None => return Err(self.err(start, "unterminated /* comment")),
                            Some('*') if self.peek_char(0) == Some('/') => {
                                self.bump();
                                break;
                            }
                            Some(_) => {}
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// Handles `#ifdef NAME` and `#endif` at the current position, if there. Returns whether
    /// it consumed a directive.
    fn directive(&mut self) -> Result<bool, ParseError> {
        let start = self.pos();
        if self.starts_with("#ifdef") && !self.peek_char(6).is_some_and(is_word_char) {
            if let Some(open) = self.open_ifdef {
                return Err(self.err(start, format!("#ifdef already seen in line {open}")));
            }
            for _ in 0..6 {
                self.bump();
            }
            while self.peek_char(0).is_some_and(|c| c.is_whitespace()) {
                self.bump();
            }
            let name_pos = self.pos();
            let mut name = String::new();
            while let Some(c) = self.peek_char(0).filter(|c| is_word_char(*c)) {
                name.push(c);
                self.bump();
            }
            if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
                return Err(self.err(name_pos, "#ifdef must be followed by a name"));
            }
            self.open_ifdef = Some(start.line);
            if !self.defines.contains_key(&name) {
                // Drop everything up to the matching #endif.
                loop {
                    if self.at >= self.src.len() {
                        return Err(
                            self.err(start, format!("unterminated #ifdef in line {}", start.line))
                        );
                    }
                    if self.starts_with("#endif") {
                        break;
                    }
                    self.bump();
                }
            }
            return Ok(true);
        }
        if self.starts_with("#endif") && !self.peek_char(6).is_some_and(is_word_char) {
            if self.open_ifdef.take().is_none() {
                return Err(self.err(start, "#endif without #ifdef"));
            }
            for _ in 0..6 {
                self.bump();
            }
            return Ok(true);
        }
        Ok(false)
    }

    fn quoted(&mut self, close: char, what: &str) -> Result<String, ParseError> {
        let start = self.pos();
        self.bump();
        let mut s = String::new();
        loop {
            match self.bump() {
                None => return Err(self.err(start, format!("unterminated {what}"))),
                Some('\\') => {
                    // Kept as written, like packetdrill; the escape only protects `close`.
                    s.push('\\');
                    match self.bump() {
                        Some(c) => s.push(c),
                        None => return Err(self.err(start, format!("unterminated {what}"))),
                    }
                }
                Some(c) if c == close => return Ok(s),
                Some(c) => s.push(c),
            }
        }
    }

    /// The raw value of `--name=value`: up to white space, or a quoted string.
    fn option_value(&mut self) -> Result<String, ParseError> {
        match self.peek_char(0) {
            Some('"') => self.quoted('"', "string"),
            _ => {
                // `--define=X="a b"`: a quoted part may hold spaces; it is kept with its quotes.
                let mut v = String::new();
                while let Some(c) = self.peek_char(0).filter(|c| !c.is_whitespace()) {
                    if c == '"' {
                        let inner = self.quoted('"', "string")?;
                        v.push('"');
                        v.push_str(&inner);
                        v.push('"');
                        continue;
                    }
                    v.push(c);
                    self.bump();
                }
                Ok(v)
            }
        }
    }

    fn digits(&self, from: usize) -> usize {
        let mut n = 0;
        while self.peek_char(from + n).is_some_and(|c| c.is_ascii_digit()) {
            n += 1;
        }
        n
    }

    /// A dotted quad `a.b.c.d` starting `from` characters ahead: its length.
    fn ipv4_len(&self, from: usize) -> Option<usize> {
        let mut at = from;
        for part in 0..4 {
            let d = self.digits(at);
            if d == 0 {
                return None;
            }
            at += d;
            if part < 3 {
                if self.peek_char(at) != Some('.') {
                    return None;
                }
                at += 1;
            }
        }
        Some(at - from)
    }

    fn take(&mut self, n: usize) -> String {
        (0..n).filter_map(|_| self.bump()).collect()
    }

    fn number(&mut self, pos: Pos) -> Result<Tok, ParseError> {
        let neg = self.peek_char(0) == Some('-');
        let sign = usize::from(neg);
        // Hex: 0x…
        if !neg
            && self.peek_char(0) == Some('0')
            && matches!(self.peek_char(1), Some('x') | Some('X'))
            && self.peek_char(2).is_some_and(|c| c.is_ascii_hexdigit())
        {
            let mut n = 2;
            while self.peek_char(n).is_some_and(|c| c.is_ascii_hexdigit()) {
                n += 1;
            }
            if !self.peek_char(n).is_some_and(is_word_char) {
                let text = self.take(n);
                return i64::from_str_radix(&text[2..], 16)
                    .map(Tok::Hex)
                    .map_err(|_| self.err(pos, format!("hex number {text} is out of range")));
            }
        }
        if !neg {
            if let Some(n) = self.ipv4_len(0) {
                return Ok(Tok::Ipv4(self.take(n)));
            }
        }
        let int_digits = self.digits(sign);
        let is_float = self.peek_char(sign + int_digits) == Some('.')
            && self.digits(sign + int_digits + 1) > 0;
        if is_float {
            let frac = self.digits(sign + int_digits + 1);
            let text = self.take(sign + int_digits + 1 + frac);
            return text
                .parse::<f64>()
                .map(Tok::Float)
                .map_err(|_| self.err(pos, format!("bad number {text}")));
        }
        let text = self.take(sign + int_digits);
        if self.peek_char(0).is_some_and(is_word_char) {
            // `123abc` is a word, as in packetdrill (its WORD rule matches longer).
            let mut w = text;
            while let Some(c) = self.peek_char(0).filter(|c| is_word_char(*c)) {
                w.push(c);
                self.bump();
            }
            return Ok(self.word(w));
        }
        text.parse::<i64>()
            .map(Tok::Int)
            .map_err(|_| self.err(pos, format!("number {text} is out of range")))
    }

    /// A word, or the value a definition gives it.
    fn word(&self, w: String) -> Tok {
        match self.defines.get(&w) {
            Some(Some(v)) => {
                if let Some(s) = v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                    Tok::Str(s.to_string())
                } else if let Some(s) = v.strip_prefix('`').and_then(|s| s.strip_suffix('`')) {
                    Tok::Backquoted(s.to_string())
                } else if let Ok(i) = v.parse::<i64>() {
                    Tok::Int(i)
                } else if let Some(i) = v
                    .strip_prefix("0x")
                    .and_then(|h| i64::from_str_radix(h, 16).ok())
                {
                    Tok::Hex(i)
                } else {
                    Tok::Word(v.clone())
                }
            }
            _ => Tok::Word(w),
        }
    }

    pub fn next_token(&mut self) -> Result<Token, ParseError> {
        loop {
            self.skip_blank()?;
            if self.peek_char(0) == Some('#') && self.directive()? {
                continue;
            }
            break;
        }
        let pos = self.pos();
        let Some(c) = self.peek_char(0) else {
            if let Some(open) = self.open_ifdef {
                return Err(self.err(pos, format!("unterminated #ifdef in line {open}")));
            }
            return Ok(Token { tok: Tok::Eof, pos });
        };
        let tok = match c {
            '-' if self.peek_char(1) == Some('-')
                && self.peek_char(2).is_some_and(is_word_char) =>
            {
                self.bump();
                self.bump();
                let mut name = String::new();
                while let Some(c) = self.peek_char(0).filter(|c| is_word_char(*c)) {
                    name.push(c);
                    self.bump();
                }
                let value = if self.peek_char(0) == Some('=') {
                    self.bump();
                    Some(self.option_value()?)
                } else {
                    None
                };
                Tok::Option { name, value }
            }
            '-' if self.peek_char(1).is_some_and(|c| c.is_ascii_digit())
                || (self.peek_char(1) == Some('.')
                    && self.peek_char(2).is_some_and(|c| c.is_ascii_digit())) =>
            {
                self.number(pos)?
            }
            '.' if self.peek_char(1) == Some('.') && self.peek_char(2) == Some('.') => {
                self.take(3);
                Tok::Ellipsis
            }
            '.' if self.peek_char(1).is_some_and(|c| c.is_ascii_digit()) => self.number(pos)?,
            c if c.is_ascii_digit() => self.number(pos)?,
            c if is_word_char(c) => {
                let mut w = String::new();
                while let Some(c) = self.peek_char(0).filter(|c| is_word_char(*c)) {
                    w.push(c);
                    self.bump();
                }
                self.word(w)
            }
            '"' => Tok::Str(self.quoted('"', "string")?),
            '`' => Tok::Backquoted(self.quoted('`', "`command`")?),
            '%' if self.peek_char(1) == Some('{') => {
                self.bump();
                self.bump();
                let mut code = String::new();
                loop {
                    if self.at >= self.src.len() {
                        return Err(self.err(pos, "unterminated %{ code }% block"));
                    }
                    if self.starts_with("}%") {
                        self.bump();
                        self.bump();
                        break;
                    }
                    code.extend(self.bump());
                }
                Tok::Code(code.trim().to_string())
            }
            c => {
                self.bump();
                Tok::Punct(c)
            }
        };
        Ok(Token { tok, pos })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex(src: &str) -> Result<Vec<Tok>, ParseError> {
        let mut defines = BTreeMap::new();
        defines.insert("Linux".to_string(), None);
        defines.insert("PORT".to_string(), Some("8081".to_string()));
        let mut l = Lexer::new("t.pkt", src, defines);
        let mut v = Vec::new();
        loop {
            let t = l.next_token()?;
            if t.tok == Tok::Eof {
                return Ok(v);
            }
            v.push(t.tok);
        }
    }

    #[test]
    fn times_ellipsis_and_sequence_ranges_split_like_packetdrill() {
        assert_eq!(
            lex("+.01...0.011 1:1001(1000)").unwrap(),
            vec![
                Tok::Punct('+'),
                Tok::Float(0.01),
                Tok::Ellipsis,
                Tok::Float(0.011),
                Tok::Int(1),
                Tok::Punct(':'),
                Tok::Int(1001),
                Tok::Punct('('),
                Tok::Int(1000),
                Tok::Punct(')'),
            ]
        );
        assert_eq!(
            lex("+0...0.1").unwrap(),
            vec![Tok::Punct('+'), Tok::Int(0), Tok::Ellipsis, Tok::Float(0.1)]
        );
    }

    #[test]
    fn numbers_words_strings_and_addresses() {
        assert_eq!(
            lex("-1 0x02 123abc \"a\\\"b\" `sysctl -q x=1` 192.0.2.1 %{ x }%").unwrap(),
            vec![
                Tok::Int(-1),
                Tok::Hex(2),
                Tok::Word("123abc".into()),
                Tok::Str("a\\\"b".into()),
                Tok::Backquoted("sysctl -q x=1".into()),
                Tok::Ipv4("192.0.2.1".into()),
                Tok::Code("x".into()),
            ]
        );
    }

    #[test]
    fn options_take_raw_values() {
        assert_eq!(
            lex("--ip_version=ipv6 --local_ip=fd3d::1 --define=X=\"a b\" --verbose").unwrap(),
            vec![
                Tok::Option {
                    name: "ip_version".into(),
                    value: Some("ipv6".into())
                },
                Tok::Option {
                    name: "local_ip".into(),
                    value: Some("fd3d::1".into())
                },
                Tok::Option {
                    name: "define".into(),
                    value: Some("X=\"a b\"".into())
                },
                Tok::Option {
                    name: "verbose".into(),
                    value: None
                },
            ]
        );
    }

    #[test]
    fn comments_are_blank() {
        assert_eq!(
            lex("a // b\n/* c\n d */ e").unwrap(),
            vec![Tok::Word("a".into()), Tok::Word("e".into())]
        );
    }

    #[test]
    fn ifdef_keeps_defined_and_drops_undefined_blocks() {
        assert_eq!(
            lex("a\n#ifdef Linux\nb\n#endif\n#ifdef FreeBSD\nc `x`\n#endif\nd").unwrap(),
            vec![
                Tok::Word("a".into()),
                Tok::Word("b".into()),
                Tok::Word("d".into())
            ]
        );
    }

    #[test]
    fn definitions_replace_words() {
        assert_eq!(lex("PORT").unwrap(), vec![Tok::Int(8081)]);
    }

    fn err(src: &str) -> String {
        lex(src).unwrap_err().to_string()
    }

    #[test]
    fn lexer_errors_name_line_and_column() {
        assert_eq!(err("a\n  \"abc"), "t.pkt:2:3: unterminated string");
        assert_eq!(err("`ls"), "t.pkt:1:1: unterminated `command`");
        assert_eq!(err("x /* y"), "t.pkt:1:3: unterminated /* comment");
        assert_eq!(err("%{ y"), "t.pkt:1:1: unterminated %{ code }% block");
        assert_eq!(
            err("#ifdef Linux\n#ifdef Linux\n"),
            "t.pkt:2:1: #ifdef already seen in line 1"
        );
        assert_eq!(
            err("#ifdef 9\n"),
            "t.pkt:1:8: #ifdef must be followed by a name"
        );
        assert_eq!(err("\n#endif"), "t.pkt:2:1: #endif without #ifdef");
        assert_eq!(
            err("#ifdef Nope\nx"),
            "t.pkt:1:1: unterminated #ifdef in line 1"
        );
        assert_eq!(
            err("#ifdef Linux\nx"),
            "t.pkt:2:2: unterminated #ifdef in line 1"
        );
        assert_eq!(
            err("99999999999999999999"),
            "t.pkt:1:1: number 99999999999999999999 is out of range"
        );
    }
}
