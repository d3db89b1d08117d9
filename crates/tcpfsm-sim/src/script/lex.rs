//! Splitting a script line into words and quoted strings, and a cursor over them.

#[derive(Debug, Clone)]
pub(super) struct Tok {
    pub(super) text: String,
    pub(super) quoted: bool,
}

pub(super) fn tokenize(line: &str) -> Result<Vec<Tok>, String> {
    let mut toks = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '#' {
            break;
        } else if c == '"' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    None => return Err("unterminated string (missing closing \")".into()),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some('n') => s.push('\n'),
                        Some('r') => s.push('\r'),
                        Some('t') => s.push('\t'),
                        Some('\\') => s.push('\\'),
                        Some('"') => s.push('"'),
                        Some(o) => return Err(format!("unknown escape \\{o} in string")),
                        None => return Err("unterminated string (missing closing \")".into()),
                    },
                    Some(o) => s.push(o),
                }
            }
            toks.push(Tok {
                text: s,
                quoted: true,
            });
        } else {
            let mut s = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '"' || c == '#' {
                    break;
                }
                s.push(c);
                chars.next();
            }
            toks.push(Tok {
                text: s,
                quoted: false,
            });
        }
    }
    Ok(toks)
}

/// A cursor over one line's tokens.
pub(super) struct Line<'t> {
    pub(super) toks: &'t [Tok],
    pub(super) pos: usize,
}

impl<'t> Line<'t> {
    pub(super) fn peek(&self) -> Option<&'t str> {
        self.toks.get(self.pos).map(|t| t.text.as_str())
    }
    pub(super) fn next(&mut self, what: &str) -> Result<&'t Tok, String> {
        let t = self
            .toks
            .get(self.pos)
            .ok_or_else(|| format!("missing {what}"))?;
        self.pos += 1;
        Ok(t)
    }
    pub(super) fn word(&mut self, what: &str) -> Result<&'t str, String> {
        let t = self.next(what)?;
        if t.quoted {
            return Err(format!("expected {what}, found a quoted string"));
        }
        Ok(&t.text)
    }
    pub(super) fn eat(&mut self, word: &str) -> bool {
        if self.peek() == Some(word) && !self.toks[self.pos].quoted {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    pub(super) fn expect(&mut self, word: &str) -> Result<(), String> {
        match self.toks.get(self.pos) {
            Some(t) if t.text == word && !t.quoted => {
                self.pos += 1;
                Ok(())
            }
            Some(t) => Err(format!("expected {word:?}, found {:?}", t.text)),
            None => Err(format!("expected {word:?} at end of line")),
        }
    }
    pub(super) fn end(&self) -> Result<(), String> {
        match self.toks.get(self.pos) {
            None => Ok(()),
            Some(t) => Err(format!("unexpected {:?} at end of line", t.text)),
        }
    }
}
