//! Frames rendered into ratatui's TestBackend: every panel shows all it holds, at the classic
//! 80×24 as on a large terminal.

use super::*;
use tcpfsm_observe::{ProcessBreakdown, Rule};

fn verdict(rule: Rule, level: Level, summary: &str) -> Verdict {
    Verdict {
        rule,
        level,
        summary: summary.into(),
        evidence: vec![],
        advice: String::new(),
        value: None,
    }
}

/// Counts of 8 digits (the widest a cell promises), distinct per state; `procs` CLOSE_WAIT
/// owners and 17 sockets with no owner; the given verdicts.
fn view_with(procs: usize, verdicts: Vec<Verdict>) -> View {
    let mut v = View {
        host: "h".into(),
        clock: "12:00:00 UTC".into(),
        interval_text: "1s".into(),
        ..View::default()
    };
    // Two samples, so "max" differs from "now".
    for round in [2u64, 1] {
        let mut s = Snapshot::default();
        for (i, st) in State::ALL.iter().enumerate() {
            s.census.set(*st, round * 10_000_000 + i as u64);
        }
        s.close_wait_by_process = Some(ProcessBreakdown {
            processes: (0..procs)
                .map(|i| ProcessCount {
                    pid: 4000 + i as u32,
                    comm: format!("leaky-server-{i}"),
                    count: 100 - i as u64,
                })
                .collect(),
            no_owner: 17,
            no_owner_reason: None,
        });
        v.push(&s, verdicts.clone());
    }
    v
}

fn count(s: State) -> u64 {
    10_000_000 + s.index() as u64
}

/// The text inside the bordered panel whose title is `title`: the lines between its top and
/// bottom borders, between its left and right borders. Panics if the panel is not drawn whole
/// (no top-right corner on the title's line, or no bottom-left corner below it).
fn panel(frame: &str, title: &str) -> Vec<String> {
    let grid: Vec<Vec<char>> = frame.lines().map(|l| l.chars().collect()).collect();
    for (y, row) in grid.iter().enumerate() {
        let line: String = row.iter().collect();
        let Some(byte_at) = line.find(&format!(" {title} ")) else {
            continue;
        };
        let title_col = line[..byte_at].chars().count();
        let left = (0..title_col)
            .rev()
            .find(|&x| row[x] == '┌')
            .unwrap_or_else(|| panic!("no ┌ left of {title:?}:\n{frame}"));
        let right = (title_col..row.len())
            .find(|&x| row[x] == '┐')
            .unwrap_or_else(|| panic!("no ┐ right of {title:?}:\n{frame}"));
        let bottom = (y + 1..grid.len())
            .find(|&yy| grid[yy].get(left) == Some(&'└'))
            .unwrap_or_else(|| panic!("panel {title:?} has no bottom border:\n{frame}"));
        assert_eq!(
            grid[bottom].get(right),
            Some(&'┘'),
            "panel {title:?} is not closed at the bottom right:\n{frame}"
        );
        return (y + 1..bottom)
            .map(|yy| {
                let r = &grid[yy];
                assert_eq!(r.get(left), Some(&'│'), "{title:?} left border:\n{frame}");
                assert_eq!(r.get(right), Some(&'│'), "{title:?} right border:\n{frame}");
                r[left + 1..right].iter().collect()
            })
            .collect();
    }
    panic!("no panel titled {title:?}:\n{frame}");
}

/// Words of a panel's lines, so wrapped text can be compared with the unwrapped original.
fn words(lines: &[String]) -> String {
    lines
        .iter()
        .flat_map(|l| l.split_whitespace())
        .collect::<Vec<_>>()
        .join(" ")
}

fn frame_lines_fit(frame: &str, w: usize, h: usize) {
    let lines: Vec<&str> = frame.lines().collect();
    assert_eq!(lines.len(), h, "{frame}");
    for l in lines {
        assert!(l.chars().count() <= w, "line wider than {w}: {l:?}");
    }
}

#[test]
fn frame_80x24_shows_all_eleven_states_each_with_its_count_on_its_line() {
    let f = render_text(&view_with(1, vec![]), 80, 24);
    frame_lines_fit(&f, 80, 24);
    let states = panel(&f, "states");
    for s in State::ALL {
        let line = states
            .iter()
            .find(|l| l.contains(s.name()))
            .unwrap_or_else(|| panic!("{} missing:\n{f}", s.name()));
        // The count follows the name within the same cell, both whole.
        let after = &line[line.find(s.name()).unwrap() + s.name().len()..];
        let n: u64 = after.split_whitespace().next().unwrap().parse().unwrap();
        assert_eq!(n, count(s), "{s}: {line:?}\n{f}");
    }
}

#[test]
fn frame_80x24_shows_now_and_max_of_every_tracked_state_over_time() {
    let f = render_text(&view_with(1, vec![]), 80, 24);
    let trend = panel(&f, "counts over time");
    for s in panels::TRACKED {
        let line = trend
            .iter()
            .find(|l| l.trim_start().starts_with(s.name()))
            .unwrap_or_else(|| panic!("{} missing:\n{f}", s.name()));
        let now = count(s);
        let max = 2 * 10_000_000 + s.index() as u64;
        assert!(
            line.contains(&format!("now {now}")) && line.contains(&format!("max {max}")),
            "{line:?}"
        );
        // A sparkline follows the numbers on the same line.
        assert!(
            line.chars().any(|c| ('▁'..='█').contains(&c)),
            "no sparkline: {line:?}"
        );
    }
}

