//! Backtick command lines, interpreted rather than run.
//!
//! A script's `` `…` `` lines are shell commands for the host packetdrill runs on. We never
//! run them by default; instead:
//! - `sysctl [-w|-q|-n…] key=value …` and `echo value > /proc/sys/…` become settings;
//! - a shell script the line runs (`./defaults.sh`, `sh ../common/defaults.sh`) is read and its
//!   lines interpreted the same way;
//! - FreeBSD's `sockstat … -s | grep -c STATE | grep N` becomes a check of how many
//!   connections are in STATE;
//! - host plumbing (`ip`, `tc`, `ethtool`, `ifconfig`, `route`) and no-ops are reported as
//!   ignored;
//! - anything else is left uninterpreted, and the runner skips the script naming the line.
//!
//! The shell syntax understood is the part such lines use: words, quotes, backslash escapes,
//! `$((arithmetic))`, redirections, `;`, `&&`, `|` and comments.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellAction {
    /// A setting as written: a dotted key (`/proc/sys/` paths converted) and its value.
    Set { key: String, value: String },
    /// Understood and deliberately not applied.
    Ignored { what: String, reason: String },
    /// `sockstat [-4|-6] -P tcp [-p PORT] -s | … | grep -c PATTERN | grep N`: the number of
    /// connections whose state name contains PATTERN must contain the digits N (exactly
    /// what the pipeline tests).
    CheckStates {
        v6: Option<bool>,
        port: Option<u16>,
        pattern: String,
        expect: String,
    },
    /// Not interpreted.
    Other { command: String },
}

/// One interpreted command with where it came from (`defaults.sh:12` for lines of a script
/// file the command ran; empty for the command itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreted {
    pub origin: String,
    pub action: ShellAction,
}

/// Interprets a command line; `dir` is the script's directory (for `./defaults.sh`).
pub fn interpret(command: &str, dir: &Path) -> Vec<Interpreted> {
    let mut out = Vec::new();
    interpret_into(command, dir, "", 0, &mut out);
    out
}

fn interpret_into(command: &str, dir: &Path, origin: &str, depth: u32, out: &mut Vec<Interpreted>) {
    let push = |out: &mut Vec<Interpreted>, action| {
        out.push(Interpreted {
            origin: origin.to_string(),
            action,
        })
    };
    let pipelines = match split(command) {
        Ok(p) => p,
        Err(why) => {
            push(
                out,
                ShellAction::Other {
                    command: format!("{} ({why})", command.trim()),
                },
            );
            return;
        }
    };
    for pipeline in pipelines {
        let text = pipeline
            .iter()
            .map(|c| c.words.join(" "))
            .collect::<Vec<_>>()
            .join(" | ");
        if let Some(check) = sockstat_check(&pipeline) {
            push(out, check);
            continue;
        }
        if pipeline.len() != 1 {
            push(out, ShellAction::Other { command: text });
            continue;
        }
        let cmd = &pipeline[0];
        let Some(prog) = cmd.words.first() else {
            continue;
        };
        let base = prog.rsplit('/').next().unwrap_or(prog);
        match base {
            "sysctl" => {
                for a in sysctl(&cmd.words[1..]) {
                    push(out, a);
                }
            }
            "echo" => match cmd.stdout.as_deref() {
                Some(path) if path.starts_with("/proc/sys/") => push(
                    out,
                    ShellAction::Set {
                        key: path["/proc/sys/".len()..].replace('/', "."),
                        value: cmd.words[1..].join(" "),
                    },
                ),
                _ => push(
                    out,
                    ShellAction::Ignored {
                        what: text.clone(),
                        reason: "prints only".into(),
                    },
                ),
            },
            "ip" | "tc" | "ethtool" | "ifconfig" | "route" | "modprobe" => push(
                out,
                ShellAction::Ignored {
                    what: text.clone(),
                    reason: "host plumbing".into(),
                },
            ),
            "true" | ":" => {}
            "sh" | "bash" if cmd.words.len() == 2 => {
                run_file(&cmd.words[1], dir, depth, &text, out, origin)
            }
            _ if prog.ends_with(".sh") && cmd.words.len() == 1 => {
                run_file(prog, dir, depth, &text, out, origin)
            }
            _ => push(out, ShellAction::Other { command: text }),
        }
    }
}

