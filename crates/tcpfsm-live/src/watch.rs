//! The `watch` view: the eleven-state diagram with live counts, counts over time, top
//! CLOSE_WAIT owners and active alerts, drawn with ratatui.
//!
//! Drawing is separate from sampling and from the terminal: [`View`] holds what one frame
//! shows, [`draw`] paints it into any ratatui frame, and [`render_text`] paints it into an
//! in-memory buffer so the view can be printed without a TTY (`--once`, tests).

use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Sparkline, Table, Widget};
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
    pub close_wait_unattributed: u64,
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
                self.close_wait_unattributed = b.unattributed;
            }
            None => {
                self.close_wait_top.clear();
                self.close_wait_unattributed = 0;
            }
        }
        self.verdicts = verdicts;
        self.error = None;
    }

    pub fn current(&self) -> Census {
        self.history.back().copied().unwrap_or_default()
    }
}

fn phase_color(p: Phase) -> Color {
    match p {
        Phase::Baseline => Color::Gray,
        Phase::Establishment => Color::Cyan,
        Phase::Transfer => Color::Green,
        Phase::ActiveClose => Color::Yellow,
        Phase::PassiveClose => Color::Magenta,
    }
}

fn level_color(l: Level) -> Color {
    match l {
        Level::Ok => Color::Green,
        Level::Warning => Color::Yellow,
        Level::Critical => Color::Red,
    }
}

/// Box geometry of the diagram (laid out like the texts' state diagram: setup on top,
/// ESTABLISHED in the middle, the active closer's track on the left, the passive closer's on
/// the right, CLOSING between them).
const BOX_W: u16 = 16;
const BOX_H: u16 = 3;
const COL: [u16; 3] = [0, 22, 44];
const DIAGRAM_W: u16 = 60;
const DIAGRAM_H: u16 = 24;

fn place(s: State) -> (u16, u16) {
    let (c, y) = match s {
        State::Closed => (1, 0),
        State::Listen => (0, 4),
        State::SynSent => (2, 4),
        State::SynReceived => (0, 8),
        State::Established => (1, 8),
        State::FinWait1 => (0, 12),
        State::CloseWait => (2, 12),
        State::FinWait2 => (0, 16),
        State::Closing => (1, 16),
        State::LastAck => (2, 16),
        State::TimeWait => (0, 20),
    };
    (COL[c], y)
}

/// The state diagram with counts; falls back to a plain list when the area is too small.
pub struct Diagram<'a> {
    pub census: &'a Census,
    /// States that a non-OK verdict is about, drawn with the verdict's colour.
    pub hot: &'a [(State, Level)],
}

