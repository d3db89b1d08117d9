//! Text geometry for the SVG diagram: how wide a string is in the monospace font, the box it
//! occupies, wrapping and truncating to a width. The diagram places every label from these
//! boxes and writes each one (`data-box`) so the rendering test can hold the picture to them.

/// Font size of all text, px.
pub const FONT: f64 = 12.0;
/// Advance of one character of DejaVu Sans Mono (0.602 em) at [`FONT`], rounded up.
pub const CHAR_W: f64 = 7.25;
/// Box above the baseline (DejaVu's ascender, 0.93 em) and below it (descender, 0.24 em).
pub const ASCENT: f64 = 11.5;
pub const DESCENT: f64 = 3.5;

/// An axis-aligned rectangle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

impl Rect {
    pub fn overlaps(&self, o: &Rect) -> bool {
        self.x < o.x + o.w && o.x < self.x + self.w && self.y < o.y + o.h && o.y < self.y + self.h
    }
}

/// Width of `s` in px.
pub fn width(s: &str) -> f64 {
    s.chars().count() as f64 * CHAR_W
}

/// How many characters fit in `px`.
pub fn fits(px: f64) -> usize {
    if px <= 0.0 {
        0
    } else {
        (px / CHAR_W).floor() as usize
    }
}

/// `s` cut to `max` characters with a trailing `…`, or as is.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut t: String = s.chars().take(max - 1).collect();
    t.push('…');
    t
}

/// Word-wraps `text` to lines of at most `max` characters (a longer word is cut).
pub fn wrap(text: &str, max: usize) -> Vec<String> {
    let max = max.max(8);
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        let word = truncate(word, max);
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > max {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(&word);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

/// Where a text is anchored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    Start,
    Middle,
    End,
}

impl Anchor {
    pub fn name(self) -> &'static str {
        match self {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        }
    }
}

/// The box of `s` drawn at (`x`, baseline `y`) with `anchor`.
pub fn text_box(s: &str, x: f64, y: f64, anchor: Anchor) -> Rect {
    let w = width(s);
    let left = match anchor {
        Anchor::Start => x,
        Anchor::Middle => x - w / 2.0,
        Anchor::End => x - w,
    };
    Rect {
        x: left,
        y: y - ASCENT,
        w,
        h: ASCENT + DESCENT,
    }
}

/// XML-escapes text and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_keeps_every_line_within_the_width() {
        let text = "CLOSE_WAIT leak: warning — 3 CLOSE_WAIT and rising at every sample. \
                    averyveryveryveryveryveryveryverylongwordwithoutspaces end";
        for max in [8, 20, 40, 77] {
            let lines = wrap(text, max);
            assert!(
                lines.iter().all(|l| l.chars().count() <= max),
                "{max}: {lines:?}"
            );
            assert!(lines.len() > 1);
        }
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }

    #[test]
    fn boxes_follow_the_anchor() {
        let b = text_box("abcd", 100.0, 50.0, Anchor::End);
        assert_eq!((b.x, b.x + b.w), (100.0 - 4.0 * CHAR_W, 100.0));
        let m = text_box("abcd", 100.0, 50.0, Anchor::Middle);
        assert!((m.x + m.w / 2.0 - 100.0).abs() < 1e-9);
        assert!(b.overlaps(&m) && !b.overlaps(&text_box("x", 200.0, 50.0, Anchor::Start)));
    }
}