/// Interprets the lines of a shell script a command runs.
fn run_file(
    path: &str,
    dir: &Path,
    depth: u32,
    text: &str,
    out: &mut Vec<Interpreted>,
    origin: &str,
) {
    let file: PathBuf = dir.join(path);
    let other = |why: String| Interpreted {
        origin: origin.to_string(),
        action: ShellAction::Other {
            command: format!("{text} ({why})"),
        },
    };
    if depth >= 4 {
        out.push(other("scripts nested too deep".into()));
        return;
    }
    let body = match std::fs::read_to_string(&file) {
        Ok(b) => b,
        Err(e) => {
            out.push(other(format!("cannot read {}: {e}", file.display())));
            return;
        }
    };
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sub_dir = file.parent().unwrap_or(dir).to_path_buf();
    for (i, line) in body.lines().enumerate() {
        let here = format!("{name}:{}", i + 1);
        interpret_into(line, &sub_dir, &here, depth + 1, out);
    }
}

fn sysctl(args: &[String]) -> Vec<ShellAction> {
    let mut out = Vec::new();
    let mut reads = Vec::new();
    for a in args {
        if let Some(flags) = a.strip_prefix('-') {
            // -w (write), -q (quiet), -n (values only), -e (ignore unknown): none changes what
            // is set.
            if flags.chars().all(|c| "wqne".contains(c)) {
                continue;
            }
            return vec![ShellAction::Other {
                command: format!("sysctl {}", args.join(" ")),
            }];
        }
        match a.split_once('=') {
            Some((k, v)) => out.push(ShellAction::Set {
                key: k.trim().to_string(),
                value: v.trim().to_string(),
            }),
            None => reads.push(a.clone()),
        }
    }
    if !reads.is_empty() {
        out.push(ShellAction::Ignored {
            what: format!("sysctl {}", reads.join(" ")),
            reason: "reads a setting".into(),
        });
    }
    out
}

/// `sockstat -4 -P tcp [-p PORT] -s | grep packetdril | grep -c STATE | grep N`.
fn sockstat_check(pipeline: &[SimpleCommand]) -> Option<ShellAction> {
    let first = &pipeline.first()?.words;
    if first.first().map(String::as_str) != Some("sockstat") || pipeline.len() < 3 {
        return None;
    }
    let (mut v6, mut port, mut tcp, mut states) = (None, None, false, false);
    let mut it = first[1..].iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-4" => v6 = Some(false),
            "-6" => v6 = Some(true),
            "-s" => states = true,
            "-P" => tcp = it.next()? == "tcp",
            "-p" => port = Some(it.next()?.parse().ok()?),
            _ => return None,
        }
    }
    if !tcp || !states {
        return None;
    }
    let n = pipeline.len();
    // Between the first and the counting grep, only filters on the owning process (all of
    // a script's connections are its own).
    for mid in &pipeline[1..n - 2] {
        if mid.words.len() != 2 || mid.words[0] != "grep" {
            return None;
        }
    }
    let count = &pipeline[n - 2].words;
    let last = &pipeline[n - 1].words;
    if count.len() != 3 || count[0] != "grep" || count[1] != "-c" {
        return None;
    }
    if last.len() != 2 || last[0] != "grep" {
        return None;
    }
    Some(ShellAction::CheckStates {
        v6,
        port,
        pattern: count[2].clone(),
        expect: last[1].clone(),
    })
}

/// A command with its words and where its standard output goes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct SimpleCommand {
    words: Vec<String>,
    stdout: Option<String>,
}