impl Widget for Diagram<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.width < DIAGRAM_W || area.height < DIAGRAM_H {
            let rows: Vec<Line> = self
                .census
                .iter()
                .map(|(s, n)| {
                    Line::from(vec![
                        Span::styled(
                            format!("{:<13}", s.name()),
                            Style::default().fg(phase_color(s.phase())),
                        ),
                        Span::raw(format!("{n:>8}")),
                    ])
                })
                .collect();
            Paragraph::new(rows).render(area, buf);
            return;
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
            let (x, y) = place(s);
            let color = self
                .hot
                .iter()
                .filter(|(h, _)| *h == s)
                .map(|(_, l)| level_color(*l))
                .next_back()
                .unwrap_or_else(|| phase_color(s.phase()));
            let r = Rect::new(ox + x, oy + y, BOX_W, BOX_H);
            let count_style = if n > 0 {
                Style::default().fg(color).add_modifier(Modifier::BOLD)
            } else {
                Style::default().fg(Color::DarkGray)
            };
            Paragraph::new(Line::styled(n.to_string(), count_style).centered())
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

/// States shown as sparklines: the ones the texts say to track.
const TRACKED: [State; 5] = [
    State::Established,
    State::TimeWait,
    State::CloseWait,
    State::SynReceived,
    State::FinWait2,
];

/// Paints one frame.
pub fn draw(f: &mut Frame, v: &View) {
    let area = f.area();
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([Constraint::Length(1), Constraint::Min(0)])
        .split(area);
    let census = v.current();
    let title = Line::from(vec![
        Span::styled(
            " tcpfsm watch ",
            Style::default().add_modifier(Modifier::REVERSED),
        ),
        Span::raw(format!(
            " {}  {}  every {}  {} sockets  (q quits)",
            v.host,
            v.clock,
            v.interval_text,
            census.total()
        )),
    ]);
    f.render_widget(Paragraph::new(title), rows[0]);

    let cols = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Length(DIAGRAM_W + 2), Constraint::Min(30)])
        .split(rows[1]);
    let hot: Vec<(State, Level)> = v
        .verdicts
        .iter()
        .filter(|x| x.level != Level::Ok)
        .filter_map(|x| rule_state(x).map(|s| (s, x.level)))
        .collect();
    let diagram_block = Block::default().borders(Borders::ALL).title(" states ");
    let inner = diagram_block.inner(cols[0]);
    f.render_widget(diagram_block, cols[0]);
    f.render_widget(
        Diagram {
            census: &census,
            hot: &hot,
        },
        inner,
    );

    let right = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(TRACKED.len() as u16 * 2 + 2),
            Constraint::Length(8),
            Constraint::Min(4),
        ])
        .split(cols[1]);

    // Counts over time.
    let trend_block = Block::default()
        .borders(Borders::ALL)
        .title(" counts over time ");
    let trend_inner = trend_block.inner(right[0]);
    f.render_widget(trend_block, right[0]);
    for (i, s) in TRACKED.iter().enumerate() {
        let y = trend_inner.y + i as u16 * 2;
        if y + 2 > trend_inner.y + trend_inner.height {
            break;
        }
        let label = Rect::new(trend_inner.x, y, trend_inner.width, 1);
        let now = census.get(*s);
        let peak = v.history.iter().map(|c| c.get(*s)).max().unwrap_or(0);
        f.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled(
                    format!("{:<13}", s.name()),
                    Style::default().fg(phase_color(s.phase())),
                ),
                Span::raw(format!("now {now:<8} max {peak}")),
            ])),
            label,
        );
        let w = trend_inner.width as usize;
        let data: Vec<u64> = v
            .history
            .iter()
            .rev()
            .take(w)
            .rev()
            .map(|c| c.get(*s))
            .collect();
        f.render_widget(
            Sparkline::default()
                .data(&data)
                .style(Style::default().fg(phase_color(s.phase()))),
            Rect::new(trend_inner.x, y + 1, trend_inner.width, 1),
        );
    }

    // Top CLOSE_WAIT owners.
    let mut prow: Vec<Row> = v
        .close_wait_top
        .iter()
        .take(5)
        .map(|p| Row::new(vec![p.comm.clone(), p.pid.to_string(), p.count.to_string()]))
        .collect();
    if v.close_wait_unattributed > 0 {
        prow.push(Row::new(vec![
            "(unattributed)".to_string(),
            String::new(),
            v.close_wait_unattributed.to_string(),
        ]));
    }
    if prow.is_empty() {
        prow.push(Row::new(vec!["(none)".to_string()]));
    }
    f.render_widget(
        Table::new(
            prow,
            [
                Constraint::Min(16),
                Constraint::Length(8),
                Constraint::Length(10),
            ],
        )
        .header(
            Row::new(vec!["PROCESS", "PID", "CLOSE_WAIT"])
                .style(Style::default().add_modifier(Modifier::BOLD)),
        )
        .block(
            Block::default()
                .borders(Borders::ALL)
                .title(" top CLOSE_WAIT processes "),
        ),
        right[1],
    );

    // Alerts.
    let mut lines: Vec<Line> = Vec::new();
    if let Some(e) = &v.error {
        lines.push(Line::styled(
            format!("sampling failed: {e}"),
            Style::default().fg(Color::Red),
        ));
    }
    let active: Vec<&Verdict> = v.verdicts.iter().filter(|x| x.level != Level::Ok).collect();
    if active.is_empty() && v.error.is_none() {
        lines.push(Line::styled(
            format!("all {} rules OK", v.verdicts.len()),
            Style::default().fg(Color::Green),
        ));
    }
    for a in active {
        lines.push(Line::from(vec![
            Span::styled(
                format!("{:<8}", a.level.name().to_uppercase()),
                Style::default()
                    .fg(level_color(a.level))
                    .add_modifier(Modifier::BOLD),
            ),
            Span::raw(format!("{}: {}", a.rule.title(), a.summary)),
        ]));
    }
    f.render_widget(
        Paragraph::new(lines)
            .wrap(ratatui::widgets::Wrap { trim: true })
            .block(Block::default().borders(Borders::ALL).title(" alerts ")),
        right[2],
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
mod tests {
    use super::*;
    use tcpfsm_observe::{ProcessBreakdown, Rule};

    fn view() -> View {
        let mut s = Snapshot::default();
        for (i, st) in State::ALL.iter().enumerate() {
            s.census.set(*st, 1000 + i as u64);
        }
        s.close_wait_by_process = Some(ProcessBreakdown {
            processes: vec![ProcessCount {
                pid: 4242,
                comm: "leaky-server".into(),
                count: 1009,
            }],
            unattributed: 0,
            unattributed_reason: None,
        });
        let mut v = View {
            host: "h".into(),
            clock: "12:00:00".into(),
            interval_text: "1s".into(),
            ..View::default()
        };
        v.push(
            &s,
            vec![Verdict {
                rule: Rule::CloseWaitLeak,
                level: Level::Critical,
                summary: "1009 sockets in CLOSE_WAIT".into(),
                evidence: vec![],
                advice: String::new(),
                value: Some(1009.0),
            }],
        );
        v
    }

    #[test]
    fn frame_shows_all_eleven_states_with_their_counts() {
        let text = render_text(&view(), 120, 40);
        for (i, s) in State::ALL.iter().enumerate() {
            assert!(text.contains(s.name()), "{} missing:\n{text}", s.name());
            assert!(
                text.contains(&(1000 + i).to_string()),
                "count of {s} missing"
            );
        }
    }

    #[test]
    fn frame_shows_the_close_wait_owner_and_the_alert() {
        let text = render_text(&view(), 120, 40);
        assert!(text.contains("leaky-server"));
        assert!(text.contains("4242"));
        assert!(text.contains("CRITICAL"));
        assert!(text.contains("CLOSE_WAIT leak"));
    }

    #[test]
    fn small_terminal_falls_back_to_a_list_that_still_names_every_state() {
        let text = render_text(&view(), 70, 20);
        for s in State::ALL {
            assert!(text.contains(s.name()), "{} missing:\n{text}", s.name());
        }
    }

    #[test]
    fn tiny_terminal_does_not_panic() {
        for (w, h) in [(1, 1), (10, 3), (0, 0), (200, 2)] {
            let _ = render_text(&view(), w, h);
        }
    }
}
