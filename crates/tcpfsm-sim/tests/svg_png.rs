//! Every built-in scenario's SVG, rendered to pixels with resvg, holds up: nothing is drawn
//! outside the declared canvas, every text lies inside the box the layout gave it (measured
//! with the real font), and no two text boxes overlap. `TCPFSM_PNG_DIR=dir` keeps the PNGs
//! for looking at.

use std::sync::Arc;

use resvg::{tiny_skia, usvg};
use tcpfsm_sim::render::{self, Options};
use tcpfsm_sim::{builtins, run_builtin};

#[derive(Debug, Clone, Copy)]
struct Box2 {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

impl Box2 {
    fn overlaps(&self, o: &Box2) -> bool {
        self.x < o.x + o.w && o.x < self.x + self.w && self.y < o.y + o.h && o.y < self.y + self.h
    }
    fn contains(&self, o: &Box2, slack: f64) -> bool {
        o.x >= self.x - slack
            && o.y >= self.y - slack
            && o.x + o.w <= self.x + self.w + slack
            && o.y + o.h <= self.y + self.h + slack
    }
}

fn fonts() -> Arc<usvg::fontdb::Database> {
    let mut db = usvg::fontdb::Database::new();
    db.load_system_fonts();
    let mono = db.faces().any(|f| {
        f.families
            .iter()
            .any(|(name, _)| name == "DejaVu Sans Mono")
    });
    assert!(
        mono,
        "DejaVu Sans Mono is not installed (Debian: fonts-dejavu-core; .ci/run installs it)"
    );
    Arc::new(db)
}

/// The `data-box` of every text, by id, and the canvas size.
fn declared(svg: &str) -> (f64, f64, Vec<(String, String, Box2)>) {
    let doc = roxmltree::Document::parse(svg).expect("well-formed SVG");
    let root = doc.root_element();
    let num = |n: roxmltree::Node, a: &str| -> f64 { n.attribute(a).unwrap().parse().unwrap() };
    let (w, h) = (num(root, "width"), num(root, "height"));
    let mut boxes = Vec::new();
    for t in root.descendants().filter(|n| n.has_tag_name("text")) {
        let id = t.attribute("id").expect("every text has an id").to_string();
        let b: Vec<f64> = t
            .attribute("data-box")
            .expect("every text has its box")
            .split(' ')
            .map(|v| v.parse().unwrap())
            .collect();
        let text: String = t
            .children()
            .filter(|c| c.is_text())
            .filter_map(|c| c.text())
            .collect();
        boxes.push((
            id,
            text,
            Box2 {
                x: b[0],
                y: b[1],
                w: b[2],
                h: b[3],
            },
        ));
    }
    (w, h, boxes)
}

fn text_nodes(g: &usvg::Group, out: &mut Vec<(String, Box2)>) {
    for n in g.children() {
        match n {
            usvg::Node::Group(c) => text_nodes(c, out),
            usvg::Node::Text(t) => {
                let r = t.abs_bounding_box();
                out.push((
                    t.id().to_string(),
                    Box2 {
                        x: f64::from(r.x()),
                        y: f64::from(r.y()),
                        w: f64::from(r.width()),
                        h: f64::from(r.height()),
                    },
                ));
            }
            _ => {}
        }
    }
}

/// Checks one SVG; returns the rendered picture.
fn check(name: &str, svg: &str, db: &Arc<usvg::fontdb::Database>) -> tiny_skia::Pixmap {
    let (w, h, boxes) = declared(svg);
    let canvas = Box2 {
        x: 0.0,
        y: 0.0,
        w,
        h,
    };
    for (id, text, b) in &boxes {
        assert!(
            canvas.contains(b, 0.0),
            "{name}: {id} {text:?} {b:?} is outside {w}×{h}"
        );
    }
    // No two text boxes overlap (sorted by top, compared while they can still meet).
    let mut by_y: Vec<&(String, String, Box2)> = boxes.iter().collect();
    by_y.sort_by(|a, b| a.2.y.total_cmp(&b.2.y));
    for (i, (ia, ta, a)) in by_y.iter().enumerate() {
        for (ib, tb, b) in by_y[i + 1..].iter().take_while(|(_, _, b)| b.y < a.y + a.h) {
            assert!(
                !a.overlaps(b),
                "{name}: text boxes overlap: {ia} {ta:?} {a:?} and {ib} {tb:?} {b:?}"
            );
        }
    }
    // The real font's layout of each text stays in the box the layout declared.
    let opts = usvg::Options {
        fontdb: db.clone(),
        ..usvg::Options::default()
    };
    let tree = usvg::Tree::from_str(svg, &opts).expect("usvg parses the SVG");
    let mut real = Vec::new();
    text_nodes(tree.root(), &mut real);
    assert_eq!(real.len(), boxes.len(), "{name}: every text is laid out");
    for (id, r) in &real {
        let (_, text, b) = boxes.iter().find(|(i, _, _)| i == id).expect("same ids");
        assert!(
            b.contains(r, 0.5),
            "{name}: {id} {text:?} is drawn at {r:?}, outside its box {b:?}"
        );
    }
    // Render onto a larger pixmap: nothing may land beyond the declared canvas.
    let (pw, ph) = (w.ceil() as u32 + 64, h.ceil() as u32 + 64);
    let mut pix = tiny_skia::Pixmap::new(pw, ph).unwrap();
    resvg::render(&tree, tiny_skia::Transform::identity(), &mut pix.as_mut());
    let data = pix.data();
    for y in 0..ph {
        for x in 0..pw {
            if f64::from(x) >= w.ceil() || f64::from(y) >= h.ceil() {
                let a = data[((y * pw + x) * 4 + 3) as usize];
                assert_eq!(
                    a, 0,
                    "{name}: a pixel is drawn at ({x}, {y}), outside {w}×{h}"
                );
            }
        }
    }
    pix
}

#[test]
fn every_builtin_svg_renders_inside_its_canvas_with_no_overlapping_text() {
    let db = fonts();
    let keep = std::env::var_os("TCPFSM_PNG_DIR").map(std::path::PathBuf::from);
    for b in builtins() {
        let out = run_builtin(b.name, Some(1)).unwrap().unwrap();
        let svg = render::svg(&out.trace, &Options::default());
        let pix = check(b.name, &svg, &db);
        if let Some(dir) = &keep {
            std::fs::create_dir_all(dir).unwrap();
            pix.save_png(dir.join(format!("{}.png", b.name))).unwrap();
        }
    }
}

#[test]
fn a_lossy_run_and_its_full_svg_hold_up_too() {
    let db = fonts();
    let src = "host a 10.0.0.1\nhost b 10.0.0.2\n\
               link a <-> b delay 20ms jitter 5ms loss 10% dup 5% reorder 5% corrupt 2%\n\
               b listen 80 as l\na connect b:80 as c\nb accept l as s\n\
               a send c 40000 bytes\nb recv s 40000 timeout 5m\na close c\n\
               b recv-until-eof s timeout 5m\nb close s\nwait until c CLOSED and s CLOSED\n";
    let out = tcpfsm_sim::run_source("lossy.tcpfsm", src, Some(7)).unwrap();
    for full in [false, true] {
        let opts = Options {
            collapse_after: if full { usize::MAX / 2 } else { 3 },
            ..Options::default()
        };
        let svg = render::svg(&out.trace, &opts);
        check(if full { "lossy --full" } else { "lossy" }, &svg, &db);
    }
}