/// Splits a command line into pipelines (`;`, `&&`, newlines) of simple commands (`|`).
fn split(line: &str) -> Result<Vec<Vec<SimpleCommand>>, String> {
    let mut pipelines: Vec<Vec<SimpleCommand>> = Vec::new();
    let mut pipeline: Vec<SimpleCommand> = Vec::new();
    let mut cmd = SimpleCommand::default();
    let mut word = String::new();
    let mut in_word = false;
    let mut redirect: Option<u8> = None;
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    // Ends the current word: into the command, or as the target of a pending redirection.
    let finish_word = |word: &mut String,
                       in_word: &mut bool,
                       cmd: &mut SimpleCommand,
                       redirect: &mut Option<u8>|
     -> Result<(), String> {
        if !*in_word {
            return Ok(());
        }
        let w = std::mem::take(word);
        *in_word = false;
        match redirect.take() {
            Some(1) => cmd.stdout = Some(w),
            Some(_) => {}
            None => cmd.words.push(w),
        }
        Ok(())
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => finish_word(&mut word, &mut in_word, &mut cmd, &mut redirect)?,
            '#' if !in_word => break,
            '\'' => {
                in_word = true;
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    word.push(chars[i]);
                    i += 1;
                }
                if i == chars.len() {
                    return Err("unterminated quote".into());
                }
            }
            '"' => {
                in_word = true;
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated quote".into()),
                        Some('"') => break,
                        Some('\\') if matches!(chars.get(i + 1), Some('"' | '\\' | '$')) => {
                            word.push(chars[i + 1]);
                            i += 2;
                        }
                        Some('$') => i = expand(&chars, i, &mut word)?,
                        Some('`') => return Err("command substitution".into()),
                        Some(&ch) => {
                            word.push(ch);
                            i += 1;
                        }
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(&n) = chars.get(i + 1) {
                    word.push(n);
                    i += 1;
                }
            }
            '$' => {
                in_word = true;
                i = expand(&chars, i, &mut word)?;
                continue;
            }
            '`' => return Err("command substitution".into()),
            '>' | '<' => {
                // `2>&1`, `>/dev/null`, `>> f`, `&> f`: only stdout targets matter.
                let fd = if in_word && word.chars().all(|d| d.is_ascii_digit()) {
                    let fd = word.parse::<u8>().unwrap_or(1);
                    word.clear();
                    in_word = false;
                    fd
                } else {
                    finish_word(&mut word, &mut in_word, &mut cmd, &mut redirect)?;
                    if c == '<' {
                        0
                    } else {
                        1
                    }
                };
                while matches!(chars.get(i + 1), Some('>')) {
                    i += 1;
                }
                if chars.get(i + 1) == Some(&'&') {
                    // A descriptor duplication (`2>&1`): no file.
                    i += 2;
                    while chars.get(i).is_some_and(|d| d.is_ascii_digit()) {
                        i += 1;
                    }
                    continue;
                }
                redirect = Some(fd);
            }
            '|' | ';' | '&' => {
                finish_word(&mut word, &mut in_word, &mut cmd, &mut redirect)?;
                let double = chars.get(i + 1) == Some(&c);
                if c == '&' && !double {
                    if chars.get(i + 1) == Some(&'>') {
                        // `&> file`: both streams to the file.
                        i += 1;
                        redirect = Some(1);
                        i += 1;
                        continue;
                    }
                    return Err("background jobs (&)".into());
                }
                if c == '|' && double {
                    return Err("|| lists".into());
                }
                pipeline.push(std::mem::take(&mut cmd));
                if c != '|' {
                    pipelines.push(std::mem::take(&mut pipeline));
                }
                if double {
                    i += 1;
                }
            }
            _ => {
                in_word = true;
                word.push(c);
            }
        }
        i += 1;
    }
    finish_word(&mut word, &mut in_word, &mut cmd, &mut redirect)?;
    if redirect.is_some() {
        return Err("redirection without a target".into());
    }
    pipeline.push(cmd);
    pipelines.push(pipeline);
    for p in &mut pipelines {
        p.retain(|c| !c.words.is_empty() || c.stdout.is_some());
    }
    pipelines.retain(|p| !p.is_empty());
    if let Some(kw) = pipelines
        .iter()
        .flatten()
        .filter_map(|c| c.words.first())
        .find(|w| {
            matches!(
                w.as_str(),
                "if" | "then"
                    | "else"
                    | "fi"
                    | "for"
                    | "while"
                    | "do"
                    | "done"
                    | "case"
                    | "function"
                    | "export"
                    | "set"
            ) || w.contains('=') && !w.starts_with('-')
        })
    {
        return Err(format!("shell construct \"{kw}\""));
    }
    Ok(pipelines)
}

