//! A parser of the `k8s-pb` messages' derived `Debug` rendering into a [`Dbg`] tree.

/// A value of the `Debug` rendering.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Dbg {
    None,
    Bool(bool),
    Num(String),
    Str(String),
    List(Vec<Dbg>),
    Map(Vec<(Dbg, Dbg)>),
    Struct(String, Vec<(String, Dbg)>),
}

pub(super) struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    pub(super) fn new(text: &'a str) -> Parser<'a> {
        Parser {
            s: text.as_bytes(),
            pos: 0,
        }
    }

    fn ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.pos).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected {:?} at {}", c as char, self.pos))
        }
    }

    fn ident(&mut self) -> String {
        self.ws();
        let start = self.pos;
        while self.pos < self.s.len()
            && (self.s[self.pos].is_ascii_alphanumeric()
                || self.s[self.pos] == b'_'
                || self.s[self.pos] == b'#')
        {
            self.pos += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.pos]).into_owned()
    }

    pub(super) fn value(&mut self) -> Result<Dbg, String> {
        match self.peek() {
            Some(b'"') => self.string().map(Dbg::Str),
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek() != Some(b']') {
                    items.push(self.value()?);
                    if self.peek() == Some(b',') {
                        self.pos += 1;
                    }
                }
                self.pos += 1;
                Ok(Dbg::List(items))
            }
            Some(b'{') => {
                self.pos += 1;
                let mut entries = Vec::new();
                while self.peek() != Some(b'}') {
                    let k = self.value()?;
                    self.expect(b':')?;
                    let v = self.value()?;
                    entries.push((k, v));
                    if self.peek() == Some(b',') {
                        self.pos += 1;
                    }
                }
                self.pos += 1;
                Ok(Dbg::Map(entries))
            }
            Some(c) if c == b'-' || c.is_ascii_digit() => {
                let start = self.pos;
                while self.pos < self.s.len()
                    && matches!(
                        self.s[self.pos],
                        b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                    )
                {
                    self.pos += 1;
                }
                Ok(Dbg::Num(
                    String::from_utf8_lossy(&self.s[start..self.pos]).into_owned(),
                ))
            }
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => {
                let name = self.ident();
                match (name.as_str(), self.peek()) {
                    ("None", _) => Ok(Dbg::None),
                    ("true", _) => Ok(Dbg::Bool(true)),
                    ("false", _) => Ok(Dbg::Bool(false)),
                    (_, Some(b'(')) => {
                        self.pos += 1;
                        let inner = self.value()?;
                        self.expect(b')')?;
                        Ok(inner)
                    }
                    (_, Some(b'{')) => {
                        self.pos += 1;
                        let mut fields = Vec::new();
                        while self.peek() != Some(b'}') {
                            let field = self.ident();
                            if field.is_empty() {
                                return Err(format!("expected a field name at {}", self.pos));
                            }
                            self.expect(b':')?;
                            fields.push((field, self.value()?));
                            if self.peek() == Some(b',') {
                                self.pos += 1;
                            }
                        }
                        self.pos += 1;
                        Ok(Dbg::Struct(name, fields))
                    }
                    _ => Ok(Dbg::Struct(name, Vec::new())),
                }
            }
            other => Err(format!(
                "unexpected {:?} at {}",
                other.map(char::from),
                self.pos
            )),
        }
    }

    /// A Rust `Debug` string literal (`escape_debug` rules).
    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.pos) else {
                return Err("unterminated string".into());
            };
            self.pos += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.s.get(self.pos) else {
                        return Err("unterminated escape".into());
                    };
                    self.pos += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'0' => out.push(0),
                        b'u' => {
                            self.expect(b'{')?;
                            let start = self.pos;
                            while self.s.get(self.pos).is_some_and(|c| *c != b'}') {
                                self.pos += 1;
                            }
                            let hex = String::from_utf8_lossy(&self.s[start..self.pos]);
                            self.pos += 1;
                            let ch = u32::from_str_radix(&hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .ok_or("bad unicode escape")?;
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                other => out.push(other),
            }
        }
        String::from_utf8(out).map_err(|e| e.to_string())
    }
}
