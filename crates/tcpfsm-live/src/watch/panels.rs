//! The panels beside the state diagram: the title line, counts over time, the top CLOSE_WAIT
//! owners and the alerts. Each panel is given an area and shows everything it holds or says
//! what it left out ("+3 more"); nothing is cut off mid-line.

use super::{level_color, phase_color, View};
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Sparkline, Table};
use ratatui::Frame;
use tcpfsm_observe::{Level, Verdict};
use tcpfsm_states::State;

/// States shown over time: the ones the texts say to track.
pub const TRACKED: [State; 5] = [
    State::Established,
    State::TimeWait,
    State::CloseWait,
    State::SynReceived,
    State::FinWait2,
];

/// Rows the CLOSE_WAIT table shows at most (and the wide layout reserves).
pub const CLOSE_WAIT_ROWS: usize = 5;
/// Width of the CLOSE_WAIT table: a 15-character comm, a 7-digit pid and the CLOSE_WAIT
/// column, their two gaps and the borders.
pub const CLOSE_WAIT_W: u16 = 15 + 7 + 10 + 2 + 2;

/// The title line; a long host name is shortened (`…`) so the line fits `width`.
pub fn title(v: &View, width: u16) -> Line<'static> {
    let lead = " tcpfsm watch ";
    let n = v.current().total();
    let rest = format!(
        "  {}  every {}  {n} socket{}  (q quits)",
        v.clock,
        v.interval_text,
        if n == 1 { "" } else { "s" }
    );
    let room = (width as usize).saturating_sub(lead.chars().count() + rest.chars().count() + 1);
    let host = elide(&v.host, room);
    Line::from(vec![
        Span::styled(lead, Style::default().add_modifier(Modifier::REVERSED)),
        Span::raw(format!(" {host}{rest}")),
    ])
}

/// `s` cut to `max` characters, the last one replaced by `…` when cut.
fn elide(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    if max > 0 {
        out.push('…');
    }
    out
}

/// Counts over time: per tracked state a line `NAME now N max M` and its sparkline — below it
/// (`two_rows`, 2 rows per state) or to its right (1 row per state).
pub fn trend(f: &mut Frame, area: Rect, v: &View, two_rows: bool) {
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" counts over time ");
    let inner = block.inner(area);
    f.render_widget(block, area);
    let census = v.current();
    let per = if two_rows { 2 } else { 1 };
    for (i, s) in TRACKED.iter().enumerate() {
        let y = inner.y + i as u16 * per;
        if y + per > inner.y + inner.height {
            break;
        }
        let now = census.get(*s);
        let peak = v.history.iter().map(|c| c.get(*s)).max().unwrap_or(0);
        let label = format!("{:<12} now {now:>8} max {peak:>8} ", s.name());
        let label_w = (label.chars().count() as u16).min(inner.width);
        f.render_widget(
            Paragraph::new(Line::styled(
                label,
                Style::default().fg(phase_color(s.phase())),
            )),
            Rect::new(inner.x, y, label_w, 1),
        );
        let spark = if two_rows {
            Rect::new(inner.x, y + 1, inner.width, 1)
        } else {
            Rect::new(inner.x + label_w, y, inner.width - label_w, 1)
        };
        let data: Vec<u64> = v
            .history
            .iter()
            .rev()
            .take(spark.width as usize)
            .rev()
            .map(|c| c.get(*s))
            .collect();
        f.render_widget(
            Sparkline::default()
                .data(&data)
                .style(Style::default().fg(phase_color(s.phase()))),
            spark,
        );
    }
}

/// Rows the CLOSE_WAIT panel needs for `v` (borders and header included).
pub fn close_wait_height(v: &View) -> u16 {
    let rows = v.close_wait_top.len().min(CLOSE_WAIT_ROWS) + usize::from(v.close_wait_no_owner > 0);
    3 + rows.max(1) as u16
}

