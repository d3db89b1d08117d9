//! The eleven states with their counts, drawn three ways by the room there is: the texts'
//! state diagram with boxes and arrows ([`Diagram`]), the same layout as a grid of one-line
//! cells ([`StateGrid`], for an 80×24 terminal), or a plain list (anything smaller).

use super::{level_color, phase_color};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Widget};
use tcpfsm_observe::Level;
use tcpfsm_states::{Census, State};

/// Box geometry of the diagram (laid out like the texts' state diagram: setup on top,
/// ESTABLISHED in the middle, the active closer's track on the left, the passive closer's on
/// the right, CLOSING between them).
const BOX_W: u16 = 16;
const BOX_H: u16 = 3;
const COL: [u16; 3] = [0, 22, 44];
/// Room the boxed diagram needs (inside its panel's borders).
pub const DIAGRAM_W: u16 = 60;
pub const DIAGRAM_H: u16 = 24;
/// Rows of the grid: the diagram's rows without the arrows between them.
pub const GRID_ROWS: u16 = 6;
/// Narrowest grid cell: the longest state name (12), a space, and an 8-digit count.
const GRID_CELL_MIN: u16 = 21;

/// Column (0 = active closer / server side, 1 = middle, 2 = passive closer / client side) and
/// row (0..6) of each state in the diagram.
fn cell(s: State) -> (u16, u16) {
    match s {
        State::Closed => (1, 0),
        State::Listen => (0, 1),
        State::SynSent => (2, 1),
        State::SynReceived => (0, 2),
        State::Established => (1, 2),
        State::FinWait1 => (0, 3),
        State::CloseWait => (2, 3),
        State::FinWait2 => (0, 4),
        State::Closing => (1, 4),
        State::LastAck => (2, 4),
        State::TimeWait => (0, 5),
    }
}

/// The colour of a state's box: its verdict's when a rule about it is not OK, else its phase's.
fn state_color(s: State, hot: &[(State, Level)]) -> Color {
    hot.iter()
        .filter(|(h, _)| *h == s)
        .map(|(_, l)| level_color(*l))
        .next_back()
        .unwrap_or_else(|| phase_color(s.phase()))
}

fn count_style(n: u64, color: Color) -> Style {
    if n > 0 {
        Style::default().fg(color).add_modifier(Modifier::BOLD)
    } else {
        Style::default().fg(Color::DarkGray)
    }
}

/// The boxed state diagram with counts; needs [`DIAGRAM_W`]×[`DIAGRAM_H`].
pub struct Diagram<'a> {
    pub census: &'a Census,
    /// States that a non-OK verdict is about, drawn with the verdict's colour.
    pub hot: &'a [(State, Level)],
}

