//! The `watch` view: the eleven-state diagram with live counts, counts over time, top
//! CLOSE_WAIT owners and active alerts, drawn with ratatui.
//!
//! Drawing is separate from sampling and from the terminal: [`View`] holds what one frame
//! shows, [`draw`] paints it into any ratatui frame, and [`render_text`] paints it into an
//! in-memory buffer so the view can be printed without a TTY (`--once`, tests).

mod diagram;
mod panels;

pub use diagram::{Diagram, StateGrid, DIAGRAM_H, DIAGRAM_W, GRID_ROWS};
pub use panels::wrap;

use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::{Frame, Terminal};
use std::collections::VecDeque;
use tcpfsm_observe::{Level, ProcessCount, Snapshot, Verdict};
use tcpfsm_states::{Census, Phase, State};

/// Samples of history kept for the sparklines.
pub const HISTORY: usize = 240;

/// What one frame shows.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub host: String,
    pub clock: String,
    pub interval_text: String,
    /// Oldest first; the last one is "now".
    pub history: VecDeque<Census>,
    pub close_wait_top: Vec<ProcessCount>,
    pub close_wait_no_owner: u64,
    pub verdicts: Vec<Verdict>,
    pub error: Option<String>,
}

impl View {
    /// Adds a snapshot: its census joins the history, its CLOSE_WAIT owners replace the old.
    pub fn push(&mut self, snap: &Snapshot, verdicts: Vec<Verdict>) {
        self.history.push_back(snap.census);
        while self.history.len() > HISTORY {
            self.history.pop_front();
        }
        match &snap.close_wait_by_process {
            Some(b) => {
                let mut ps = b.processes.clone();
                ps.sort_by(|a, b| b.count.cmp(&a.count).then(a.pid.cmp(&b.pid)));
                self.close_wait_top = ps;
                self.close_wait_no_owner = b.no_owner;
            }
            None => {
                self.close_wait_top.clear();
                self.close_wait_no_owner = 0;
            }
        }
        self.verdicts = verdicts;
        self.error = None;
    }

    pub fn current(&self) -> Census {
        self.history.back().copied().unwrap_or_default()
    }
}

pub(crate) fn phase_color(p: Phase) -> Color {
    match p {
        Phase::Baseline => Color::Gray,
        Phase::Establishment => Color::Cyan,
        Phase::Transfer => Color::Green,
        Phase::ActiveClose => Color::Yellow,
        Phase::PassiveClose => Color::Magenta,
    }
}

pub(crate) fn level_color(l: Level) -> Color {
    match l {
        Level::Ok => Color::Green,
        Level::Warning => Color::Yellow,
        Level::Critical => Color::Red,
    }
}

/// The state a rule's verdict is about, to colour its box.
fn rule_state(v: &Verdict) -> Option<State> {
    use tcpfsm_observe::Rule::*;
    Some(match v.rule {
        CloseWaitLeak => State::CloseWait,
        TimeWaitPressure => State::TimeWait,
        SynRecvFlood => State::SynReceived,
        ListenOverflow => State::Listen,
        FinWait2PileUp => State::FinWait2,
        RetransmitRate | FdExhaustion => return None,
    })
}

/// The smallest terminal that shows every panel in full (the classic 80×24).
pub const MIN_W: u16 = 80;
pub const MIN_H: u16 = 24;
/// The boxed diagram (with its panel's borders) beside a 40-column right-hand column, above
/// which sits the title line.
const WIDE_RIGHT_W: u16 = 40;
pub const WIDE_W: u16 = DIAGRAM_W + 2 + WIDE_RIGHT_W;
pub const WIDE_H: u16 = DIAGRAM_H + 2 + 1;

/// Paints one frame: the boxed diagram with the other panels beside it when the terminal has
/// room ([`WIDE_W`]×[`WIDE_H`]); from 80×24 up, the diagram as a grid with every panel below
/// it; on anything smaller, the state counts alone and a note saying what is missing.
pub fn draw(f: &mut Frame, v: &View) {
    let area = f.area();
    if area.height == 0 || area.width == 0 {
        return;
    }
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([Constraint::Length(1), Constraint::Min(0)])
        .split(area);
    f.render_widget(Paragraph::new(panels::title(v, area.width)), rows[0]);
    let census = v.current();
    let hot: Vec<(State, Level)> = v
        .verdicts
        .iter()
        .filter(|x| x.level != Level::Ok)
        .filter_map(|x| rule_state(x).map(|s| (s, x.level)))
        .collect();
    if area.width >= WIDE_W && area.height >= WIDE_H {
        draw_wide(f, rows[1], v, &census, &hot);
    } else if area.width >= MIN_W && area.height >= MIN_H {
        draw_compact(f, rows[1], v, &census, &hot);
    } else {
        draw_small(f, rows[1], &census, &hot);
    }
}