/// The processes holding the most CLOSE_WAIT sockets. When more hold some than there are rows,
/// the last row sums the rest (`+N more`), so the column always adds up.
pub fn close_wait(f: &mut Frame, area: Rect, v: &View) {
    let room = (area.height.saturating_sub(3) as usize).min(CLOSE_WAIT_ROWS + 1);
    let no_owner = usize::from(v.close_wait_no_owner > 0);
    let for_procs = room.saturating_sub(no_owner);
    let procs = &v.close_wait_top;
    let shown = if procs.len() > for_procs {
        for_procs.saturating_sub(1)
    } else {
        procs.len()
    };
    let mut rows: Vec<Row> = procs[..shown]
        .iter()
        .map(|p| Row::new(vec![p.comm.clone(), p.pid.to_string(), p.count.to_string()]))
        .collect();
    if shown < procs.len() {
        let rest = &procs[shown..];
        rows.push(Row::new(vec![
            format!("+{} more", rest.len()),
            String::new(),
            rest.iter().map(|p| p.count).sum::<u64>().to_string(),
        ]));
    }
    if no_owner > 0 {
        rows.push(Row::new(vec![
            // The one spelling of a socket whose owner is unknown, shared with the exporter.
            tcpfsm_observe::NO_OWNER.to_string(),
            String::new(),
            v.close_wait_no_owner.to_string(),
        ]));
    }
    if rows.is_empty() {
        rows.push(Row::new(vec!["(none)".to_string()]));
    }
    f.render_widget(
        Table::new(
            rows,
            [
                // A comm is at most 15 characters (TASK_COMM_LEN 16 with its NUL).
                Constraint::Min(15),
                Constraint::Length(7),
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
        area,
    );
}

/// The alerts, worst first, each word-wrapped to the panel. Alerts that no longer fit are
/// counted on a last line rather than cut.
pub fn alerts(f: &mut Frame, area: Rect, v: &View) {
    let block = Block::default().borders(Borders::ALL).title(" alerts ");
    let inner = block.inner(area);
    f.render_widget(block, area);
    let width = inner.width as usize;
    let height = inner.height as usize;
    let mut items: Vec<Vec<Line>> = Vec::new();
    if let Some(e) = &v.error {
        let style = Style::default().fg(Color::Red);
        items.push(
            wrap(&format!("sampling failed: {e}"), width)
                .into_iter()
                .map(|l| Line::styled(l, style))
                .collect(),
        );
    }
    let mut active: Vec<&Verdict> = v.verdicts.iter().filter(|x| x.level != Level::Ok).collect();
    active.sort_by_key(|a| std::cmp::Reverse(a.level));
    if active.is_empty() && v.error.is_none() {
        items.push(vec![Line::styled(
            format!("all {} rules OK", v.verdicts.len()),
            Style::default().fg(Color::Green),
        )]);
    }
    for a in &active {
        items.push(alert_lines(a, width));
    }
    let mut lines: Vec<Line> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let left = items.len() - i - 1;
        // Keep a line for "+N more" unless this is the last item.
        let reserve = usize::from(left > 0);
        if lines.len() + item.len() + reserve > height {
            lines.push(Line::styled(
                elide(
                    &format!("+{} more alerts: run tcpfsm diagnose", items.len() - i),
                    width,
                ),
                Style::default().add_modifier(Modifier::BOLD),
            ));
            break;
        }
        lines.extend(item.iter().cloned());
    }
    f.render_widget(Paragraph::new(lines), inner);
}

/// One alert: its level (bold, coloured), rule title and summary, wrapped to `width`.
fn alert_lines(a: &Verdict, width: usize) -> Vec<Line<'static>> {
    let level = format!("{:<9}", a.level.name().to_uppercase());
    let text = format!("{level}{}: {}", a.rule.title(), a.summary);
    let style = Style::default()
        .fg(level_color(a.level))
        .add_modifier(Modifier::BOLD);
    wrap(&text, width)
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 && l.starts_with(&level) {
                let rest = l[level.len()..].to_string();
                Line::from(vec![Span::styled(level.clone(), style), Span::raw(rest)])
            } else {
                Line::raw(l)
            }
        })
        .collect()
}

/// Greedy word wrap to `width` characters; a word longer than a line is split.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let cur_len = cur.chars().count();
            let sep = usize::from(cur_len > 0);
            if cur_len + sep + word.len() <= width {
                if sep == 1 {
                    cur.push(' ');
                }
                cur.extend(word.iter());
                break;
            }
            if cur_len > 0 {
                lines.push(std::mem::take(&mut cur));
                continue;
            }
            // A word wider than the line: hard split.
            let rest = word.split_off(width);
            lines.push(word.iter().collect());
            word = rest;
        }
    }
    if !cur.is_empty() || lines.is_empty() {
        lines.push(cur);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_breaks_at_spaces_and_splits_only_overlong_words() {
        assert_eq!(wrap("aa bb cc", 5), vec!["aa bb", "cc"]);
        assert_eq!(wrap("abcdefgh", 3), vec!["abc", "def", "gh"]);
        assert_eq!(wrap("", 10), vec![""]);
        assert_eq!(wrap("one two", 7), vec!["one two"]);
    }

    #[test]
    fn elide_marks_a_cut_host_name() {
        assert_eq!(elide("short", 10), "short");
        assert_eq!(elide("a-very-long-host", 6), "a-ver…");
        assert_eq!(elide("x", 0), "");
    }
}