impl Widget for Diagram<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.width < DIAGRAM_W || area.height < DIAGRAM_H {
            return StateGrid {
                census: self.census,
                hot: self.hot,
            }
            .render(area, buf);
        }
        let ox = area.x + (area.width - DIAGRAM_W) / 2;
        let oy = area.y;
        let put = |buf: &mut Buffer, x: u16, y: u16, s: &str| {
            buf.set_string(ox + x, oy + y, s, Style::default().fg(Color::DarkGray));
        };
        let center = |c: usize| COL[c] + BOX_W / 2;
        // CLOSED -> LISTEN (passive open) / SYN_SENT (active open)
        hline(buf, ox + center(0), ox + center(2), oy + 3);
        put(buf, center(0), 3, "▼");
        put(buf, center(1), 3, "┴");
        put(buf, center(2), 3, "▼");
        // LISTEN -> SYN_RECEIVED
        put(buf, center(0), 7, "▼");
        // SYN_SENT -> ESTABLISHED (rcv SYN+ACK)
        put(buf, center(2), 7, "│");
        put(buf, center(2), 8, "│");
        put(buf, center(2), 9, "┘");
        hline(buf, ox + COL[1] + BOX_W, ox + center(2) - 1, oy + 9);
        put(buf, COL[1] + BOX_W, 9, "◀");
        // SYN_RECEIVED -> ESTABLISHED (rcv ACK)
        hline(buf, ox + BOX_W, ox + COL[1] - 1, oy + 9);
        put(buf, COL[1] - 1, 9, "▶");
        // ESTABLISHED -> FIN_WAIT_1 (close) / CLOSE_WAIT (rcv FIN)
        hline(buf, ox + center(0), ox + center(2), oy + 11);
        put(buf, center(0), 11, "▼");
        put(buf, center(1), 11, "┴");
        put(buf, center(2), 11, "▼");
        // FIN_WAIT_1 -> FIN_WAIT_2 / CLOSING ; CLOSE_WAIT -> LAST_ACK
        put(buf, center(0), 15, "▼");
        hline(buf, ox + BOX_W, ox + center(1), oy + 13);
        put(buf, center(1), 13, "┐");
        put(buf, center(1), 14, "│");
        put(buf, center(1), 15, "▼");
        put(buf, center(2), 15, "▼");
        // FIN_WAIT_2 -> TIME_WAIT ; CLOSING -> TIME_WAIT ; LAST_ACK -> CLOSED
        put(buf, center(0), 19, "▼");
        put(buf, center(1), 19, "│");
        put(buf, center(1), 20, "│");
        put(buf, center(1), 21, "┘");
        hline(buf, ox + BOX_W, ox + center(1) - 1, oy + 21);
        put(buf, BOX_W, 21, "◀");
        put(buf, center(2), 19, "▼");
        put(buf, COL[2] + 3, 20, "CLOSED (ACK)");
        put(buf, center(0), 23, "▼");
        put(buf, center(0) + 2, 23, "CLOSED after 2MSL");

        for (s, n) in self.census.iter() {
            let (c, row) = cell(s);
            let color = state_color(s, self.hot);
            let r = Rect::new(ox + COL[c as usize], oy + row * 4, BOX_W, BOX_H);
            Paragraph::new(Line::styled(n.to_string(), count_style(n, color)).centered())
                .block(
                    Block::default()
                        .borders(Borders::ALL)
                        .border_style(Style::default().fg(color))
                        .title(Line::styled(s.name(), Style::default().fg(color))),
                )
                .render(r, buf);
        }
    }
}

fn hline(buf: &mut Buffer, x0: u16, x1: u16, y: u16) {
    for x in x0..=x1 {
        buf.set_string(x, y, "─", Style::default().fg(Color::DarkGray));
    }
}

/// The diagram's layout without boxes or arrows: three columns, six rows, one `NAME  count`
/// cell per state. Falls back to a list when three cells do not fit side by side.
pub struct StateGrid<'a> {
    pub census: &'a Census,
    pub hot: &'a [(State, Level)],
}

impl Widget for StateGrid<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let cell_w = area.width / 3;
        if cell_w < GRID_CELL_MIN || area.height < GRID_ROWS {
            return StateList {
                census: self.census,
                hot: self.hot,
            }
            .render(area, buf);
        }
        // Centre the grid's rows in the area.
        let oy = area.y + (area.height - GRID_ROWS) / 2;
        for (s, n) in self.census.iter() {
            let (c, row) = cell(s);
            let color = state_color(s, self.hot);
            // `NAME` padded to 13 and an 8-digit count: 21 columns, centred in the cell; a
            // longer count widens the cell's text rather than losing digits.
            let count = format!("{n:>8}");
            let line = Line::from(vec![
                Span::styled(format!("{:<13}", s.name()), Style::default().fg(color)),
                Span::styled(count, count_style(n, color)),
            ]);
            let pad = cell_w.saturating_sub(line.width() as u16) / 2;
            buf.set_line(area.x + c * cell_w + pad, oy + row, &line, cell_w - pad);
        }
    }
}

/// One `NAME count` line per state, in the RFC's order.
struct StateList<'a> {
    census: &'a Census,
    hot: &'a [(State, Level)],
}

impl Widget for StateList<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let rows: Vec<Line> = self
            .census
            .iter()
            .map(|(s, n)| {
                let color = state_color(s, self.hot);
                Line::from(vec![
                    Span::styled(format!("{:<13}", s.name()), Style::default().fg(color)),
                    Span::styled(format!("{n:>8}"), count_style(n, color)),
                ])
            })
            .collect();
        Paragraph::new(rows).render(area, buf);
    }
}
