//! The SVG sequence diagrams' geometry, read back from every built-in's picture: arrows slope
//! down with transit time (so segments in flight at once cross, as in RFC 9293's figures), and
//! no text label lies on a marker (a state's box other than its own name, an application
//! call's dot, a lost segment's cross, an arrowhead).

use tcpfsm_sim::render::{self, Options};
use tcpfsm_sim::{builtins, run_builtin};

#[derive(Debug, Clone, Copy)]
struct Rect {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

impl Rect {
    fn overlaps(&self, o: &Rect) -> bool {
        self.x < o.x + o.w && o.x < self.x + self.w && self.y < o.y + o.h && o.y < self.y + self.h
    }
}

struct Picture {
    /// (class, text, declared box)
    texts: Vec<(String, String, Rect)>,
    /// (what, box)
    markers: Vec<(String, Rect)>,
    /// Segment arrows between two lanes: (x1, y1, x2, y2).
    arrows: Vec<(f64, f64, f64, f64)>,
}

fn num(n: roxmltree::Node, a: &str) -> f64 {
    n.attribute(a)
        .unwrap_or_else(|| panic!("{a} missing"))
        .parse()
        .unwrap()
}

fn read(svg: &str) -> Picture {
    let doc = roxmltree::Document::parse(svg).expect("well-formed SVG");
    let mut p = Picture {
        texts: vec![],
        markers: vec![],
        arrows: vec![],
    };
    for t in doc.descendants().filter(|n| n.has_tag_name("text")) {
        let b: Vec<f64> = t
            .attribute("data-box")
            .unwrap()
            .split(' ')
            .map(|v| v.parse().unwrap())
            .collect();
        let text: String = t.children().filter_map(|c| c.text()).collect();
        let class = t.attribute("class").unwrap_or("").to_string();
        p.texts.push((
            class,
            text,
            Rect {
                x: b[0],
                y: b[1],
                w: b[2],
                h: b[3],
            },
        ));
    }
    for g in doc.descendants().filter(|n| n.has_tag_name("g")) {
        let class = g.attribute("class").unwrap_or("");
        for c in g.children().filter(|c| c.is_element()) {
            match (class, c.tag_name().name()) {
                ("state", "rect") => p.markers.push((
                    format!("state box {}", g.attribute("data-state").unwrap_or("")),
                    Rect {
                        x: num(c, "x"),
                        y: num(c, "y"),
                        w: num(c, "width"),
                        h: num(c, "height"),
                    },
                )),
                ("app", "circle") => {
                    let r = num(c, "r");
                    p.markers.push((
                        "application dot".into(),
                        Rect {
                            x: num(c, "cx") - r,
                            y: num(c, "cy") - r,
                            w: 2.0 * r,
                            h: 2.0 * r,
                        },
                    ));
                }
                ("lost", "path") => {
                    // "M x y l8 8 M x+8 y l-8 8": the cross is the 8×8 square at (x, y).
                    let d = c.attribute("d").unwrap();
                    let v: Vec<f64> = d
                        .trim_start_matches('M')
                        .split_whitespace()
                        .take(2)
                        .map(|s| s.parse().unwrap())
                        .collect();
                    p.markers.push((
                        "lost segment's cross".into(),
                        Rect {
                            x: v[0],
                            y: v[1],
                            w: 8.0,
                            h: 8.0,
                        },
                    ));
                }
                ("segment", "line") => {
                    let (x1, y1, x2, y2) = (num(c, "x1"), num(c, "y1"), num(c, "x2"), num(c, "y2"));
                    p.arrows.push((x1, y1, x2, y2));
                    // The arrowhead (8 wide, 7 high, ending at the line's end).
                    let back = if x2 > x1 { -8.0 } else { 0.0 };
                    p.markers.push((
                        "arrowhead".into(),
                        Rect {
                            x: x2 + back,
                            y: y2 - 3.5,
                            w: 8.0,
                            h: 7.0,
                        },
                    ));
                }
                _ => {}
            }
        }
    }
    p
}

fn svg_of(name: &str) -> String {
    let out = run_builtin(name, Some(1)).unwrap().unwrap();
    render::svg(&out.trace, &Options::default())
}

#[test]
fn every_arrow_slopes_down_with_its_transit_time() {
    for b in builtins() {
        let p = read(&svg_of(b.name));
        assert!(!p.arrows.is_empty(), "{}: no arrows", b.name);
        for (x1, y1, x2, y2) in &p.arrows {
            // Every built-in's links have a delay: arrival is later, so lower, than sending.
            assert!(
                y2 > y1,
                "{}: arrow ({x1},{y1})→({x2},{y2}) does not slope down",
                b.name
            );
        }
    }
}

#[test]
fn simultaneous_open_draws_the_crossing_syns_as_an_x_like_rfc_9293_figure_8() {
    let p = read(&svg_of("simultaneous-open"));
    let cross = |a: (f64, f64, f64, f64), b: (f64, f64, f64, f64)| {
        // b's height minus a's, where each is evaluated at the x of a's ends: a sign change
        // means the lines cross between the lanes.
        let at = |l: (f64, f64, f64, f64), x: f64| l.1 + (l.3 - l.1) * (x - l.0) / (l.2 - l.0);
        let (lo, hi) = (a.0.min(a.2) + 2.0, a.0.max(a.2) - 2.0);
        (at(a, lo) - at(b, lo)).signum() != (at(a, hi) - at(b, hi)).signum()
    };
    // Lines 2–4: the two SYNs, in flight at once, cross; lines 5–7: so do the SYN-ACKs.
    assert!(p.arrows.len() >= 4, "{:?}", p.arrows);
    assert!(p.arrows[0].0 != p.arrows[1].0, "opposite directions");
    assert!(
        cross(p.arrows[0], p.arrows[1]),
        "SYNs: {:?}",
        &p.arrows[..2]
    );
    assert!(
        cross(p.arrows[2], p.arrows[3]),
        "SYN-ACKs: {:?}",
        &p.arrows[2..4]
    );
    // A handshake's segments never cross: each waits for the one before.
    let h = read(&svg_of("handshake"));
    for w in h.arrows.windows(2) {
        assert!(!cross(w[0], w[1]), "handshake arrows cross: {w:?}");
    }
}

#[test]
fn no_label_lies_on_a_marker_in_any_builtin() {
    for b in builtins() {
        let p = read(&svg_of(b.name));
        for (class, text, t) in &p.texts {
            for (what, m) in &p.markers {
                // A state's name ("SYN_SENT", or "SYN_SENT:50862" where a host has several
                // connections) is written inside its own box, by design.
                let state = text.split(':').next().unwrap_or("");
                let (cx, cy) = (t.x + t.w / 2.0, t.y + t.h / 2.0);
                let inside = m.x <= cx && cx <= m.x + m.w && m.y <= cy && cy <= m.y + m.h;
                if class == "state-name" && what == &format!("state box {state}") && inside {
                    continue;
                }
                assert!(
                    !t.overlaps(m),
                    "{}: {class} text {text:?} {t:?} lies on the {what} {m:?}",
                    b.name
                );
            }
        }
    }
}