#[test]
fn frame_80x24_lists_close_wait_owners_and_sums_those_that_do_not_fit() {
    // Three owners fit with the no-owner row.
    let f = render_text(&view_with(3, vec![]), 80, 24);
    let t = panel(&f, "top CLOSE_WAIT processes");
    let text = t.join("\n");
    for i in 0..3 {
        assert!(text.contains(&format!("leaky-server-{i}")), "{f}");
        assert!(text.contains(&format!("{}", 4000 + i)), "{f}");
    }
    let row = |name: &str| t.iter().find(|l| l.contains(name)).cloned();
    let unattr = row(tcpfsm_observe::NO_OWNER).expect("no-owner row");
    assert!(unattr.trim_end().ends_with("17"), "{unattr:?}");

    // Nine owners: the first shown by name, the rest summed on one line, counts adding up.
    let f = render_text(&view_with(9, vec![]), 80, 24);
    let t = panel(&f, "top CLOSE_WAIT processes");
    let last_col = |l: &String| -> u64 { l.split_whitespace().last().unwrap().parse().unwrap() };
    let named: Vec<&String> = t.iter().filter(|l| l.contains("leaky-server-")).collect();
    let more = t
        .iter()
        .find(|l| l.contains(" more"))
        .unwrap_or_else(|| panic!("no '+N more' row:\n{f}"));
    let n_more: usize = more
        .trim()
        .trim_start_matches('+')
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(named.len() + n_more, 9, "{f}");
    let total: u64 = named.iter().map(|l| last_col(l)).sum::<u64>() + last_col(more);
    assert_eq!(total, (0..9).map(|i| 100 - i).sum::<u64>(), "{f}");
    assert!(
        t.iter().any(|l| l.contains(tcpfsm_observe::NO_OWNER)),
        "{f}"
    );
}

#[test]
fn frame_80x24_shows_each_alert_whole_and_counts_those_that_do_not_fit() {
    let cw =
        "1009 CLOSE_WAIT sockets and rising at every sample; leaky-server-0 (pid 4000) holds 100";
    let tw = "TIME_WAIT holds 91% of the ephemeral port range towards 10.0.0.9:443";
    let f = render_text(
        &view_with(
            1,
            vec![
                verdict(Rule::TimeWaitPressure, Level::Warning, tw),
                verdict(Rule::CloseWaitLeak, Level::Critical, cw),
            ],
        ),
        80,
        24,
    );
    let a = words(&panel(&f, "alerts"));
    assert!(
        a.contains(&format!("CRITICAL CLOSE_WAIT leak: {cw}")),
        "{a}\n{f}"
    );
    assert!(a.contains(tw), "{a}\n{f}");
    // Worst first.
    assert!(
        a.find("CRITICAL").unwrap() < a.find("WARNING").unwrap(),
        "{a}"
    );

    // Six long alerts cannot all fit in the panel: those shown are whole, the rest counted.
    let many: Vec<Verdict> = Rule::ALL
        .iter()
        .map(|r| verdict(*r, Level::Warning, cw))
        .collect();
    let f = render_text(&view_with(1, many.clone()), 80, 24);
    let lines = panel(&f, "alerts");
    let a = words(&lines);
    let shown = a.matches(cw).count();
    assert!(shown >= 1, "{f}");
    assert!(
        a.contains(&format!("+{} more alerts", many.len() - shown)),
        "{a}\n{f}"
    );
}

#[test]
fn frame_80x24_title_fits_even_with_a_long_host_name() {
    let mut v = view_with(1, vec![]);
    v.host = "a-very-long-host-name.with.many.labels.example.internal".into();
    let f = render_text(&v, 80, 24);
    frame_lines_fit(&f, 80, 24);
    let title = f.lines().next().unwrap();
    assert!(
        title.contains("(q quits)") && title.contains("sockets"),
        "{title}"
    );
    assert!(title.contains('…'), "{title}");
}

#[test]
fn wide_frame_draws_the_boxed_diagram_and_keeps_the_no_owner_row() {
    let f = render_text(&view_with(5, vec![]), 120, 40);
    for s in State::ALL {
        assert!(
            f.contains(&format!("┌{}", s.name())),
            "{} box missing:\n{f}",
            s.name()
        );
        assert!(f.contains(&count(s).to_string()), "{f}");
    }
    let t = panel(&f, "top CLOSE_WAIT processes");
    assert!(
        t.iter().any(|l| l.contains(tcpfsm_observe::NO_OWNER)),
        "{f}"
    );
    assert_eq!(
        t.iter().filter(|l| l.contains("leaky-server-")).count(),
        5,
        "{f}"
    );
}

#[test]
fn below_80x24_the_state_counts_remain_and_the_frame_says_to_enlarge() {
    let f = render_text(&view_with(1, vec![]), 70, 20);
    for s in State::ALL {
        assert!(f.contains(s.name()), "{} missing:\n{f}", s.name());
        assert!(f.contains(&count(s).to_string()), "{f}");
    }
    assert!(f.contains("enlarge to 80x24"), "{f}");
}

#[test]
fn tiny_terminal_does_not_panic() {
    for (w, h) in [
        (1, 1),
        (10, 3),
        (0, 0),
        (200, 2),
        (80, 23),
        (79, 24),
        (101, 26),
    ] {
        let _ = render_text(&view_with(3, vec![]), w, h);
    }
}