fn states_block() -> Block<'static> {
    Block::default().borders(Borders::ALL).title(" states ")
}

fn draw_wide(f: &mut Frame, area: Rect, v: &View, census: &Census, hot: &[(State, Level)]) {
    let cols = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([
            Constraint::Length(DIAGRAM_W + 2),
            Constraint::Min(WIDE_RIGHT_W),
        ])
        .split(area);
    let block = states_block();
    let inner = block.inner(cols[0]);
    f.render_widget(block, cols[0]);
    f.render_widget(Diagram { census, hot }, inner);
    let right = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(panels::TRACKED.len() as u16 * 2 + 2),
            Constraint::Length(panels::close_wait_height(v)),
            Constraint::Min(4),
        ])
        .split(cols[1]);
    panels::trend(f, right[0], v, true);
    panels::close_wait(f, right[1], v);
    panels::alerts(f, right[2], v);
}

/// 80×24: title (1), the state grid (8), counts over time one line per state (7), then the
/// CLOSE_WAIT owners and the alerts side by side (8).
fn draw_compact(f: &mut Frame, area: Rect, v: &View, census: &Census, hot: &[(State, Level)]) {
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(GRID_ROWS + 2),
            Constraint::Length(panels::TRACKED.len() as u16 + 2),
            Constraint::Min(panels::CLOSE_WAIT_ROWS as u16 + 3),
        ])
        .split(area);
    let block = states_block();
    let inner = block.inner(rows[0]);
    f.render_widget(block, rows[0]);
    f.render_widget(StateGrid { census, hot }, inner);
    panels::trend(f, rows[1], v, false);
    let bottom = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Length(panels::CLOSE_WAIT_W), Constraint::Min(0)])
        .split(rows[2]);
    panels::close_wait(f, bottom[0], v);
    panels::alerts(f, bottom[1], v);
}

fn draw_small(f: &mut Frame, area: Rect, census: &Census, hot: &[(State, Level)]) {
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([Constraint::Min(0), Constraint::Length(1)])
        .split(area);
    f.render_widget(StateGrid { census, hot }, rows[0]);
    f.render_widget(
        Paragraph::new(Line::styled(
            format!("enlarge to {MIN_W}x{MIN_H} for trends, owners, alerts"),
            Style::default().fg(Color::DarkGray),
        )),
        rows[1],
    );
}

/// Renders one frame into a `width`×`height` buffer and returns it as plain text lines.
pub fn render_text(v: &View, width: u16, height: u16) -> String {
    let mut term = match Terminal::new(TestBackend::new(width, height)) {
        Ok(t) => t,
        Err(e) => return format!("cannot render: {e}\n"),
    };
    if let Err(e) = term.draw(|f| draw(f, v)) {
        return format!("cannot render: {e}\n");
    }
    buffer_text(term.backend().buffer())
}

fn buffer_text(b: &Buffer) -> String {
    let w = b.area.width as usize;
    let mut out = String::new();
    for row in b.content().chunks(w.max(1)) {
        let mut line = String::new();
        for c in row {
            line.push_str(c.symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Runs the interactive view on the terminal until `q`, Esc or Ctrl-C: `refresh` fills the
/// view once per `interval`, and the screen is redrawn on every tick and resize.
///
/// The terminal is put back (raw mode off, main screen) on every way out: normal return,
/// error, and panic — `ratatui::try_init` installs a panic hook that restores it before the
/// panic message is printed.
pub fn run_terminal(
    interval: std::time::Duration,
    mut refresh: impl FnMut(&mut View),
) -> std::io::Result<()> {
    use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
    use std::time::Instant;
    // SIGTERM/SIGINT from outside (not the Ctrl-C key, which raw mode delivers as a key) end
    // the loop too, so the terminal is restored instead of left raw.
    crate::signal::install();
    let mut term = ratatui::try_init()?;
    let mut view = View::default();
    let result = (|| -> std::io::Result<()> {
        refresh(&mut view);
        let mut next = Instant::now() + interval;
        loop {
            if crate::signal::stop_requested() {
                return Ok(());
            }
            term.draw(|f| draw(f, &view))?;
            // Wake at least every 200 ms to notice a signal.
            let wait = next
                .saturating_duration_since(Instant::now())
                .min(std::time::Duration::from_millis(200));
            if event::poll(wait)? {
                if let Event::Key(k) = event::read()? {
                    let ctrl_c =
                        k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
                    if k.kind != KeyEventKind::Release
                        && (ctrl_c || matches!(k.code, KeyCode::Char('q') | KeyCode::Esc))
                    {
                        return Ok(());
                    }
                }
            }
            if Instant::now() >= next {
                refresh(&mut view);
                next = Instant::now() + interval;
            }
        }
    })();
    ratatui::restore();
    result
}

#[cfg(test)]
mod tests;
