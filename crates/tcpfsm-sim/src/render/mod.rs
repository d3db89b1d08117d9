//! Renderers of a [`Trace`]: ASCII sequence diagram, JSON lines, SVG.

mod ascii;
mod band;
mod json;
mod layout;
mod rows;
mod svg;
mod svg_text;

pub use ascii::{ascii, ascii_layout};
pub use json::{json, json_event, JsonSink};
pub use layout::{DiagramSink, Layout, LayoutBuilder, MAX_ROWS};
pub use svg::{phase_colour, svg, svg_layout};

/// Display options shared by the ASCII and SVG renderers (JSON always has everything).
#[derive(Debug, Clone)]
pub struct Options {
    /// Show sequence numbers relative to each direction's ISN, as Wireshark does.
    pub relative_seq: bool,
    /// Collapse the middle iterations of `repeat` blocks longer than this many iterations,
    /// and runs of like segments longer than this many segments.
    pub collapse_after: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            relative_seq: true,
            collapse_after: 3,
        }
    }
}