/// Expands `$((…))` starting at `chars[at] == '$'`; returns the index after it.
fn expand(chars: &[char], at: usize, word: &mut String) -> Result<usize, String> {
    if chars.get(at + 1) != Some(&'(') || chars.get(at + 2) != Some(&'(') {
        return Err("parameter expansion ($…)".into());
    }
    let mut depth = 0;
    let mut j = at + 3;
    let start = j;
    loop {
        match chars.get(j) {
            None => return Err("unterminated $((…))".into()),
            Some('(') => depth += 1,
            Some(')') if depth > 0 => depth -= 1,
            Some(')') if chars.get(j + 1) == Some(&')') => break,
            _ => {}
        }
        j += 1;
    }
    let expr: String = chars[start..j].iter().collect();
    let v = arith(&expr)?;
    word.push_str(&v.to_string());
    Ok(j + 2)
}

/// Integer arithmetic: + - * / % and parentheses.
fn arith(expr: &str) -> Result<i64, String> {
    let toks: Vec<char> = expr.chars().filter(|c| !c.is_whitespace()).collect();
    let mut at = 0;
    let v = arith_sum(&toks, &mut at)?;
    if at != toks.len() {
        return Err(format!("cannot evaluate $(({expr}))"));
    }
    Ok(v)
}

fn arith_sum(t: &[char], at: &mut usize) -> Result<i64, String> {
    let mut v = arith_product(t, at)?;
    while let Some(&op) = t.get(*at).filter(|c| matches!(c, '+' | '-')) {
        *at += 1;
        let r = arith_product(t, at)?;
        v = if op == '+' {
            v.checked_add(r)
        } else {
            v.checked_sub(r)
        }
        .ok_or("overflow")?;
    }
    Ok(v)
}

fn arith_product(t: &[char], at: &mut usize) -> Result<i64, String> {
    let mut v = arith_atom(t, at)?;
    while let Some(&op) = t.get(*at).filter(|c| matches!(c, '*' | '/' | '%')) {
        *at += 1;
        let r = arith_atom(t, at)?;
        v = match op {
            '*' => v.checked_mul(r),
            '/' => v.checked_div(r),
            _ => v.checked_rem(r),
        }
        .ok_or("overflow or division by zero")?;
    }
    Ok(v)
}

fn arith_atom(t: &[char], at: &mut usize) -> Result<i64, String> {
    match t.get(*at) {
        Some('(') => {
            *at += 1;
            let v = arith_sum(t, at)?;
            if t.get(*at) != Some(&')') {
                return Err("unbalanced parentheses".into());
            }
            *at += 1;
            Ok(v)
        }
        Some('-') => {
            *at += 1;
            Ok(-arith_atom(t, at)?)
        }
        Some(c) if c.is_ascii_digit() => {
            let mut v: i64 = 0;
            while let Some(d) = t.get(*at).and_then(|c| c.to_digit(10)) {
                v = v
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(d as i64))
                    .ok_or("overflow")?;
                *at += 1;
            }
            Ok(v)
        }
        _ => Err("expected a number".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn act(cmd: &str) -> Vec<ShellAction> {
        interpret(cmd, Path::new("."))
            .into_iter()
            .map(|i| i.action)
            .collect()
    }

    fn set(k: &str, v: &str) -> ShellAction {
        ShellAction::Set {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn sysctl_forms_become_settings() {
        assert_eq!(
            act("sysctl -w net.inet.tcp.rfc1323=1"),
            vec![set("net.inet.tcp.rfc1323", "1")]
        );
        assert_eq!(
            act("sysctl -q net.ipv4.tcp_early_retrans=4 net.ipv4.tcp_recovery=1"),
            vec![
                set("net.ipv4.tcp_early_retrans", "4"),
                set("net.ipv4.tcp_recovery", "1")
            ]
        );
        assert_eq!(
            act("sysctl -q net.ipv4.tcp_rmem=\"4096 540000 $((15*1024*1024))\""),
            vec![set("net.ipv4.tcp_rmem", "4096 540000 15728640")]
        );
        assert_eq!(
            act("sysctl -q net.ipv4.tcp_notsent_lowat=4294967295 > /dev/null 2>&1"),
            vec![set("net.ipv4.tcp_notsent_lowat", "4294967295")]
        );
        assert_eq!(
            act("echo 0 > /proc/sys/net/ipv4/tcp_timestamps"),
            vec![set("net.ipv4.tcp_timestamps", "0")]
        );
    }

    #[test]
    fn host_plumbing_is_ignored_and_other_commands_are_not_interpreted() {
        assert!(matches!(
            act("ip tcp_metrics flush all > /dev/null 2>&1")[0],
            ShellAction::Ignored { .. }
        ));
        assert!(matches!(
            act("tc qdisc add dev tun0 root pfifo")[0],
            ShellAction::Ignored { .. }
        ));
        assert_eq!(
            act("nc -l 8080"),
            vec![ShellAction::Other {
                command: "nc -l 8080".into()
            }]
        );
        assert!(
            matches!(&act("echo $HOME")[0], ShellAction::Other { command } if command.contains("parameter expansion"))
        );
        assert!(
            matches!(&act("if true; then x; fi")[0], ShellAction::Other { command } if command.contains("shell construct"))
        );
    }

    #[test]
    fn sockstat_pipelines_become_state_checks() {
        assert_eq!(
            act("sockstat -4 -P tcp -s | grep packetdril | grep -c TIME_WAIT | grep 1"),
            vec![ShellAction::CheckStates {
                v6: Some(false),
                port: None,
                pattern: "TIME_WAIT".into(),
                expect: "1".into()
            }]
        );
        assert_eq!(
            act("sockstat -6 -P tcp -s -p 8080 | grep -c SYN_RCVD | grep 0"),
            vec![ShellAction::CheckStates {
                v6: Some(true),
                port: Some(8080),
                pattern: "SYN_RCVD".into(),
                expect: "0".into()
            }]
        );
        assert!(matches!(
            act("sockstat -4 | wc -l")[0],
            ShellAction::Other { .. }
        ));
    }

    #[test]
    fn shell_files_are_read_and_interpreted_line_by_line() {
        let dir = std::env::temp_dir().join(format!("drill-shell-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("defaults.sh"),
            "#!/bin/bash\n# comment\nsysctl -q net.ipv4.tcp_sack=1\ntc qdisc add dev tun0 root pfifo\n",
        )
        .unwrap();
        let got = interpret("./defaults.sh", &dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].origin, "defaults.sh:3");
        assert_eq!(got[0].action, set("net.ipv4.tcp_sack", "1"));
        assert!(matches!(got[1].action, ShellAction::Ignored { .. }));
        assert!(
            matches!(&act("./missing.sh")[0], ShellAction::Other { command } if command.contains("cannot read"))
        );
    }

    #[test]
    fn arithmetic() {
        assert_eq!(arith("15*1024*1024"), Ok(15_728_640));
        assert_eq!(arith("(1+2)*3-4/2%3"), Ok(7));
        assert!(arith("1/0").is_err());
        assert!(arith("1+").is_err());
    }
}
